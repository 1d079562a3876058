"""Time the local NEP insertion energies of Na candidates in the study's hard-carbon box.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_insertion.py [--model nep.txt] [--n 1000]
       [--box 43.6] [--density 1.5] [--cutoff 6] [--check 3]

Target (issue 4): scoring 1000 candidates in the 43.6 Å box (about 6230 C at 1.5 g/cm³) takes
under 60 s on one core.  The carbon is placed at random (``random_carbon``); an annealed
model gives the same timing, which depends on the number of atoms per cluster.  Without
``--model`` the bundled Na–C model is used, or, while none is bundled, a random-weight NEP4
model (tests/nep_models.py) with the given radial cut-off, 30 neurons and GPUMD's default
descriptor sizes.  ``--check k`` compares k local energies with full-model differences.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ase import Atoms

from hardcarbon.forcefield.nep import bundled_model
from hardcarbon.sodiation.insertion import LocalNEP, propose_candidates
from hardcarbon.structures.random_carbon import atoms_for_density, random_carbon


def _model(args: argparse.Namespace, folder: Path) -> tuple[Path, str]:
    if args.model:
        return Path(args.model), "given"
    bundled = bundled_model()
    if bundled is not None:
        return bundled, "bundled"
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from nep_models import write_random_nep

    path = write_random_nep(
        folder / "nep.txt",
        radial_cutoff=args.cutoff,
        angular_cutoff=4.0,
        n_max=(4, 4),
        basis_size=(8, 8),
        n_neuron=30,
        # neighbour capacities for carbon up to about 2.2 g/cm³ (0.11 atoms/Å³)
        max_neighbours=(int(0.15 * 4.19 * args.cutoff**3) + 10, 50),
    )
    return path, f"random NEP4, rc={args.cutoff:g} Å"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="nep.txt covering C and Na")
    parser.add_argument("--n", type=int, default=1000, help="number of candidates")
    parser.add_argument("--box", type=float, default=43.6, help="cubic box length (Å)")
    parser.add_argument("--density", type=float, default=1.5, help="carbon density (g/cm³)")
    parser.add_argument("--cutoff", type=float, default=6.0, help="radial cut-off of the "
                        "random model (Å)")
    parser.add_argument("--check", type=int, default=3, help="candidates checked against "
                        "full-model energy differences")
    parser.add_argument("--method", default="auto", choices=["auto", "cluster", "grouped"])
    parser.add_argument("--engine-energies", action="store_true", help="use energy+force "
                        "evaluations instead of descriptors")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model, kind = _model(args, Path(tmp))
        box = (args.box,) * 3
        n_c = atoms_for_density(args.density, float(np.prod(box)))
        atoms = random_carbon(n_c, box, seed=args.seed)
        rng = np.random.default_rng(args.seed)

        start = time.perf_counter()
        scorer = LocalNEP(atoms, model, method=args.method, fast=not args.engine_energies)
        reference_s = time.perf_counter() - start
        start = time.perf_counter()
        candidates = propose_candidates(atoms, args.n, rng=rng)
        propose_s = time.perf_counter() - start
        start = time.perf_counter()
        energies = scorer.insertion_energies(candidates)
        scoring_s = time.perf_counter() - start

        errors = []
        calc = scorer._engine(len(atoms) + 1)
        for r, de in zip(candidates[: args.check], energies[: args.check], strict=True):
            trial = atoms + Atoms("Na", positions=[r])
            full = float(calc.get_potential_energies(trial).sum()) - scorer.energy
            errors.append(abs(full - de))

        sizes = [len(scorer.images.query_ball(r, scorer.cluster_radius)) + 1
                 for r in candidates[:50]] if scorer.local else [len(atoms) + 1]
        groups = scorer._groups(candidates)[0] if scorer.local else []
        figures = {
            "model": f"{model.name} ({kind})",
            "cutoff_A": scorer.cutoff,
            "atoms": len(atoms),
            "threads": os.environ.get("OMP_NUM_THREADS"),
            "candidates": args.n,
            "method": scorer.choose_method(args.n, groups),
            "descriptor_energies": scorer.fast,
            "groups": len(groups),
            "group_size_cap": scorer.group_size,
            "cluster_atoms_mean": round(float(np.mean(sizes)), 1),
            "reference_eval_s": round(reference_s, 2),
            "propose_s": round(propose_s, 2),
            "scoring_s": round(scoring_s, 2),
            "per_candidate_ms": round(1000 * scoring_s / args.n, 2),
            "max_error_vs_full_eV": float(max(errors)) if errors else None,
            "target_met": scoring_s < 60.0,
        }
        for key, value in figures.items():
            print(f"{key:>22}: {value}")


if __name__ == "__main__":
    main()
