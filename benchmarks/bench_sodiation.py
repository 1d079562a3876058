"""Time a sodiation run and print the time per iteration and its parts.

Usage: python benchmarks/bench_sodiation.py HOST.xyz [--workdir DIR] [--target-na 700]
       [--batch-size 50] [--model nep.txt] [--max-iterations N]

Target (issue 4): the study-scale run (43.6 Å box, about 6230 C at 1.5 g/cm³, 50 Na per
iteration, on to 700 Na) completes on 2 cores in under 2 hours.  Build the host first with
``hardcarbon build --density 1.5 --box 43.6 -o hc.xyz``.  The run checkpoints in
``--workdir``: rerunning the same command resumes it, and the table printed at the end
covers every iteration, resumed or not.  It also prints the peak memory.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from hardcarbon.sodiation.figures import write_figures
from hardcarbon.sodiation.run import TIMING_PARTS as PARTS
from hardcarbon.sodiation.run import SodiationConfig, sodiate
from hardcarbon.storage import read_structure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host", type=Path)
    parser.add_argument("--workdir", type=Path, default=Path("bench-sodiation"))
    parser.add_argument("--target-na", type=int, default=700)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--max-iterations", type=int, default=100)
    args = parser.parse_args()

    config = SodiationConfig(model=args.model, batch_size=args.batch_size,
                             target_na=args.target_na, max_iterations=args.max_iterations)
    resume = (args.workdir / "checkpoint.json").is_file()
    start = time.perf_counter()
    summary = sodiate(read_structure(args.host), config, args.workdir, resume=resume)
    wall = time.perf_counter() - start
    write_figures(args.workdir)

    print(f"{'iter':>4} {'Na':>5} {'V':>7} " + " ".join(f"{p[:-2]:>14}" for p in PARTS)
          + f" {'steps':>6} {'total_s':>8}")
    for state, timing in zip(summary["states"][1:], summary["timings"][1:], strict=False):
        volts = state["voltage_V"]
        print(f"{timing['iteration']:>4} {state['n_na']:>5} "
              f"{volts if volts is None else f'{volts:+.3f}':>7} "
              + " ".join(f"{timing.get(p, 0.0):>14.1f}" for p in PARTS)
              + f" {timing.get('relax_steps', 0):>6} {timing['total_s']:>8.1f}")
    total = sum(t["total_s"] for t in summary["timings"])
    print(f"atoms {summary.get('n_c', '?')} C; {summary['n_na']} Na; stopped: "
          f"{summary['stopped']}; all iterations {total:.0f} s ({total / 3600:.2f} h); "
          f"this invocation {wall:.0f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    print(f"peak memory (maximum resident set) of this invocation: {peak:.0f} MB")
    print(f"capacity at 0 V: {summary['capacity_at_zero_volt']}")
    print(f"site counts of the last state: {summary['site_counts']}")


if __name__ == "__main__":
    main()
