"""Time NEP training steps with neppo on the CPU and, where PyTorch sees one, on a CUDA GPU.

Usage: python benchmarks/bench_train.py [DATA] [--config configs/finetune-pw.yaml]
       [--steps 200] [--threads 2] [--workdir bench-train]

Runs ``--steps`` steps of the config's training (by default the bundled model's full-batch
fine-tune on ``data/training/gpaw_pw.xyz.gz``, 161 cells per step) on each device and prints
the time per step from neppo's own report, which leaves out reading the data and building the
neighbour lists, and the GPU's speed-up over the CPU.  Measured figures: docs/training.md,
"Training on a GPU with neppo".
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

from hardcarbon.forcefield.training import TrainConfig, train_nep

ROOT = Path(__file__).resolve().parents[1]


def ms_per_step(workdir: Path) -> float:
    """neppo's time per step (ms) from the summary of ``workdir/neppo.log``."""
    text = (workdir / "neppo.log").read_text()
    found = re.findall(r"([\d.]+(?:e[+-]?\d+)?) ms per step", text)
    if not found:
        raise RuntimeError(f"no 'ms per step' in {workdir / 'neppo.log'}")
    return float(found[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path,
                        default=ROOT / "data/training/gpaw_pw.xyz.gz")
    parser.add_argument("--config", type=Path, default=ROOT / "configs/finetune-pw.yaml")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("bench-train"))
    args = parser.parse_args()

    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    times = {}
    for device in devices:
        config = TrainConfig.from_yaml(args.config, steps=args.steps,
                                       output_interval=args.steps, threads=args.threads,
                                       device=device)
        workdir = args.workdir / device
        shutil.rmtree(workdir, ignore_errors=True)
        train_nep(args.data, config, workdir)
        times[device] = ms_per_step(workdir)
        name = torch.cuda.get_device_name() if device == "cuda" else f"{args.threads} threads"
        print(f"{device:5s} ({name}): {times[device]:8.2f} ms per step, {args.steps} steps")
    if "cuda" in times:
        print(f"GPU speed-up over the CPU: {times['cpu'] / times['cuda']:.0f}x")
    else:
        print("no CUDA GPU seen by PyTorch: CPU only")


if __name__ == "__main__":
    main()
