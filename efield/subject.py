"""SimNIBS subject folders (``m2m_<id>``, written by charm): head mesh and EEG positions."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from .eeg import project_to_scalp, read_eeg_positions
from .io import read_msh
from .mesh import TetMesh

DEFAULT_CAP = "EEG10-10_UI_Jurak_2007"
"""The 10-10 cap charm always writes (Jurcak et al. 2007, UI 10-10 system)."""
FAR_FROM_SCALP_MM = 10.0
"""A cap whose positions lie a median distance above this from the scalp draws a warning."""


def load_subject(m2m_dir, cap: str | None = DEFAULT_CAP) -> TetMesh:
    """The head mesh of a SimNIBS charm folder with the EEG positions of one cap.

    m2m_dir: the folder ``m2m_<id>``; the mesh is ``m2m_<id>/<id>.msh`` (mm, SimNIBS tissue
    tags), or ``<id>.msh`` beside the folder where SimNIBS 3's headreco put it, and the
    positions ``m2m_<id>/eeg_positions/<cap>.csv`` (subject space, mm). With
    cap=None the mesh comes without positions. Raises FileNotFoundError for a missing folder,
    mesh or cap (listing what the folder has), MshFormatError for an unreadable mesh and
    ValueError for a bad cap file, each naming the path. Warns when the positions lie far from
    the scalp (a cap in another space, such as MNI).
    """
    folder = Path(m2m_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (expected a SimNIBS charm folder "
                                "m2m_<id>)")
    name = folder.resolve().name
    if not name.startswith("m2m_") or name == "m2m_":
        raise ValueError(f"{folder}: a SimNIBS charm folder is named m2m_<id>, holding <id>.msh")
    inside, beside = folder / f"{name[4:]}.msh", folder.parent / f"{name[4:]}.msh"
    mesh_path = inside if inside.is_file() or not beside.is_file() else beside
    if not mesh_path.is_file():
        found = sorted(p.name for p in folder.glob("*.msh"))
        raise FileNotFoundError(f"{inside}: head mesh not found (charm writes m2m_<id>/<id>.msh); "
                                + (f"the folder has {', '.join(found)}" if found else
                                   "the folder has no .msh file"))
    mesh = read_msh(mesh_path)
    if cap is None:
        return mesh
    cap_path = folder / "eeg_positions" / f"{cap}.csv"
    if not cap_path.is_file():
        found = sorted(p.stem for p in (folder / "eeg_positions").glob("*.csv"))
        raise FileNotFoundError(f"{cap_path}: EEG cap not found; "
                                + (f"caps in the folder: {', '.join(found)}" if found else
                                   "the folder has no eeg_positions/*.csv (pass cap=None to "
                                   "load the mesh alone)"))
    positions = read_eeg_positions(cap_path)
    points = np.array(list(positions.values()))
    off = np.median(np.linalg.norm(project_to_scalp(mesh, points) - points, axis=1))
    if off > FAR_FROM_SCALP_MM:
        warnings.warn(f"{cap_path}: the positions lie a median {off:.1f} mm from the scalp of "
                      f"{mesh_path}; are they in the subject's space?", stacklevel=2)
    return mesh.with_eeg_positions(positions)
