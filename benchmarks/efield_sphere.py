"""E-field FEM on sphere heads: tmsim against scikit-fem + pyamg in the same run.

For each mesh size: gmsh meshing; tmsim's assembly, AMG set-up, per-placement time (primary
field + solve + field, for one placement and for 16 at once), CG iterations, peak memory and
RDM against the analytic solution; and the baseline, scikit-fem's P1 basis and assembly with
pyamg's smoothed-aggregation set-up and CG to the same tolerance on the same right-hand side.
Each tool runs in its own process so that peak memory is its own.

    python benchmarks/efield_sphere.py                 # ~100k and ~1M tetrahedra
    python benchmarks/efield_sphere.py --sizes 5.2     # max edge lengths in mm

Needs the `bench` extra (scikit-fem). Writes benchmarks/results/efield_sphere_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from machine import device_label, environment

RTOL = 1e-8
DIDT = 1e6
BATCH = 16
SIZES_MM = (5.8, 2.5)   # about 100k and 1M tetrahedra


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def placements(mesh, count):
    """`count` figure-8 placements on the upper half of the sphere, handles rotating."""
    import efield

    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        theta, phi = rng.uniform(0, 0.6), rng.uniform(0, 2 * np.pi)
        centre = 95 * np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi),
                                np.cos(theta)])
        handle = centre + 50 * np.array([-np.sin(phi), np.cos(phi), 0.0])
        out.append(efield.Placement.on_scalp(mesh, centre, handle, distance_mm=4.0))
    return out


def run_tmsim(mesh_file: str, backend: str) -> dict:
    import efield
    from efield.placement import transform_elements

    data = np.load(mesh_file)
    mesh = efield.TetMesh(data["nodes"], data["tets"], data["tags"])
    coil = efield.figure8_70mm()
    positions = placements(mesh, BATCH)
    solver = efield.FieldSolver(mesh, backend=backend, rtol=RTOL)
    out = {"assembly_s": solver.timings["assembly"],
           "preconditioner_s": solver.timings["preconditioner"]}
    solver.solve(coil, positions[:1], DIDT, progress=False)             # compile and warm up
    solver.timings.clear()
    solver.iterations.clear()
    t0 = time.perf_counter()
    one = solver.solve(coil, positions[:1], DIDT, progress=False)[0]
    out["one_placement_s"] = time.perf_counter() - t0
    out["one_primary_s"] = solver.timings["primary"]
    out["one_solve_s"] = solver.timings["solve"]
    out["iterations"] = solver.iterations[-1]
    t0 = time.perf_counter()
    solver.solve(coil, positions, DIDT, progress=False, batch_size=BATCH)
    out["batch_per_placement_s"] = (time.perf_counter() - t0) / BATCH
    where, moments = transform_elements(positions[0].matsimnibs, coil.dipole_positions,
                                        coil.dipole_moments)
    exact = efield.analytic_sphere_field(where, moments, DIDT, mesh.barycenters)
    out["rdm"] = float(np.linalg.norm(one.E / np.linalg.norm(one.E) - exact / np.linalg.norm(exact)))
    out["mag"] = float(abs(np.log(np.linalg.norm(one.E) / np.linalg.norm(exact))))
    msh = Path(mesh_file).with_suffix(".msh")
    t0 = time.perf_counter()
    one.save(msh)
    out["write_msh_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    efield.read_msh(msh)
    out["read_msh_s"] = time.perf_counter() - t0
    b = np.asarray(efield.fem.rhs(solver.geometry, one.dadt))
    np.save(mesh_file.replace(".npz", "_rhs.npy"), b)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def run_baseline(mesh_file: str) -> dict:
    import pyamg
    import skfem
    from skfem.helpers import dot, grad

    from efield.conductivity import element_conductivity

    data = np.load(mesh_file)
    b = np.load(mesh_file.replace(".npz", "_rhs.npy"))
    t0 = time.perf_counter()
    sk = skfem.MeshTet(np.ascontiguousarray(data["nodes"].T * 1e-3),
                       np.ascontiguousarray(data["tets"].T))
    basis = skfem.Basis(sk, skfem.ElementTetP1())
    t_basis = time.perf_counter() - t0
    sigma = basis.zero_w() + element_conductivity(data["tags"])[:, None]

    @skfem.BilinearForm
    def laplace(u, v, w):
        return w["sigma"] * dot(grad(u), grad(v))

    t0 = time.perf_counter()
    K = laplace.assemble(basis, sigma=sigma)
    t_assembly = time.perf_counter() - t0
    keep = np.ones(K.shape[0])
    keep[0] = 0.0
    import scipy.sparse as sp

    K = (sp.diags(keep) @ K @ sp.diags(keep) + sp.csr_matrix(([1.0], ([0], [0])), shape=K.shape))
    K = K.tocsr()
    t0 = time.perf_counter()
    ml = pyamg.smoothed_aggregation_solver(K)
    t_setup = time.perf_counter() - t0
    residuals = []
    t0 = time.perf_counter()
    ml.solve(b, tol=RTOL, accel="cg", residuals=residuals)
    t_cg = time.perf_counter() - t0
    return {"basis_s": t_basis, "assembly_s": t_assembly, "amg_setup_s": t_setup, "cg_s": t_cg,
            "iterations": len(residuals) - 1, "peak_rss_mb": peak_rss_mb()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=SIZES_MM, metavar="MM",
                        help="max edge lengths of the sphere meshes (mm)")
    parser.add_argument("--backend", default="auto", choices=["auto", "scipy", "jax"])
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    import efield

    env = environment(("numpy", "scipy", "pyamg", "gmsh", "scikit-fem"), ("efield",))
    rows = []
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        for h in args.sizes:
            t0 = time.perf_counter()
            mesh = efield.sphere_head(max_edge_mm=h)
            t_mesh = time.perf_counter() - t0
            mesh_file = str(Path(tmp) / f"sphere_{h}.npz")
            np.savez(mesh_file, nodes=mesh.nodes, tets=mesh.tets, tags=mesh.tags)
            row = {"max_edge_mm": h, "n_tets": mesh.n_tets, "n_nodes": mesh.n_nodes,
                   "mesh_s": t_mesh}
            with ProcessPoolExecutor(1, mp_context=ctx) as pool:
                row["tmsim"] = pool.submit(run_tmsim, mesh_file, args.backend).result()
            if not args.no_baseline:
                with ProcessPoolExecutor(1, mp_context=ctx) as pool:
                    row["baseline"] = pool.submit(run_baseline, mesh_file).result()
            rows.append(row)
            print_row(row)
    device = device_label(env)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"efield_sphere_{device}.json"
    path.write_text(json.dumps({"environment": env, "rtol": RTOL, "rows": rows}, indent=2))
    print(f"wrote {path}")


def print_row(row):
    t = row["tmsim"]
    print(f"\n{row['n_tets']:,} tets ({row['n_nodes']:,} nodes), max edge {row['max_edge_mm']} mm;"
          f" gmsh {row['mesh_s']:.1f} s")
    print(f"  tmsim   : assembly {t['assembly_s']:.2f} s, AMG set-up {t['preconditioner_s']:.2f} s;"
          f" one placement {t['one_placement_s']:.2f} s (primary {t['one_primary_s']:.2f},"
          f" solve+field {t['one_solve_s']:.2f}, {t['iterations']} its);"
          f" batch of {BATCH}: {t['batch_per_placement_s']:.2f} s/placement;"
          f" RDM {t['rdm']:.3f}, MAG {t['mag']:.4f}; peak {t['peak_rss_mb']:.0f} MB;"
          f" .msh write {t['write_msh_s']:.2f} s, read {t['read_msh_s']:.2f} s")
    if "baseline" in row:
        b = row["baseline"]
        print(f"  skfem+pyamg: basis {b['basis_s']:.2f} s, assembly {b['assembly_s']:.2f} s,"
              f" AMG set-up {b['amg_setup_s']:.2f} s, CG {b['cg_s']:.2f} s ({b['iterations']} its);"
              f" peak {b['peak_rss_mb']:.0f} MB")
        setup_ratio = (t["assembly_s"] + t["preconditioner_s"]) / (b["basis_s"] + b["assembly_s"])
        place_ratio = t["one_placement_s"] / (b["amg_setup_s"] + b["cg_s"])
        print(f"  ratios  : set-up {setup_ratio:.2f}x baseline basis+assembly (aim <= 1);"
              f" placement {place_ratio:.2f}x baseline AMG set-up + CG (aim <= 0.5)")


if __name__ == "__main__":
    main()
