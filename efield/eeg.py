"""EEG electrode positions: SimNIBS cap files (.csv) and MNE's standard montages on a scalp.

SimNIBS keeps a subject's 10-10 positions in ``m2m_<id>/eeg_positions/<cap>.csv``, one
position per line, ``Type,x,y,z,label`` with no header and coordinates in mm, e.g.
``Electrode,-49.1,52.5,39.3,F3`` or ``Fiducial,0.0,82.9,-43.0,Nz``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tmsim_io import atomic_output
from .mesh import TetMesh

LABELLED_ROWS = ("Electrode", "ReferenceElectrode", "Fiducial")
"""Row types that carry a label in the fifth column."""
UNLABELLED_ROWS = ("Generic", "CoilPos")
"""Row types SimNIBS also writes, without an electrode label; they are skipped."""
FIDUCIALS = ("Nz", "LPA", "RPA")
"""Labels written as Fiducial rows: nasion, left and right preauricular points."""


def read_eeg_positions(path) -> dict[str, np.ndarray]:
    """Positions (label -> (3,) mm) from a SimNIBS EEG cap file (.csv).

    Rows ``Electrode``, ``ReferenceElectrode`` and ``Fiducial`` are read as
    ``Type,x,y,z,label[,...]`` (further columns ignored); ``Generic`` and ``CoilPos`` rows and
    blank lines are skipped. A label met again (SimNIBS caps list Iz as an electrode and as a
    fiducial), also in another case, keeps its first row. Raises ValueError naming the file and
    line of a bad row, or when the file holds no position; OSError when it cannot be read.
    """
    path = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a text file ({err.reason})") from err
    positions, seen = {}, set()
    for number, line in enumerate(text.splitlines(), start=1):
        fields = [f.strip() for f in line.split(",")]
        if fields == [""] or fields[0] in UNLABELLED_ROWS:
            continue
        where = f"{path}, line {number}"
        if fields[0] not in LABELLED_ROWS:
            raise ValueError(f"{where}: row type {fields[0][:40]!r} is none of "
                             f"{', '.join(LABELLED_ROWS + UNLABELLED_ROWS)}")
        if len(fields) < 5 or not fields[4]:
            raise ValueError(f"{where}: expected '{fields[0]},x,y,z,label', found {line[:80]!r}")
        try:
            xyz = np.array([float(v) for v in fields[1:4]])
        except ValueError:
            raise ValueError(f"{where}: coordinates {', '.join(fields[1:4])[:60]!r} are not "
                             "numbers") from None
        if not np.isfinite(xyz).all():
            raise ValueError(f"{where}: coordinates must be finite, got {xyz.tolist()}")
        if fields[4].casefold() not in seen:
            positions[fields[4]] = xyz
            seen.add(fields[4].casefold())
    if not positions:
        raise ValueError(f"{path}: no electrode or fiducial positions found")
    return positions


def write_eeg_positions(path, positions) -> Path:
    """Write positions (label -> (3,) mm) as a SimNIBS EEG cap file (.csv), atomically.

    Nz, LPA and RPA become Fiducial rows, every other label an Electrode row; coordinates are
    written exactly (shortest round-trip form). Raises ValueError, before writing anything, for
    a label with a comma or line break or coordinates that are not 3 finite numbers.
    """
    lines = []
    for label, xyz in positions.items():
        label = str(label).strip()
        if not label or any(c in label for c in ",\r\n"):
            raise ValueError(f"write_eeg_positions: label {label!r} is empty or contains a comma "
                             "or line break")
        xyz = np.asarray(xyz, dtype=np.float64)
        if xyz.shape != (3,) or not np.isfinite(xyz).all():
            raise ValueError(f"write_eeg_positions: {label!r} needs 3 finite coordinates in mm, "
                             f"got {xyz.tolist()}")
        kind = "Fiducial" if label in FIDUCIALS else "Electrode"
        lines.append(f"{kind},{','.join(repr(float(v)) for v in xyz)},{label}\n")
    path = Path(path)
    with atomic_output(path) as tmp:
        tmp.write_text("".join(lines))
    return path


def project_to_scalp(mesh: TetMesh, points_mm) -> np.ndarray:
    """The closest points (n, 3) mm of the mesh's outer surface to points (n, 3) mm."""
    from .geometry import surface_index

    points = np.asarray(points_mm, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or not np.isfinite(points).all():
        raise ValueError(f"project_to_scalp: points_mm must be finite (n, 3), got shape {points.shape}")
    return surface_index(mesh).closest(points)[0]


def standard_positions(mesh: TetMesh, montage: str = "fsaverage_1005") -> dict[str, np.ndarray]:
    """MNE's standard EEG positions (label -> (3,) mm) projected onto the mesh's scalp.

    montage: an MNE built-in montage name (``mne.channels.get_builtin_montages()``). The
    default, fsaverage_1005, holds the 10-05 positions (all 10-10 and 10-20 labels) in
    fsaverage's frame, on MNE's fsaverage scalp: it suits the template head. The
    ``spherical_*`` montages lie on a sphere of radius 95 mm about the origin (+x right,
    +y anterior, +z superior), which suits `sphere_head` with its default centre. The
    fiducials are added as Nz, LPA and RPA. Each position is moved to the closest point of
    the mesh's outer surface.
    """
    import mne

    if montage not in mne.channels.get_builtin_montages():
        raise ValueError(f"montage={montage!r}: not an MNE built-in montage (see "
                         "mne.channels.get_builtin_montages(); MNE 1.13 renamed standard_1020 "
                         "and standard_1005 to colin27_1020 and colin27_1005)")
    found = mne.channels.make_standard_montage(montage).get_positions()
    points = dict(found["ch_pos"])
    for key, label in zip(("nasion", "lpa", "rpa"), FIDUCIALS):
        if found[key] is not None:
            points[label] = found[key]
    projected = project_to_scalp(mesh, 1e3 * np.array(list(points.values())))
    return dict(zip(points, projected))
