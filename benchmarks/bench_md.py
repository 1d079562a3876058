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

from hardcarbon.forcefield.stability import StabilityConfig, md_stability, stability_table
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
    print(stability_table(summary))

if __name__ == "__main__":
    main()
