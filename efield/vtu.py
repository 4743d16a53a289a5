"""VTK XML unstructured grids (.vtu): the tetrahedra with their data, for ParaView, pyvista and
meshio, which read them natively (meshio 5.3 cannot read the element data of a .msh with more
than one element type, see efield.write_msh).

Format: VTK's XML file formats, UnstructuredGrid, inline base64 "binary" arrays, each preceded
by its byte count as UInt64 (header_type="UInt64"); cell type 10 is the linear tetrahedron.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from tmsim_io import atomic_output
from .mesh import TetMesh

__all__ = ["write_vtu"]

_VTK_TETRA = 10
_VTK_TYPES = {np.dtype(np.float64): "Float64", np.dtype(np.int64): "Int64", np.dtype(np.uint8): "UInt8"}


def _array(name: str, values: np.ndarray) -> str:
    values = np.ascontiguousarray(values)
    raw = values.tobytes()
    payload = base64.b64encode(np.uint64(len(raw)).tobytes() + raw).decode("ascii")
    components = "" if values.ndim == 1 else f' NumberOfComponents="{values.shape[1]}"'
    return (f'<DataArray type="{_VTK_TYPES[values.dtype]}" Name="{name}"{components} '
            f'format="binary">{payload}</DataArray>\n')


def _per_row(data: dict, n: int, what: str) -> dict:
    out = {}
    for name, values in data.items():
        arr = np.asarray(values, np.float64)
        if arr.shape[0] != n or arr.ndim > 2:
            raise ValueError(f"{what}[{name!r}]: expected ({n},) or ({n}, k) values, got shape {arr.shape}")
        out[name] = arr
    return out


def write_vtu(path, mesh: TetMesh, element_data=None, node_data=None) -> Path:
    """Write the tetrahedra of `mesh` as a VTK XML unstructured grid, atomically.

    Cell data: "tag" (tissue) and element_data (per tetrahedron, (m,) or (m, k)); point data:
    node_data (per node). The mesh's own element and node data are included, the arguments
    adding or replacing by name. Coordinates as in the mesh (mm). Returns the path."""
    path = Path(path)
    cells = _per_row({**mesh.element_data, **(element_data or {})}, mesh.n_tets, "element_data")
    points = _per_row({**mesh.node_data, **(node_data or {})}, mesh.n_nodes, "node_data")
    cell_arrays = [_array("tag", mesh.tags.astype(np.int64))]
    cell_arrays += [_array(name, values) for name, values in cells.items()]
    parts = [
        '<?xml version="1.0"?>\n',
        '<VTKFile type="UnstructuredGrid" version="1.0" byte_order="LittleEndian" header_type="UInt64">\n',
        f'<UnstructuredGrid>\n<Piece NumberOfPoints="{mesh.n_nodes}" NumberOfCells="{mesh.n_tets}">\n',
        "<Points>\n", _array("Points", mesh.nodes.astype("<f8")), "</Points>\n",
        "<Cells>\n",
        _array("connectivity", mesh.tets.astype("<i8").ravel()),
        _array("offsets", 4 * np.arange(1, mesh.n_tets + 1, dtype="<i8")),
        _array("types", np.full(mesh.n_tets, _VTK_TETRA, np.uint8)),
        "</Cells>\n",
        "<CellData>\n", *cell_arrays, "</CellData>\n",
        "<PointData>\n", *[_array(name, values) for name, values in points.items()], "</PointData>\n",
        "</Piece>\n</UnstructuredGrid>\n</VTKFile>\n",
    ]
    with atomic_output(path) as tmp:
        tmp.write_text("".join(parts), encoding="ascii")
    return path
