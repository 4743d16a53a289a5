"""TMS coil models: magnetic dipoles and line-current segments in the coil frame.

Coil frame (SimNIBS): origin at the centre of the casing's bottom surface, z points into the
head, y along the handle, x = y cross z. Lengths in the public API are millimetres; dipole
moments are A*m^2 per ampere of coil current (that is, m^2), segment vectors are mm per
ampere. A coil carries a single current; fields scale with its dI/dt in A/s.

File formats (SimNIBS):

* ``.ccd`` (text): a header line ``# <free text>; key=value; key=value; ...`` (``dIdtmax`` in
  A/us, comma-separated when there are several stimulators; ``coilname``, ``stimulator``,
  ``brand``, ...), a line with the number of dipoles, a comment line, then one row
  ``x y z mx my mz`` per dipole with positions in metres and moments in A*m^2 per A.
* ``.tcd`` (JSON): ``coilElementList`` of elements of type 1 (dipoles: ``points`` in mm,
  ``values`` moments in A*m^2 per A), type 2 (line segments: ``points`` are the segment
  positions (midpoints) in mm, ``values`` the segment vectors in mm) or type 3 (A-field
  sampled on a grid, not supported). ``points``/``values`` are lists or base64 strings of
  zlib-compressed float64. ``stimulatorList[i].maxdIdt`` is in A/s.
"""

from __future__ import annotations

import base64
import json
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import numpy as np

from tmsim_io import atomic_output

CCD_DIDT_UNIT = 1e6
"""A .ccd header gives dIdtmax in A/us; this converts it to A/s."""

FIGURE8_70MM_DIDT_MAX = 1.15e8
"""Default maximum dI/dt of the 70 mm figure-8 preset, A/s (about 115 A/us: the value measured
for a Magstim D70 figure-8 on a Magstim Rapid stimulator, Drakaki et al. 2022)."""


class CoilFormatError(ValueError):
    """A .ccd or .tcd coil file that cannot be read; the message names the file and the line
    or key."""


def _vectors(a, name: str) -> np.ndarray:
    arr = np.array(a, dtype=np.float64, copy=True)
    if arr.size == 0:
        arr = arr.reshape(0, 3)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"Coil.{name}: expected shape (k, 3), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"Coil.{name}: contains NaN or infinite values")
    arr.flags.writeable = False
    return arr


def _empty():
    return np.zeros((0, 3))


@dataclass(frozen=True, eq=False)
class Coil:
    """A TMS coil as magnetic dipoles and/or straight current segments (coil frame).

    dipole_positions: (k, 3) mm; dipole_moments: (k, 3) A*m^2 per A of coil current.
    segment_positions: (s, 3) segment midpoints, mm; segment_vectors: (s, 3) direction times
    length, mm (current flows along the vector).
    didt_max: the stimulator's maximum dI/dt, A/s, or None when unknown.
    header: further text fields kept from a file (e.g. ``brand``, ``stimulator``); when a
    file is written, ``name`` and ``didt_max`` take precedence over ``coilname``/``dIdtmax``.
    """

    dipole_positions: np.ndarray = field(default_factory=_empty)
    dipole_moments: np.ndarray = field(default_factory=_empty)
    segment_positions: np.ndarray = field(default_factory=_empty)
    segment_vectors: np.ndarray = field(default_factory=_empty)
    didt_max: float | None = None
    name: str = "coil"
    header: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        set_ = object.__setattr__
        for name in ("dipole_positions", "dipole_moments", "segment_positions", "segment_vectors"):
            set_(self, name, _vectors(getattr(self, name), name))
        if len(self.dipole_positions) != len(self.dipole_moments):
            raise ValueError(f"Coil: {len(self.dipole_positions)} dipole positions for "
                             f"{len(self.dipole_moments)} moments")
        if len(self.segment_positions) != len(self.segment_vectors):
            raise ValueError(f"Coil: {len(self.segment_positions)} segment positions for "
                             f"{len(self.segment_vectors)} vectors")
        if self.didt_max is not None:
            didt_max = float(self.didt_max)
            if not (math.isfinite(didt_max) and didt_max > 0):
                raise ValueError(f"Coil.didt_max must be positive and finite, got {self.didt_max}")
            set_(self, "didt_max", didt_max)
        set_(self, "header", MappingProxyType({str(k): str(v) for k, v in self.header.items()}))

    def __repr__(self):
        didt = "unknown" if self.didt_max is None else f"{self.didt_max:.3g} A/s"
        return (f"Coil({self.name!r}: {len(self.dipole_positions)} dipoles, "
                f"{len(self.segment_positions)} segments, dIdt_max {didt})")

    @property
    def n_elements(self) -> int:
        """Number of dipoles plus number of segments."""
        return len(self.dipole_positions) + len(self.segment_positions)

    @property
    def total_moment(self) -> np.ndarray:
        """Magnetic moment of the whole coil, (3,) A*m^2 per A.

        The dipoles' moments plus 1/2 sum(r x dl) of the segments (meaningful for closed
        current paths).
        """
        segments = 0.5 * np.cross(self.segment_positions, self.segment_vectors).sum(axis=0) * 1e-6
        return self.dipole_moments.sum(axis=0) + segments

    # --- construction -------------------------------------------------------------------

    @classmethod
    def from_wire(cls, path_mm, closed: bool = True, **kwargs) -> "Coil":
        """A coil of straight segments along a wire path, (p, 3) mm, in the current's direction.

        closed: join the last point back to the first. Other keyword arguments go to Coil.
        """
        path = _vectors(path_mm, "wire path")
        if len(path) < 2:
            raise ValueError("Coil.from_wire: a wire path needs at least two points")
        if closed:
            path = np.vstack([path, path[:1]])
        return cls(segment_positions=0.5 * (path[1:] + path[:-1]),
                   segment_vectors=np.diff(path, axis=0), **kwargs)

    # --- .ccd ---------------------------------------------------------------------------

    @classmethod
    def from_ccd(cls, path) -> "Coil":
        """Read a SimNIBS .ccd dipole file (positions in m in the file, mm in the Coil).

        Raises CoilFormatError (a ValueError) naming the file and line on any problem.
        """
        path = Path(path)
        lines = _read_text(path, "text .ccd").splitlines()
        if len(lines) < 2:
            raise CoilFormatError(f"{path}: a .ccd file needs a header line and a dipole count line")
        header = _parse_ccd_header(lines[0], path)
        try:
            count = int(lines[1].split()[0])
        except (ValueError, IndexError):
            raise CoilFormatError(f"{path}, line 2: expected the number of dipoles, got "
                                  f"{lines[1].strip()!r}") from None
        rows = _parse_ccd_rows(lines[2:], path, first_line=3)
        if len(rows) != count or count < 1:
            raise CoilFormatError(f"{path}: line 2 announces {count} dipoles, the file has {len(rows)}"
                                  + ("" if count >= 1 else "; a coil needs at least one"))
        didt = header.get("dIdtmax")
        name = header.get("coilname") or path.stem
        return _coil_from_file(path, dipole_positions=rows[:, :3] * 1e3, dipole_moments=rows[:, 3:],
                               didt_max=_ccd_didt(didt, path) if didt else None, name=name,
                               header=header)

    def to_ccd(self, path) -> None:
        """Write the dipoles as a SimNIBS .ccd file; refuses a coil with line segments."""
        if len(self.segment_positions):
            raise ValueError(f"{path}: a .ccd file holds only dipoles; this coil has "
                             f"{len(self.segment_positions)} line segments")
        fields = dict(self.header)
        text = fields.pop("description", "coil dipoles, ccd version 1.1")
        fields["coilname"] = self.name
        if self.didt_max is None:
            fields.pop("dIdtmax", None)
        elif not self._header_didt_matches():
            fields["dIdtmax"] = f"{self.didt_max / CCD_DIDT_UNIT:.12g}"
        head = "; ".join([text] + [f"{k}={v}" for k, v in fields.items()])
        rows = np.hstack([self.dipole_positions * 1e-3, self.dipole_moments])
        with atomic_output(path) as tmp, open(tmp, "w") as f:
            f.write(f"# {head}\n{len(rows)}\n"
                    "# centers and weighted directions of the elements (magnetic dipoles)\n")
            np.savetxt(f, rows, fmt="%.16e")

    def _header_didt_matches(self) -> bool:
        """True when header['dIdtmax'] (A/us, first value) equals didt_max."""
        try:
            first = float(self.header["dIdtmax"].split(",")[0]) * CCD_DIDT_UNIT
        except (KeyError, ValueError):
            return False
        return math.isclose(first, self.didt_max, rel_tol=1e-12)

    # --- .tcd ---------------------------------------------------------------------------

    @classmethod
    def from_tcd(cls, path) -> "Coil":
        """Read a SimNIBS 4 .tcd coil definition with dipole and line-segment elements.

        Elements sampled on a grid (type 3) and elements whose deformations move them away
        from the stored geometry (a non-zero initial deformation value) are refused, as are
        coils whose elements use different stimulators. Raises CoilFormatError (a ValueError)
        naming the file and the key (e.g. ``coilElementList[0].points``) on any problem.
        """
        path = Path(path)
        try:
            tcd = json.loads(_read_text(path, "JSON .tcd"))
        except json.JSONDecodeError as err:
            raise CoilFormatError(f"{path}: not a JSON .tcd file ({err})") from None
        if not isinstance(tcd, dict):
            raise CoilFormatError(f"{path}: expected a JSON object, got {_json_type(tcd)}")
        tcd_file = _TcdFile(path, tcd)
        elements = tcd_file.get(tcd, "coilElementList", list, tcd_file.top)
        if not elements:
            tcd_file.fail(tcd_file.top("coilElementList"), "empty; a coil needs at least one element")
        parts = {1: ([], []), 2: ([], [])}
        stimulators = set()
        for i, element in enumerate(elements):
            if not isinstance(element, dict):
                tcd_file.fail(tcd_file.top(f"coilElementList[{i}]"),
                              f"expected an object, got {_json_type(element)}")
            at = tcd_file.element(i, element.get("name", "unnamed"))
            kind = tcd_file.get(element, "type", int, at)
            if kind not in parts:
                what = "A-field sampled on a grid" if kind == 3 else f"type {kind!r}"
                tcd_file.fail(at("type"), f"{what} elements are not supported "
                              "(only dipoles, type 1, and line segments, type 2)")
            for k, index in enumerate(tcd_file.get(element, "deformations", list, at, [])):
                tcd_file.check_deformation(index, at(f"deformations[{k}]"))
            points = tcd_file.vectors(element, "points", at)
            values = tcd_file.vectors(element, "values", at)
            if len(points) != len(values):
                tcd_file.fail(at("values"), f"{len(values)} values for {len(points)} points")
            parts[kind][0].append(points)
            parts[kind][1].append(values)
            stimulators.add(tcd_file.get(element, "stimulator", int, at, 0))
        if len(stimulators) > 1:
            raise CoilFormatError(f"{path}: elements use several stimulators {sorted(stimulators)}; "
                                  "a Coil carries a single current")
        didt_max, header = tcd_file.stimulator(stimulators.pop())
        header.update({k: str(tcd[k]) for k in ("brand", "version") if k in tcd})
        return _coil_from_file(path, dipole_positions=_stack(parts[1][0]),
                               dipole_moments=_stack(parts[1][1]),
                               segment_positions=_stack(parts[2][0]),
                               segment_vectors=_stack(parts[2][1]), didt_max=didt_max,
                               name=str(tcd.get("name") or path.stem), header=header)


# --- file helpers -----------------------------------------------------------------------

def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise CoilFormatError(f"{path}: no such file") from None
    except OSError as err:
        raise CoilFormatError(f"{path}: cannot read file ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise CoilFormatError(f"{path}: not a {what} file ({err})") from None


def _coil_from_file(path: Path, **fields) -> "Coil":
    """Coil(**fields), with any remaining value error naming the file."""
    try:
        return Coil(**fields)
    except ValueError as err:
        raise CoilFormatError(f"{path}: {err}") from None


# --- .ccd helpers -----------------------------------------------------------------------

def _parse_ccd_header(line: str, path: Path) -> dict[str, str]:
    """Fields of the first line; text that is not ``key=value`` is kept as 'description'."""
    if not line.startswith("#"):
        raise CoilFormatError(f"{path}, line 1: expected a header line starting with '#'")
    header, text = {}, []
    for item in line[1:].split(";"):
        key, eq, value = item.partition("=")
        if eq:
            header[key.strip()] = value.strip()
        elif item.strip():
            text.append(item.strip())
    if text:
        header = {"description": "; ".join(text), **header}
    return header


def _ccd_didt(value: str, path: Path) -> float:
    try:
        didt = float(value.split(",")[0]) * CCD_DIDT_UNIT
    except ValueError:
        raise CoilFormatError(f"{path}, line 1: dIdtmax={value!r} is not a number") from None
    if not (math.isfinite(didt) and didt > 0):
        raise CoilFormatError(f"{path}, line 1: dIdtmax={value!r} must be a positive finite number (A/us)")
    return didt


def _parse_ccd_rows(lines: list[str], path: Path, first_line: int) -> np.ndarray:
    rows = []
    for number, line in enumerate(lines, start=first_line):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            row = [float(v) for v in text.split()]
        except ValueError:
            row = []
        if len(row) != 6 or not all(map(math.isfinite, row)):
            raise CoilFormatError(f"{path}, line {number}: expected six finite numbers "
                             f"'x y z mx my mz', got {text[:80]!r}")
        rows.append(row)
    return np.array(rows, dtype=np.float64).reshape(-1, 6)


# --- .tcd helpers -----------------------------------------------------------------------

_JSON_TYPES = {list: "a list", dict: "an object", int: "an integer", float: "a number", str: "a string",
               (int, float): "a number", (list, str): "a list or a base64 string"}


def _json_type(value) -> str:
    """The JSON type of a parsed value, for messages."""
    for kind, name in _JSON_TYPES.items():
        if isinstance(value, kind) and not isinstance(value, bool):
            return f"{name} ({value!r})" if kind in (int, float) else name
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else repr(value)


_REQUIRED = object()


class _TcdFile:
    """Checked access to a parsed .tcd; every error is a CoilFormatError naming the file and the
    key: `top(key)` and `element(i, name)(key)` give the text that locates a key."""

    def __init__(self, path: Path, tcd: dict):
        self.path, self.tcd = path, tcd

    def fail(self, where: str, problem: str):
        raise CoilFormatError(f"{self.path}{where}: {problem}")

    @staticmethod
    def top(key: str) -> str:
        return f": {key}"

    @staticmethod
    def element(i: int, name):
        return lambda key: f", element {i} ({name!r}), {key} (coilElementList[{i}].{key})"

    def get(self, obj: dict, key: str, kind: type, where, default=_REQUIRED):
        """obj[key], which must have JSON type `kind` (int: a non-negative integer)."""
        if key not in obj:
            if default is _REQUIRED:
                self.fail(where(key), "missing")
            return default
        value = obj[key]
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0):
            expected = "a non-negative integer" if kind is int else _JSON_TYPES[kind]
            self.fail(where(key), f"expected {expected}, got {_json_type(value)}")
        return value

    def vectors(self, element: dict, key: str, where) -> np.ndarray:
        """An (n, 3) float64 array: a JSON list of 3-vectors, or a base64 string of
        zlib-compressed float64 (3 per vector)."""
        value = self.get(element, key, (list, str), where)
        try:
            if isinstance(value, str):
                arr = np.frombuffer(zlib.decompress(base64.b64decode(value)), dtype=np.float64)
                if arr.size % 3:
                    self.fail(where(key), f"{arr.size} packed float64 values, not a multiple of 3")
                arr = arr.reshape(-1, 3)
            else:
                arr = np.array(value, dtype=np.float64)
        except (TypeError, ValueError, zlib.error) as err:
            self.fail(where(key), f"expected an (n, 3) array of numbers ({err})")
        if arr.ndim != 2 or arr.shape[1] != 3 or not len(arr):
            self.fail(where(key), f"expected an (n, 3) array with n >= 1, got shape {arr.shape}")
        if not np.isfinite(arr).all():
            self.fail(where(key), "NaN or infinite values")
        return arr

    def check_deformation(self, index, where: str):
        """Refuse a deformation that is not the identity at its initial value."""
        deform_list = self.get(self.tcd, "deformList", list, self.top, [])
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(deform_list):
            self.fail(where, f"deformation {index!r} is not an index of deformList "
                      f"({len(deform_list)} entries)")
        at = self.top(f"deformList[{index}]")
        deform = deform_list[index]
        if not isinstance(deform, dict):
            self.fail(at, f"expected an object, got {_json_type(deform)}")
        # older files keep "initial" in the deformation, newer ones in deformRangeList
        initial = deform.get("initial")
        if initial is None:
            ranges = self.get(self.tcd, "deformRangeList", list, self.top, [])
            k = self.get(deform, "deformRange", int, lambda key: f"{at}.{key}")
            if k >= len(ranges) or not isinstance(ranges[k], dict):
                self.fail(f"{at}.deformRange", f"{k} is not an index of deformRangeList "
                          f"({len(ranges)} entries)")
            at = self.top(f"deformRangeList[{k}]")
            initial = self.get(ranges[k], "initial", (int, float), lambda key: f"{at}.{key}")
        elif isinstance(initial, bool) or not isinstance(initial, (int, float)):
            self.fail(f"{at}.initial", f"expected a number, got {_json_type(initial)}")
        if initial != 0:
            self.fail(where, f"deformation {index} ({deform.get('type')!r}) has initial value "
                      f"{initial}; deformed elements are not supported")

    def stimulator(self, index: int) -> tuple[float | None, dict[str, str]]:
        """The stimulator's maximum dI/dt (A/s) and its name/brand as header fields."""
        stimulators = self.get(self.tcd, "stimulatorList", list, self.top, [])
        if not stimulators:
            return None, {}
        if index >= len(stimulators):
            self.fail(self.top("stimulatorList"), f"the elements use stimulator {index}, but the "
                      f"list has {len(stimulators)}")
        at = f"stimulatorList[{index}]"
        stim = stimulators[index]
        if not isinstance(stim, dict):
            self.fail(self.top(at), f"expected an object, got {_json_type(stim)}")
        didt = stim.get("maxdIdt")
        if didt is not None and (isinstance(didt, bool) or not isinstance(didt, (int, float))
                                 or not (math.isfinite(didt) and didt > 0)):
            self.fail(self.top(f"{at}.maxdIdt"), f"expected a positive number (A/s), got {_json_type(didt)}")
        header = {}
        if "name" in stim:
            header["stimulator"] = str(stim["name"])
        if "brand" in stim:
            header["stimulator_brand"] = str(stim["brand"])
        return didt, header


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
    return np.vstack(arrays) if arrays else _empty()


# --- built-in coils ---------------------------------------------------------------------

def _disk_dipoles(radii_mm, resolution_mm: float):
    """Dipoles on a polar grid over the disk wound by circular turns of the given radii.

    Each patch (annular sector) gets moment = integral over the patch of the number of turns
    enclosing each point, in m^2 along +z, placed at its moment-weighted centroid.
    Returns positions (k, 2) mm in the disk plane and moments (k,) m^2.
    """
    radii = np.sort(np.asarray(radii_mm, dtype=np.float64))
    outer = radii[-1]
    edges = np.linspace(0.0, outer, max(1, math.ceil(outer / resolution_mm)) + 1)
    positions, moments = [], []
    for r1, r2 in zip(edges[:-1], edges[1:]):
        r_hi = np.clip(radii, r1, r2)
        area_per_rad = np.sum(r_hi**2 - r1**2) / 2        # integral n(r) r dr
        first_per_rad = np.sum(r_hi**3 - r1**3) / 3       # integral n(r) r^2 dr
        n_sectors = max(3, round(2 * math.pi * 0.5 * (r1 + r2) / resolution_mm))
        dtheta = 2 * math.pi / n_sectors
        theta = (np.arange(n_sectors) + 0.5) * dtheta
        radius = first_per_rad / area_per_rad * np.sinc(dtheta / (2 * math.pi))
        positions.append(radius * np.column_stack([np.cos(theta), np.sin(theta)]))
        moments.append(np.full(n_sectors, area_per_rad * dtheta * 1e-6))
    return np.vstack(positions), np.concatenate(moments)


def _layer_depths(layers: int, layer_spacing_mm: float, winding_height_mm: float) -> np.ndarray:
    """z (mm) of each winding layer, centred winding_height_mm above the bottom (z = 0)."""
    if layers < 1:
        raise ValueError(f"layers must be at least 1, got {layers}")
    return -winding_height_mm + layer_spacing_mm * (np.arange(layers) - (layers - 1) / 2)


def _turn_radii(turns: int, inner_radius_mm: float, outer_radius_mm: float) -> np.ndarray:
    if turns < 1 or not 0 < inner_radius_mm <= outer_radius_mm:
        raise ValueError(f"need turns >= 1 and 0 < inner <= outer radius, got {turns} turns, "
                         f"{inner_radius_mm}-{outer_radius_mm} mm")
    return np.linspace(inner_radius_mm, outer_radius_mm, turns)


def _winding(radii, centre_xy, sense: float, depths, resolution_mm):
    """Dipoles (positions mm, moments m^2) of one flat winding repeated over the layers."""
    xy, m = _disk_dipoles(radii, resolution_mm)
    positions = [np.column_stack([xy + centre_xy, np.full(len(xy), z)]) for z in depths]
    moment = np.column_stack([np.zeros((len(m), 2)), sense * m / len(depths)])
    return np.vstack(positions), np.vstack([moment] * len(depths))


def circular_coil(turns: int = 15, inner_radius_mm: float = 33.0, outer_radius_mm: float = 57.0,
                  layers: int = 1, layer_spacing_mm: float = 2.0, winding_height_mm: float = 5.0,
                  resolution_mm: float = 4.0, didt_max: float | None = None,
                  name: str = "circular") -> Coil:
    """A flat round coil of circular turns centred on the coil axis, as magnetic dipoles.

    The turns' radii are spread evenly from inner to outer radius (defaults: a generic 90 mm
    round coil, mean winding diameter 90 mm). The turns are shared evenly between `layers`
    planes `layer_spacing_mm` apart whose mid-plane lies `winding_height_mm` above the
    casing's bottom surface (z = -winding_height_mm). Positive current circulates
    counter-clockwise about +z (moment along +z). resolution_mm: size of the polar grid's
    patches.
    """
    radii = _turn_radii(turns, inner_radius_mm, outer_radius_mm)
    depths = _layer_depths(layers, layer_spacing_mm, winding_height_mm)
    positions, moments = _winding(radii, np.zeros(2), 1.0, depths, resolution_mm)
    return Coil(positions, moments, didt_max=didt_max, name=name)


def figure8_coil(turns: int = 9, inner_radius_mm: float = 26.0, outer_radius_mm: float = 44.0,
                 wing_spacing_mm: float = 88.0, layers: int = 1, layer_spacing_mm: float = 2.0,
                 winding_height_mm: float = 5.0, resolution_mm: float = 4.0,
                 didt_max: float | None = None, name: str = "figure8") -> Coil:
    """A flat figure-8 coil: two round windings with centres at x = +-wing_spacing_mm / 2.

    Winding geometry as in circular_coil. The wing at +x has its moment along +z, the wing
    at -x along -z, as in SimNIBS's figure-8 models (e.g. Magstim_70mm_Fig8.ccd): positive
    current flows along -y where the wings meet, so dA/dt under the centre points along -y
    and, for positive dI/dt, the primary field E = -dA/dt along +y, the handle direction.
    """
    radii = _turn_radii(turns, inner_radius_mm, outer_radius_mm)
    depths = _layer_depths(layers, layer_spacing_mm, winding_height_mm)
    half = wing_spacing_mm / 2
    right = _winding(radii, np.array([half, 0.0]), 1.0, depths, resolution_mm)
    left = _winding(radii, np.array([-half, 0.0]), -1.0, depths, resolution_mm)
    return Coil(np.vstack([right[0], left[0]]), np.vstack([right[1], left[1]]),
                didt_max=didt_max, name=name)


def figure8_70mm(resolution_mm: float = 4.0) -> Coil:
    """Model of the Magstim 70 mm figure-8 coil after Thielscher & Kammer (2004).

    9 turns per wing with radii 26-44 mm, wing centres at x = +-44 mm, windings in three
    layers 2.33 mm apart centred 6.5 mm above the casing's bottom (z = -4.17, -6.5,
    -8.83 mm). Per-wing moment sum(pi r_i^2) = 0.0356 m^2. didt_max = FIGURE8_70MM_DIDT_MAX.
    """
    return figure8_coil(turns=9, inner_radius_mm=26.0, outer_radius_mm=44.0,
                        wing_spacing_mm=88.0, layers=3, layer_spacing_mm=7.0 / 3.0,
                        winding_height_mm=6.5, resolution_mm=resolution_mm,
                        didt_max=FIGURE8_70MM_DIDT_MAX, name="Magstim 70 mm figure-8")


BUILTIN_COILS = ("fig8-70", "circular")
"""Names of the built-in coils that `load_coil` knows."""


def load_coil(spec) -> Coil:
    """A built-in coil by name (`BUILTIN_COILS`: the 70 mm figure-8, the circular coil) or a
    SimNIBS coil file (.ccd or .tcd); ValueError (CoilFormatError for a bad file, OSError for an
    unreadable one) otherwise."""
    if spec == "fig8-70":
        return figure8_70mm()
    if spec == "circular":
        return circular_coil()
    path = Path(spec)
    if path.suffix == ".ccd":
        return Coil.from_ccd(path)
    if path.suffix == ".tcd":
        return Coil.from_tcd(path)
    raise ValueError(f"expected a built-in coil {BUILTIN_COILS} or a .ccd/.tcd file, got {spec!r}")
