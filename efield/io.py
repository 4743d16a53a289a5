"""Gmsh MSH files: read 2.2 and 4.1 (ASCII and binary), write 2.2 (as SimNIBS does).

Coordinates are taken and written as they are (SimNIBS meshes are in mm). Only linear
tetrahedra (Gmsh type 4) and triangles (type 2) are kept; points and lines are skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tmsim_io import atomic_output
from .mesh import TetMesh, face_keys

__all__ = ["MshFormatError", "read_msh", "write_msh"]

_POINT, _LINE, _TRI, _TET = 15, 1, 2, 4
_NODES_PER_TYPE = {_POINT: 1, _LINE: 2, _TRI: 3, _TET: 4}
_TYPE_NAMES = {3: "4-node quadrangle", 5: "8-node hexahedron", 6: "6-node prism",
               7: "5-node pyramid", 8: "3-node line", 9: "6-node triangle",
               10: "9-node quadrangle", 11: "10-node tetrahedron"}
_DATA_SECTIONS = ("NodeData", "ElementData")


class MshFormatError(ValueError):
    """A file that is not a readable Gmsh MSH mesh; the message names the file."""


# ----------------------------------------------------------------------------- reading

def read_msh(path) -> TetMesh:
    """Read a Gmsh MSH 2.2 or 4.1 file (ASCII or binary) into a TetMesh.

    Tissue tags are the physical tags (2.2: first element tag; 4.1: first physical group of
    the element's entity, or the entity tag where it has none). $ElementData and $NodeData
    become element_data (per tetrahedron) and node_data (per node); a name seen twice keeps
    its last block. Raises MshFormatError naming the file on any problem, including nodes
    with NaN or infinite coordinates.
    """
    path = os.fspath(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise MshFormatError(f"{path}: cannot read file ({err.strerror or err})") from err
    try:
        return _Reader(raw, path).read()
    except MshFormatError:
        raise
    except (ValueError, IndexError, OverflowError) as err:
        raise MshFormatError(f"{path}: malformed file ({err})") from err


class _Lookup:
    """Position of each file number (node or element tag) in a list of unique numbers."""

    def __init__(self, numbers: np.ndarray):
        numbers = np.asarray(numbers, np.int64)
        self.size = len(numbers)
        top = int(numbers.max(initial=-1))
        if numbers.size and numbers.min() >= 0 and top <= 4 * len(numbers) + 1024:
            self.table = np.full(top + 1, -1, np.int64)
            self.table[numbers] = np.arange(len(numbers))
            self.unique = bool((self.table[numbers] == np.arange(len(numbers))).all())
        else:
            self.table = None
            self.order = np.argsort(numbers, kind="stable")
            self.sorted = numbers[self.order]
            self.unique = not (np.diff(self.sorted) == 0).any()

    def find(self, query: np.ndarray) -> np.ndarray:
        """Zero-based positions of `query` numbers, -1 where absent."""
        query = np.asarray(query, np.int64)
        if self.table is not None:
            inside = (query >= 0) & (query < len(self.table))
            out = np.full(query.shape, -1, np.int64)
            out[inside] = self.table[query[inside]]
            return out
        if not self.size:
            return np.full(query.shape, -1, np.int64)
        i = np.minimum(np.searchsorted(self.sorted, query), self.size - 1)
        return np.where(self.sorted[i] == query, self.order[i], -1)


class _Reader:
    """One pass over the bytes of an MSH file, section by section."""

    def __init__(self, raw: bytes, path: str):
        self.raw, self.path, self.pos = raw, path, 0
        self.section = "$MeshFormat"
        self.version, self.binary, self.endian, self.size_t = 2, False, "<", 8
        self.node_numbers = self.coords = None
        self.blocks = {_TRI: [], _TET: []}      # type -> [(element numbers, tags, node numbers)]
        self.entity_tags = {}                   # (dim, entity tag) -> physical tag (4.1)
        self.data = {kind: {} for kind in _DATA_SECTIONS}  # kind -> name -> (numbers, values)
        self.tokens, self.token_pos = None, 0

    def fail(self, problem: str):
        raise MshFormatError(f"{self.path}: {self.section}: {problem}")

    # --- low-level access

    def line(self) -> str:
        """The next text line, without its line break."""
        if self.pos >= len(self.raw):
            self.fail("unexpected end of file (truncated?)")
        end = self.raw.find(b"\n", self.pos)
        end = len(self.raw) if end < 0 else end
        text = self.raw[self.pos:end].decode("latin-1").strip()
        self.pos = end + 1
        return text

    def count(self) -> int:
        """A non-negative integer on a line of its own."""
        text = self.line()
        try:
            value = int(text)
        except ValueError:
            self.fail(f"expected a count, found {text[:40]!r}")
        if value < 0:
            self.fail(f"negative count {value}")
        return value

    def skip_blank(self):
        while self.pos < len(self.raw) and self.raw[self.pos] in b" \t\r\n":
            self.pos += 1

    def take(self, dtype: np.dtype, count: int) -> np.ndarray:
        """`count` binary items of `dtype` from the current position."""
        count = int(count)
        nbytes = dtype.itemsize * count
        if count < 0 or self.pos + nbytes > len(self.raw):
            self.fail("unexpected end of file (truncated?)")
        out = np.frombuffer(self.raw, dtype, count, self.pos)
        self.pos += nbytes
        return out

    def ascii_body(self, name: str) -> bytes:
        """The text up to the section's end marker (left for `expect_end`)."""
        end = self.raw.find(b"$End" + name.encode(), self.pos)
        if end < 0:
            self.fail(f"no $End{name} (truncated?)")
        body, self.pos = self.raw[self.pos:end], end
        return body

    def numbers(self, text: bytes, dtype) -> np.ndarray:
        """All whitespace-separated numbers of `text`."""
        if not text.strip():
            return np.zeros(0, dtype)
        try:
            return np.fromstring(text, dtype=dtype, sep=" ")
        except ValueError:
            self.fail("non-numeric value")

    def open_numbers(self, name: str, dtype):
        """Start reading an ASCII section's numbers with `next`."""
        if not self.binary:
            self.tokens, self.token_pos = self.numbers(self.ascii_body(name), dtype), 0

    def next(self, kind: str, count) -> np.ndarray:
        """`count` values of kind 'i' (int), 's' (size_t) or 'd' (double), ASCII or binary."""
        count = int(count)
        if self.binary:
            size = {"i": 4, "s": self.size_t, "d": 8}[kind]
            code = {"i": "i", "s": "u", "d": "f"}[kind]
            return self.take(np.dtype(f"{self.endian}{code}{size}"), count)
        if count < 0 or self.token_pos + count > len(self.tokens):
            self.fail("section ends before all announced entries")
        out = self.tokens[self.token_pos:self.token_pos + count]
        self.token_pos += count
        return out

    def close_numbers(self):
        if not self.binary and self.token_pos != len(self.tokens):
            self.fail(f"{len(self.tokens) - self.token_pos} values beyond the announced entries")

    def expect_end(self, name: str):
        self.skip_blank()
        text = self.line()
        if text != f"$End{name}":
            self.fail(f"expected $End{name}, found {text[:40]!r}")

    def nodes_per_element(self, etype: int) -> int:
        if etype not in _NODES_PER_TYPE:
            name = _TYPE_NAMES.get(etype)
            self.fail(f"unsupported element type {etype}" + (f" ({name})" if name else "")
                      + "; only tetrahedra, triangles, lines and points are read")
        return _NODES_PER_TYPE[etype]

    # --- sections

    def read(self) -> TetMesh:
        if self.raw[:12].strip() != b"$MeshFormat":
            self.fail("not a Gmsh MSH file (no $MeshFormat header)")
        self.line()
        self.mesh_format()
        handlers = {"Nodes": self.nodes, "Elements": self.elements, "Entities": self.entities,
                    "NodeData": self.data_block, "ElementData": self.data_block}
        while True:
            self.skip_blank()
            if self.pos >= len(self.raw):
                return self.assemble()
            header = self.line()
            self.section = header
            if not header.startswith("$") or header.startswith("$End"):
                self.fail(f"expected a section header, found {header[:40]!r}")
            name = header[1:]
            if name == "PartitionedEntities":
                self.fail("partitioned meshes are not supported")
            if name in handlers:
                handlers[name](name)
            else:
                self.ascii_body(name)
            self.expect_end(name)

    def mesh_format(self):
        fields = self.line().split()
        if len(fields) != 3:
            self.fail("expected 'version file-type data-size'")
        version, file_type, data_size = fields
        if version.split(".")[0] == "2":
            self.version = 2
        elif version == "4.1":
            self.version = 4
        else:
            self.fail(f"unsupported MSH version {version} (2.2 and 4.1 are read)")
        if file_type not in ("0", "1") or data_size not in ("4", "8"):
            self.fail(f"bad file-type {file_type!r} or data-size {data_size!r}")
        self.binary, self.size_t = file_type == "1", int(data_size)
        if self.binary:
            one = self.raw[self.pos:self.pos + 4]
            if one in (b"\x01\0\0\0", b"\0\0\0\x01"):
                self.endian = "<" if one[0] == 1 else ">"
            else:
                self.fail("binary endianness check (integer 1) missing")
            self.pos += 4
        self.expect_end("MeshFormat")

    def entities(self, name: str):
        """4.1 $Entities: the physical tag of each curve, surface and volume."""
        self.open_numbers(name, np.float64)
        counts = self.next("s", 4)
        for dim in range(4):
            for _ in range(int(counts[dim])):
                tag = int(self.next("i", 1)[0])
                self.next("d", 3 if dim == 0 else 6)
                physical = self.next("i", self.next("s", 1)[0])
                if len(physical):
                    self.entity_tags[(dim, tag)] = int(physical[0])
                if dim > 0:
                    self.next("i", self.next("s", 1)[0])
        self.close_numbers()

    def nodes(self, name: str):
        if self.node_numbers is not None:
            self.fail("second $Nodes section")
        if self.version == 2:
            numbers, coords = self.nodes_v2(name)
        else:
            numbers, coords = self.nodes_v4(name)
        self.node_numbers, self.coords = _Lookup(numbers), coords
        if not self.node_numbers.unique:
            self.fail("duplicate node numbers")
        bad = ~np.isfinite(coords).all(axis=1)
        if bad.any():
            self.fail(f"{int(bad.sum())} of {len(bad)} nodes have NaN or infinite coordinates "
                      f"(first: node {int(numbers[np.argmax(bad)])})")

    def nodes_v2(self, name: str):
        n = self.count()
        if self.binary:
            e = self.endian
            rec = self.take(np.dtype([("n", f"{e}i4"), ("x", f"{e}f8", (3,))]), n)
            return rec["n"], rec["x"].astype(np.float64)
        values = self.numbers(self.ascii_body(name), np.float64)
        if values.size != 4 * n:
            self.fail(f"{n} nodes announced, but {values.size} values found (4 per node)")
        values = values.reshape(n, 4)
        return values[:, 0], values[:, 1:]

    def nodes_v4(self, name: str):
        self.open_numbers(name, np.float64)
        n_blocks, n_nodes = (int(v) for v in self.next("s", 4)[:2])
        numbers, coords = [], []
        for _ in range(n_blocks):
            dim, _, parametric = (int(v) for v in self.next("i", 3))
            k = int(self.next("s", 1)[0])
            numbers.append(self.next("s", k))
            width = 3 + (dim if parametric else 0)
            coords.append(self.next("d", k * width).reshape(k, width)[:, :3])
        self.close_numbers()
        found = sum(len(c) for c in coords)
        if found != n_nodes:
            self.fail(f"{n_nodes} nodes announced, but the blocks hold {found}")
        return (np.concatenate(numbers) if numbers else np.zeros(0),
                np.concatenate(coords).astype(np.float64) if coords else np.zeros((0, 3)))

    def keep(self, etype: int, numbers, tags, nodes):
        if etype in self.blocks:
            self.blocks[etype].append((np.asarray(numbers, np.int64),
                                       np.asarray(tags, np.int64), np.asarray(nodes, np.int64)))

    def elements(self, name: str):
        if self.version == 4:
            self.elements_v4(name)
        elif self.binary:
            self.elements_v2_binary()
        else:
            self.elements_v2_ascii(name)

    def elements_v2_binary(self):
        n, done = self.count(), 0
        i4 = np.dtype(f"{self.endian}i4")
        while done < n:
            etype, k, ntags = (int(v) for v in self.take(i4, 3))
            if k < 1 or done + k > n or ntags < 0:
                self.fail(f"bad element block header (type {etype}, {k} elements, {ntags} tags)")
            nn = self.nodes_per_element(etype)
            rec = self.take(i4, k * (1 + ntags + nn)).reshape(k, -1)
            tags = rec[:, 1] if ntags else np.zeros(k, np.int64)
            self.keep(etype, rec[:, 0], tags, rec[:, 1 + ntags:])
            done += k

    def elements_v2_ascii(self, name: str):
        """One element per line: number, type, ntags, tags..., nodes...; vectorised."""
        n = self.count()
        body = self.ascii_body(name)
        flat = self.numbers(body, np.int64)
        first, length = _line_tokens(body)
        if len(first) != n:
            self.fail(f"{n} elements announced, but {len(first)} lines found")
        if (length < 3).any():
            self.fail(f"element line {np.argmax(length < 3) + 1} is too short")
        etype, ntags = flat[first + 1], flat[first + 2]
        for t in np.unique(etype):
            self.nodes_per_element(int(t))
        nn = np.select([etype == t for t in _NODES_PER_TYPE], list(_NODES_PER_TYPE.values()))
        bad = np.flatnonzero(length != 3 + ntags + nn)
        if bad.size:
            self.fail(f"element line {bad[0] + 1} has {length[bad[0]]} values, "
                      f"expected {3 + ntags[bad[0]] + nn[bad[0]]}")
        for t in self.blocks:
            sel = etype == t
            start = first[sel] + 3 + ntags[sel]
            tags = np.where(ntags[sel] > 0, flat[first[sel] + 3], 0)
            conn = flat[start[:, None] + np.arange(_NODES_PER_TYPE[t])]
            self.keep(t, flat[first[sel]], tags, conn)

    def elements_v4(self, name: str):
        self.open_numbers(name, np.int64)
        n_blocks, n_elements = (int(v) for v in self.next("s", 4)[:2])
        found = 0
        for _ in range(n_blocks):
            dim, entity, etype = (int(v) for v in self.next("i", 3))
            k = int(self.next("s", 1)[0])
            nn = self.nodes_per_element(etype)
            rec = self.next("s", k * (1 + nn)).reshape(k, 1 + nn)
            tag = self.entity_tags.get((dim, entity), entity)
            self.keep(etype, rec[:, 0], np.full(k, tag), rec[:, 1:])
            found += k
        self.close_numbers()
        if found != n_elements:
            self.fail(f"{n_elements} elements announced, but the blocks hold {found}")

    def data_block(self, name: str):
        """$NodeData / $ElementData: string, real and integer tags, then number + values."""
        strings = [self.line() for _ in range(self.count())]
        for _ in range(self.count()):
            self.line()  # real tags (time value)
        ints = [self.line() for _ in range(self.count())]
        if len(ints) < 3:
            self.fail("fewer than 3 integer tags (time step, components, entries)")
        try:
            n_comp, n = int(ints[1]), int(ints[2])
        except ValueError:
            self.fail(f"bad integer tags {ints[:3]}")
        if n_comp < 1 or n < 0:
            self.fail(f"bad integer tags: {n_comp} components, {n} entries")
        label = strings[0].strip().strip('"') if strings else ""
        if self.binary:
            e = self.endian
            rec = self.take(np.dtype([("n", f"{e}i4"), ("v", f"{e}f8", (n_comp,))]), n)
            numbers, values = rec["n"], rec["v"]
        else:
            flat = self.numbers(self.ascii_body(name), np.float64)
            if flat.size != n * (1 + n_comp):
                self.fail(f"{label!r}: {n} entries announced ({1 + n_comp} values each with "
                          f"the number), but {flat.size} values found")
            flat = flat.reshape(n, 1 + n_comp)
            numbers, values = flat[:, 0], flat[:, 1:]
        self.data[name][label] = (np.asarray(numbers, np.int64), values.astype(np.float64))

    # --- result

    def assemble(self) -> TetMesh:
        if self.node_numbers is None:
            self.section = "$Nodes"
            self.fail("no $Nodes section (truncated?)")
        self.section = "$Elements"
        tets, tags, tet_numbers = self.connectivity(_TET)
        if not len(tets):
            self.fail("no tetrahedra (element type 4) in the file")
        tris, tri_tags, _ = self.connectivity(_TRI)
        return TetMesh(self.coords, tets, tags, tris, tri_tags,
                       self.per_entry("ElementData", _Lookup(tet_numbers), "tetrahedra"),
                       self.per_entry("NodeData", self.node_numbers, "nodes"))

    def connectivity(self, etype: int):
        """(zero-based node indices, tags, element numbers) of one element type."""
        blocks = self.blocks[etype]
        nn = _NODES_PER_TYPE[etype]
        if not blocks:
            return np.zeros((0, nn), np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
        numbers, tags, nodes = (np.concatenate(parts) for parts in zip(*blocks))
        index = self.node_numbers.find(nodes)
        if (index < 0).any():
            self.fail(f"element references unknown node {nodes[index < 0][0]}")
        return index.reshape(-1, nn), tags, numbers

    def per_entry(self, kind: str, lookup: _Lookup, what: str) -> dict:
        """Data blocks of `kind` ordered as `lookup`; entries it does not know are dropped."""
        self.section = f"${kind}"
        if self.data[kind] and not lookup.unique:
            self.fail(f"duplicate {what} numbers")
        out = {}
        for label, (numbers, values) in self.data[kind].items():
            pos = lookup.find(numbers)
            hit = pos >= 0
            covered = np.zeros(lookup.size, bool)
            covered[pos[hit]] = True
            if not covered.all():
                self.fail(f"{label!r} gives values for {covered.sum()} of {lookup.size} {what}")
            if hit.sum() != lookup.size:
                self.fail(f"{label!r} gives some {what} more than one value")
            field = np.empty((lookup.size, values.shape[1]))
            field[pos[hit]] = values[hit]
            out[label] = field[:, 0] if values.shape[1] == 1 else field
        return out


def _line_tokens(text: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Index of the first token and number of tokens of each non-empty line of `text`."""
    b = np.frombuffer(text, np.uint8)
    space = np.zeros(256, bool)
    space[[9, 10, 13, 32]] = True
    blank = space[b]
    starts = np.flatnonzero(np.r_[True, blank[:-1]] & ~blank)
    first = np.searchsorted(starts, np.r_[0, np.flatnonzero(b == 10) + 1])
    length = np.diff(np.r_[first, len(starts)])
    return first[length > 0], length[length > 0]


# ----------------------------------------------------------------------------- writing

def write_msh(path, mesh: TetMesh, element_data=None, node_data=None, binary: bool = True):
    """Write `mesh` as Gmsh MSH 2.2 (binary, or ASCII with binary=False), atomically.

    $Elements lists the triangles (type 2) first, then the tetrahedra (type 4), each with two
    tags (tag, tag). Element data (per tetrahedron: (m,), (m, 3), (m, 3, 3) or (m, 9)) and
    node data (per node) come from the mesh, with the arguments adding or replacing by name.
    Element data blocks cover every element: a triangle takes the value of a tetrahedron it
    bounds (0 where none), as SimNIBS's ElementData.assign_triangle_values does. (meshio 5.3,
    and pyvista through it, cannot read element data of files with more than one element
    type, SimNIBS's included: nschloe/meshio#1257.) Raises ValueError for data of the wrong
    size.
    """
    path = Path(path)
    edata = _columns({**mesh.element_data, **(element_data or {})}, mesh.n_tets, "element_data")
    ndata = _columns({**mesh.node_data, **(node_data or {})}, mesh.n_nodes, "node_data")
    if edata and len(mesh.tris):
        owner = _triangle_owner(mesh.tris, mesh.tets, mesh.n_nodes)
        edata = {name: np.concatenate([np.where(owner[:, None] >= 0, v[owner], 0.0), v])
                 for name, v in edata.items()}
    put = _write_binary if binary else _write_ascii
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(b"$MeshFormat\n2.2 %d 8\n" % binary)
        if binary:
            f.write(np.int32(1).tobytes() + b"\n")
        f.write(b"$EndMeshFormat\n")
        numbers = np.arange(1, mesh.n_nodes + 1)
        _section(f, "Nodes", [b"%d" % mesh.n_nodes], put, numbers, mesh.nodes)
        _write_elements(f, mesh, binary)
        numbers = np.arange(1, len(mesh.tris) + mesh.n_tets + 1)
        for name, values in edata.items():
            _section(f, "ElementData", _data_header(name, values), put, numbers, values)
        numbers = np.arange(1, mesh.n_nodes + 1)
        for name, values in ndata.items():
            _section(f, "NodeData", _data_header(name, values), put, numbers, values)


def _columns(data: dict, n: int, what: str) -> dict:
    """Data arrays as float64 (n, components) with 1, 3 or 9 components."""
    out = {}
    for name, values in data.items():
        arr = np.asarray(values, np.float64)
        if arr.ndim == 0 or arr.shape[0] != n:
            raise ValueError(f"write_msh: {what}[{name!r}] has {len(arr) if arr.ndim else 0} "
                             f"rows, expected {n}")
        arr = arr.reshape(n, -1)
        if arr.shape[1] not in (1, 3, 9):
            raise ValueError(f"write_msh: {what}[{name!r}] has {arr.shape[1]} components "
                             "per entry; MSH data take 1, 3 or 9")
        if '"' in name or "\n" in name:
            raise ValueError(f"write_msh: {what} name {name!r} contains a quote or line break")
        out[name] = arr
    return out


_TET_FACES = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]])


def _triangle_owner(tris: np.ndarray, tets: np.ndarray, n_nodes: int) -> np.ndarray:
    """For each triangle, the index of a tetrahedron having it as a face, or -1."""
    on_surface = np.zeros(n_nodes, bool)
    on_surface[tris] = True
    candidates = np.flatnonzero(on_surface[tets].sum(axis=1) >= 3)
    faces = tets[candidates][:, _TET_FACES].reshape(-1, 3)
    face_tet = np.repeat(candidates, 4)
    keep = on_surface[faces].all(axis=1)
    compact = np.cumsum(on_surface) - 1                # surface nodes numbered 0..p-1
    keys = face_keys(compact[np.concatenate([tris, faces[keep]])], int(on_surface.sum()))
    _, inverse = np.unique(keys, return_inverse=True)
    inverse = inverse.ravel()
    tet_of_key = np.full(inverse.max(initial=-1) + 1, -1, np.int64)
    tet_of_key[inverse[len(tris):]] = face_tet[keep]
    return tet_of_key[inverse[:len(tris)]]


def _data_header(name: str, values: np.ndarray) -> list[bytes]:
    """Header lines of a data block.

    String tag (name), real tag (time 0.0), integer tags as gmsh writes them: time step 0,
    components, entries, partition 0.
    """
    return [b"1", b'"%s"' % name.encode(), b"1", b"0.0", b"4", b"0",
            b"%d" % values.shape[1], b"%d" % len(values), b"0"]


def _write_elements(f, mesh: TetMesh, binary: bool):
    """Triangles then tetrahedra, numbered from 1, each with tags (tag, tag)."""
    k = len(mesh.tris)
    f.write(b"$Elements\n%d\n" % (k + mesh.n_tets))
    for etype, conn, tags, first in ((_TRI, mesh.tris, mesh.tri_tags, 1),
                                     (_TET, mesh.tets, mesh.tags, k + 1)):
        if not len(conn):
            continue
        numbers = np.arange(first, first + len(conn))
        rows = np.column_stack([numbers, tags, tags, conn + 1])
        if binary:
            f.write(np.array([etype, len(conn), 2], "<i4").tobytes())
            f.write(rows.astype("<i4").tobytes())
        else:
            type_ntags = np.tile([etype, 2], (len(conn), 1))
            _write_ascii(f, numbers, np.column_stack([type_ntags, rows[:, 1:]]))
    f.write(b"\n$EndElements\n" if binary else b"$EndElements\n")


def _section(f, name: str, header: list[bytes], put, numbers, values):
    f.write(b"$%s\n" % name.encode() + b"\n".join(header) + b"\n")
    put(f, numbers, values)
    f.write(b"%s$End%s\n" % (b"\n" if put is _write_binary else b"", name.encode()))


def _write_binary(f, numbers: np.ndarray, values: np.ndarray):
    """Records of an int32 number followed by float64 values."""
    rec = np.empty(len(numbers), [("n", "<i4"), ("v", "<f8", (values.shape[1],))])
    rec["n"], rec["v"] = numbers, values
    f.write(rec.tobytes())


def _write_ascii(f, numbers: np.ndarray, values: np.ndarray, chunk: int = 100_000):
    """Lines of a number followed by values (floats as %.17g, which keeps float64 exact)."""
    fmt = "%d" if np.issubdtype(values.dtype, np.integer) else "%.17g"
    line = " ".join(["%d"] + [fmt] * values.shape[1]) + "\n"
    for i in range(0, len(numbers), chunk):
        rows = np.column_stack([numbers[i:i + chunk], values[i:i + chunk]])
        f.write(((line * len(rows)) % tuple(rows.ravel().tolist())).encode())
