"""MD stability and speed of the bundled Na–C model on a sodiated hard-carbon state.

Usage: python benchmarks/bench_md.py STATE.xyz [--model nep.txt] [--time-ps 5]
       [--temperature 300 --temperature 1000] [--workdir bench-md]

Target (issue 3): a 43.6 Å hard-carbon box with 350 Na (e.g. ``states/state_007.xyz`` of the
study-scale sodiation run, ``benchmarks/bench_sodiation.py``) stays stable for 5 ps at 300 K
and at 1000 K: no pair under 1.0 Å, conserved-energy drift reported.  Prints the time per MD
step and atoms·steps per second.  Finished temperatures are kept in ``--workdir``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hardcarbon.forcefield.stability import StabilityConfig, md_stability
from hardcarbon.storage import read_structure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("structure", type=Path)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--time-ps", type=float, default=5.0)
    parser.add_argument("--temperature", type=float, action="append", default=None)
    parser.add_argument("--workdir", type=Path, default=Path("bench-md"))
    args = parser.parse_args()
    config = StabilityConfig(model=args.model, time_ps=args.time_ps,
                             temperatures=args.temperature or [300.0, 1000.0])
    summary = md_stability(read_structure(args.structure), config, args.workdir)
    print(f"{summary['formula']}: {summary['n_atoms']} atoms; model {summary['model']}")
    print(f"{'T (K)':>6} {'ps':>5} {'stable':>6} {'shortest (Å)':>12} {'<T> (K)':>8} "
          f"{'drift (meV/atom/ps)':>19} {'s/step':>7} {'atom-steps/s':>12}")
    for run in summary["runs"]:
        print(f"{run['temperature_K']:>6g} {run['time_ps']:>5.2f} {run['stable']!s:>6} "
              f"{run['shortest_distance_A']:>12.3f} {run['mean_temperature_K']:>8.0f} "
              f"{run['conserved_energy_drift_meV_atom_ps']:>19.3f} "
              f"{run['seconds_per_step']:>7.3f} {run['atom_steps_per_second']:>12.3g}")


if __name__ == "__main__":
    main()
