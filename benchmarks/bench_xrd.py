"""Time XRD (Debye equation) and pore analysis on hard-carbon-sized models.

Run with ``python benchmarks/bench_xrd.py``. Models (all carbon, 1.5 g/cm³, periodic cubes):

* ``random-7000``: 7000 atoms placed at random at least 1.3 Å apart (45.3 Å cube);
* ``random-6230``: 6230 atoms the same way in a 43.6 Å cube;
* ``cavities-6230``: 6230 atoms in a 43.6 Å cube kept out of four 7 Å-radius spheres, so the
  pore analysis has pores of up to ~11 Å diameter to resolve.

Each function is timed once; for one-core numbers run with ``OMP_NUM_THREADS=1`` (only the
BLAS matrix product of the Debye sum could use more threads).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from ase import Atoms
from scipy.spatial import cKDTree

from hardcarbon.analysis import density, pore_analysis, xrd_002_peak, xrd_pattern

CARBON_PER_A3_AT_1_G_CM3 = 6.02214076e23 / 12.011 * 1e-24


def random_carbon(n_atoms: int, box: float, min_distance: float = 1.3, seed: int = 0,
                  cavities: np.ndarray | None = None, cavity_radius: float = 0.0) -> Atoms:
    """Random sequential addition in a periodic cube, optionally avoiding spherical cavities."""
    rng = np.random.default_rng(seed)
    kept = np.empty((0, 3))
    while len(kept) < n_atoms:
        batch = rng.random((4096, 3)) * box
        if cavities is not None:
            dist, _ = cKDTree(cavities, boxsize=box).query(batch)
            batch = batch[dist > cavity_radius]
        if len(kept):
            dist, _ = cKDTree(kept, boxsize=box).query(batch)
            batch = batch[dist >= min_distance]
        clash = np.zeros(len(batch), dtype=bool)
        for i, j in cKDTree(batch, boxsize=box).query_pairs(min_distance, output_type="ndarray"):
            if not clash[min(i, j)]:
                clash[max(i, j)] = True
        kept = np.vstack([kept, batch[~clash][: n_atoms - len(kept)]])
    return Atoms(f"C{n_atoms}", positions=kept, cell=[box] * 3, pbc=True)


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--r-max", type=float, default=30.0, help="XRD pair range (Å)")
    parser.add_argument("--grid", type=float, default=0.5, help="pore grid spacing (Å)")
    args = parser.parse_args()

    box_7000 = (7000 / (1.5 * CARBON_PER_A3_AT_1_G_CM3)) ** (1 / 3)
    centres = np.array([[10.0, 10.0, 10.0], [32.0, 12.0, 30.0], [12.0, 33.0, 25.0],
                        [30.0, 30.0, 8.0]])
    models = {
        "random-7000": random_carbon(7000, box_7000),
        "random-6230": random_carbon(6230, 43.6, seed=1),
        "cavities-6230": random_carbon(6230, 43.6, seed=2, cavities=centres, cavity_radius=7.0),
    }
    print(f"{'model':15s} {'atoms':>6s} {'box/Å':>6s} {'g/cm³':>6s} {'xrd/s':>6s} "
          f"{'d002/Å':>7s} {'pores/s':>7s} {'porosity':>8s} {'largest/Å':>9s}")
    for name, atoms in models.items():
        (two_theta, intensity), t_xrd = timed(xrd_pattern, atoms, r_max=args.r_max)
        peak = xrd_002_peak(two_theta, intensity)
        pores, t_pores = timed(pore_analysis, atoms, grid_spacing=args.grid)
        d002 = peak["d002_angstrom"]
        print(f"{name:15s} {len(atoms):6d} {atoms.cell[0, 0]:6.1f} {density(atoms):6.3f} "
              f"{t_xrd:6.2f} {d002 if d002 is not None else float('nan'):7.3f} {t_pores:7.2f} "
              f"{pores['porosity']:8.3f} {pores['largest_pore_diameter']:9.2f}")


if __name__ == "__main__":
    main()
