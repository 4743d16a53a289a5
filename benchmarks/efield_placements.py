"""Many placements on one head: single and batched FEM solves, and scoring by reciprocity.

For each sphere-head size: FieldSolver set-up; per-placement time of single solves and of
batched solves (primary field + solve + recovered field), CG iterations, planned bytes per
tetrahedron, peak memory, RDM/MAG against the analytic solution; then the reciprocity scorer
of a grey-matter target (|mean E| in a 10 mm sphere): precompute time, its largest relative
error against the direct solves, and placements scored per second, pose by pose and with
all handle angles of a coil centre at once (`score_turned`, three candidate sets). Each
size runs in its own process so that peak memory is its own.

    python benchmarks/efield_placements.py                 # ~100k and ~1M tetrahedra
    python benchmarks/efield_placements.py --sizes 5.8     # max edge lengths in mm

Writes benchmarks/results/efield_placements_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from machine import device_label, environment

DIDT = 1e6
SIZES_MM = (5.8, 2.5)   # about 100k and 1M tetrahedra
TARGET_MM = (20.0, 10.0, 80.0)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def run_size(max_edge_mm: float, backend: str, batch: int, n_scored: int) -> dict:
    import efield
    from efield import targeting as tg
    from efield.placement import transform_elements

    mesh, t_mesh = timed(efield.sphere_head, max_edge_mm=max_edge_mm)
    coil = efield.figure8_70mm()
    solver, t_setup = timed(efield.FieldSolver, mesh, backend=backend)
    target = efield.Target(TARGET_MM, 10.0)
    patch = tg.scalp_patch(mesh, TARGET_MM, 35.0)
    poses = tg.candidate_poses(patch, tg.candidate_offsets(20.0, 10.0), [0.0, 45.0, 100.0, 170.0])
    placements = [efield.Placement(p) for p in poses.reshape(-1, 4, 4)[:batch]]
    solver.solve(coil, placements[:1], DIDT, progress=False)                 # compile, warm up
    solver.solve(coil, placements, DIDT, progress=False, batch_size=batch)    # both batch shapes
    solver.iterations.clear()
    singles, t_single = timed(lambda: [solver.solve(coil, [p], DIDT, progress=False)[0]
                                       for p in placements])
    _, t_batch = timed(solver.solve, coil, placements, DIDT, progress=False, batch_size=batch)
    where, moments = transform_elements(placements[0].matsimnibs, coil.dipole_positions,
                                        coil.dipole_moments)
    exact = efield.analytic_sphere_field(where, moments, DIDT, mesh.barycenters)
    E = singles[0].E
    row = {"max_edge_mm": max_edge_mm, "n_tets": mesh.n_tets, "n_nodes": mesh.n_nodes,
           "mesh_s": t_mesh, "setup_s": t_setup, "batch": batch,
           "single_per_placement_s": t_single / batch, "batch_per_placement_s": t_batch / batch,
           "iterations": sorted(set(solver.iterations)),
           "rdm": float(np.linalg.norm(E / np.linalg.norm(E) - exact / np.linalg.norm(exact))),
           "mag": float(abs(np.log(np.linalg.norm(E) / np.linalg.norm(exact)))),
           "bytes_per_tet_batch1": solver.memory_plan(1, coil.n_elements)["bytes_per_tet"],
           "bytes_per_tet_batch": solver.memory_plan(batch, coil.n_elements)["bytes_per_tet"]}
    grid, t_pre = timed(tg.reciprocal_grid, solver, coil, target, patch, 20.0, DIDT)
    direct = np.array([target.score_field(mesh, r.E) for r in singles])
    scores = np.asarray(tg.score_poses(grid, np.asarray([p.matsimnibs for p in placements])))
    many = tg.candidate_poses(patch, tg.candidate_offsets(20.0, 1.0), np.arange(0.0, 360.0, 2.0))
    many = np.asarray(many.reshape(-1, 4, 4)[:n_scored])
    tg.score_poses(grid, many).block_until_ready()                            # compile
    _, t_score = timed(lambda: tg.score_poses(grid, many).block_until_ready())
    angles = np.array([0.0, 45.0, 100.0, 170.0])
    base = np.asarray(poses[:, 0])
    turned = np.asarray(tg.score_turned(grid, grid.turned(angles), base)).reshape(-1)[:batch]
    row.update(reciprocity_precompute_s=t_pre, reciprocity_grid_nodes=int(np.isfinite(
        np.asarray(grid.H[..., 0])).sum()), placements_scored_per_s=len(many) / t_score,
        reciprocity_max_rel_error=float(np.abs(scores / direct - 1).max()),
        turned_max_rel_error=float(np.abs(turned / direct - 1).max()),
        turned=[turned_rate(grid, patch, *case) for case in TURNED_CASES], peak_rss_mb=peak_rss_mb())
    return row


TURNED_CASES = (("SimNIBS default candidates", 5.0, 30.0), ("1 mm offsets, 30 degrees", 1.0, 30.0),
                ("1 mm offsets, 2 degrees", 1.0, 2.0))
"""(label, offset spacing mm, angle step degrees) of the candidate sets scored with all
handle angles at once, offsets within 20 mm."""


def turned_rate(grid, patch, label, spacing_mm, step_deg, repeats=3) -> dict:
    """Placements per second of `score_turned` over one candidate set (best of `repeats`)."""
    from efield import targeting as tg

    offsets, angles = tg.candidate_offsets(20.0, spacing_mm), tg.candidate_angles(step_deg)
    base = np.asarray(tg.candidate_poses(patch, offsets, [0.0])[:, 0])
    polar = grid.turned(angles)
    tg.score_turned(grid, polar, base).block_until_ready()                  # compile
    best = min(timed(lambda: tg.score_turned(grid, polar, base).block_until_ready())[1]
               for _ in range(repeats))
    return {"label": label, "offsets": len(offsets), "angles": len(angles),
            "lattice_nodes": int(polar.nodes_mm.shape[0]),
            "placements_per_s": len(offsets) * len(angles) / best}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=SIZES_MM, metavar="MM",
                        help="max edge lengths of the sphere meshes (mm)")
    parser.add_argument("--backend", default="auto", choices=["auto", "scipy", "jax"])
    parser.add_argument("--batch", type=int, default=8, help="placements per batched solve")
    parser.add_argument("--scored", type=int, default=20000, help="placements scored by reciprocity")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    env = environment(("numpy", "scipy", "pyamg", "gmsh"), ("efield",))
    rows = []
    ctx = mp.get_context("spawn")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"efield_placements_{device_label(env)}.json"
    for h in args.sizes:
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
            row = pool.submit(run_size, h, args.backend, args.batch, args.scored).result()
        rows.append(row)
        print_row(row)
        path.write_text(json.dumps({"environment": env, "didt": DIDT, "rows": rows}, indent=2))
        print(f"wrote {path}", flush=True)


def print_row(r):
    print(f"\n{r['n_tets']:,} tets ({r['n_nodes']:,} nodes), max edge {r['max_edge_mm']} mm; "
          f"set-up {r['setup_s']:.2f} s")
    print(f"  FEM        : single {r['single_per_placement_s']:.3f} s/placement, batch of {r['batch']} "
          f"{r['batch_per_placement_s']:.3f} s/placement (ratio "
          f"{r['batch_per_placement_s'] / r['single_per_placement_s']:.2f}, aim <= 1); "
          f"CG its {r['iterations']}; RDM {r['rdm']:.3f}, MAG {r['mag']:.4f}")
    print(f"  memory     : plan {r['bytes_per_tet_batch1']:.0f} B/tet (batch 1), "
          f"{r['bytes_per_tet_batch']:.0f} B/tet (batch {r['batch']}); peak RSS {r['peak_rss_mb']:.0f} MB")
    print(f"  reciprocity: precompute {r['reciprocity_precompute_s']:.1f} s "
          f"({r['reciprocity_grid_nodes']:,} grid nodes); {r['placements_scored_per_s']:,.0f} placements/s "
          f"pose by pose; max rel. error vs direct {r['reciprocity_max_rel_error']:.1e} (aim < 1e-2)")
    print(f"  all angles at once (aim 1e4/s on CPU): max rel. error vs direct "
          f"{r['turned_max_rel_error']:.1e}")
    for t in r["turned"]:
        print(f"    {t['label']:28s} {t['offsets']:5d} x {t['angles']:3d}: {t['placements_per_s']:9,.0f} "
              f"placements/s ({t['lattice_nodes']} lattice nodes)", flush=True)


if __name__ == "__main__":
    main()
