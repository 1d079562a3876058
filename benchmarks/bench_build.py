"""Build the study's hard-carbon model and print its time and quality figures.

Usage: python benchmarks/bench_build.py [--potential rebo] [--box 43.6] [--density 1.5]

Targets (issue 2): under 30 min on 2 cores; sp2 fraction >= 0.80; first C–C RDF peak at
1.40–1.46 Å; no C–C pair under 1.15 Å; a broad (002) peak between 20° and 30° 2θ, FWHM > 3°.
"""

from __future__ import annotations

import argparse
import time

from hardcarbon.analysis import analyze_structure
from hardcarbon.storage import write_json, write_structure
from hardcarbon.structures import BuildConfig, build_hard_carbon


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--potential", default=None)
    parser.add_argument("--box", type=float, default=43.6)
    parser.add_argument("--density", type=float, default=1.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="write the model and figures here")
    args = parser.parse_args()
    options = {"box": args.box, "density": args.density, "seed": args.seed}
    if args.potential:
        options["potential"] = args.potential
    config = BuildConfig(**options)
    start = time.perf_counter()
    atoms, summary = build_hard_carbon(config)
    build_s = time.perf_counter() - start
    if args.output:
        write_structure(f"{args.output}.xyz", atoms)
    start = time.perf_counter()
    report = analyze_structure(atoms)
    analyze_s = time.perf_counter() - start
    xrd = report["xrd_002"]
    rings = report["rings"]
    figures = {
        "potential": config.potential,
        "atoms": len(atoms),
        "density_g_cm3": round(summary["density"], 3),
        "build_s": round(build_s, 1),
        "analyze_s": round(analyze_s, 1),
        "md_ps": summary["md_ps"],
        "sp2_fraction": round(report["hybridisation"]["sp2"], 3),
        "sp3_fraction": round(report["hybridisation"]["sp3"], 3),
        "sp_fraction": round(report["hybridisation"]["sp"], 3),
        "cc_rdf_first_peak_A": round(report["rdf_first_peaks"]["C-C"], 3),
        "min_cc_A": round(report["min_cc_distance"], 3),
        "xrd_002_2theta_deg": xrd["two_theta_deg"],
        "xrd_002_fwhm_deg": xrd["fwhm_deg"],
        "d002_A": xrd["d002_angstrom"],
        "stage_s": {k: round(v, 1) for k, v in summary["timings_s"].items()},
        "rings_5_6_7": [rings.get(k, 0) for k in (5, 6, 7)],
        "porosity": round(report["pores"]["porosity"], 3),
    }
    for key, value in figures.items():
        print(f"{key:>22}: {value}")
    if args.output:
        write_json(f"{args.output}.json", {"benchmark": figures, "analysis": report})


if __name__ == "__main__":
    main()
