"""The E-field of one coil placement, with its summary and writers (.msh, .h5)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from tmsim_io import atomic_hdf5
from .mesh import TISSUE_NAMES, TetMesh
from .placement import Placement


@dataclass(frozen=True, eq=False)
class EFieldResult:
    """E-field of one placement.

    E: (m, 3) total field per tetrahedron, V/m; potential: (n,) V per node; dadt: (n, 3) the
    primary dA/dt at the nodes, V/m (E = -grad(potential) - dA/dt); didt in A/s.
    """

    mesh: TetMesh
    E: np.ndarray
    potential: np.ndarray
    dadt: np.ndarray
    placement: Placement
    coil_name: str
    didt: float

    @cached_property
    def magnE(self) -> np.ndarray:
        """|E| per tetrahedron, V/m."""
        return np.linalg.norm(self.E, axis=1)

    def summary(self) -> dict:
        """Peak |E| overall and per tissue: max, 99.9th percentile (volume-weighted), where."""
        out = {"didt_A_per_s": self.didt, "coil": self.coil_name,
               "matsimnibs": self.placement.matsimnibs.tolist()}
        out.update(_peak(self.magnE, self.mesh.volumes, self.mesh.barycenters))
        out["tissues"] = {
            int(tag): {"name": TISSUE_NAMES.get(int(tag), str(tag)),
                       **_peak(self.magnE[sel], self.mesh.volumes[sel], self.mesh.barycenters[sel])}
            for tag in self.mesh.tissues for sel in [self.mesh.tags == tag]}
        return out

    def save(self, path) -> Path:
        """Write to `.msh` (Gmsh 2.2: E, magnE per element; v, D per node), `.vtu` (the same data,
        VTK XML for ParaView, pyvista and meshio) or `.h5`/`.hdf5`."""
        path = Path(path)
        data = dict(element_data={"E": self.E, "magnE": self.magnE},
                    node_data={"v": self.potential, "D": self.dadt})
        if path.suffix == ".msh":
            from .io import write_msh

            write_msh(path, self.mesh, **data)
        elif path.suffix == ".vtu":
            from .vtu import write_vtu

            write_vtu(path, self.mesh, **data)
        elif path.suffix in (".h5", ".hdf5"):
            self._save_hdf5(path)
        else:
            raise ValueError(f"{path}: unknown result format; use .msh, .vtu, .h5 or .hdf5")
        return path

    def _save_hdf5(self, path: Path):
        inner = self.mesh.tags == self.mesh.tissues[0]
        summary = self.summary()
        with atomic_hdf5(path) as (f, _):
            f.attrs["didt_A_per_s"] = self.didt
            f.attrs["coil"] = self.coil_name
            f.attrs["matsimnibs"] = self.placement.matsimnibs
            f.attrs["max_magnE_V_per_m"] = summary["max"]
            f.attrs["max_location_mm"] = summary["max_location_mm"]
            f.attrs["p99_9_magnE_V_per_m"] = summary["p99_9"]
            mesh = f.create_group("mesh")
            mesh["nodes_mm"], mesh["tets"], mesh["tags"] = self.mesh.nodes, self.mesh.tets, self.mesh.tags
            fields = f.create_group("fields")
            for name, data in (("E_V_per_m", self.E), ("magnE_V_per_m", self.magnE),
                               ("v_V", self.potential), ("D_V_per_m", self.dadt)):
                fields.create_dataset(name, data=data, compression="gzip", compression_opts=1)
            tissue = f.create_group("innermost_tissue")
            tissue.attrs["tag"] = self.mesh.tissues[0]
            tissue["barycenters_mm"] = self.mesh.barycenters[inner]
            tissue["E_V_per_m"] = self.E[inner]
            tissue["magnE_V_per_m"] = self.magnE[inner]
            for tag, stats in summary["tissues"].items():
                g = f.create_group(f"summary/tissue_{tag}")
                for key, value in stats.items():
                    g.attrs[key] = value


def _peak(magnE: np.ndarray, volumes: np.ndarray, where: np.ndarray) -> dict:
    """max |E| with its location and the volume-weighted 99.9th percentile, V/m."""
    i = int(np.argmax(magnE))
    order = np.argsort(magnE)
    cum = np.cumsum(volumes[order]) / volumes.sum()
    p999 = magnE[order][min(np.searchsorted(cum, 0.999), len(order) - 1)]
    return {"max": float(magnE[i]), "max_location_mm": where[i].tolist(), "p99_9": float(p999)}
