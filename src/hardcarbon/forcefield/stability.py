"""MD stability of a Na–C model: NVT runs at several temperatures on a sodiated structure.

A machine-learned potential can hold a structure at 0 K and still fail in MD, where atoms
reach regions the training never saw: two atoms fall into each other, or the energy runs
away.  :func:`md_stability` runs Nosé–Hoover-chain NVT (ASE) with the model at each
temperature and reports, per temperature, the shortest distance seen for each pair of
elements, whether every pair stayed above its floor (:func:`pair_floors`), the drift of the
thermostat's conserved energy (a measure of integration error; a stable run drifts by well
under 1 meV/atom/ps), and the cost per MD step.

Each finished temperature is written to ``stability.json`` in the workdir at once (atomically),
with its last frame; a rerun skips finished temperatures.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.md.nose_hoover_chain import NoseHooverChainNVT
from ase.md.velocitydistribution import Stationary, thermalize_momenta
from pydantic import Field, field_validator

from hardcarbon.errors import InputError
from hardcarbon.forcefield.nep import bundled_model, nep_calculator
from hardcarbon.settings import Settings
from hardcarbon.storage import bare_structure, write_json, write_structure

log = logging.getLogger(__name__)


class StabilityConfig(Settings):
    """Settings of :func:`md_stability` (K, ps, fs, Å)."""

    model: Path | None = Field(None, description="nep.txt; None: the bundled Na–C model")
    temperatures: list[float] = Field([300.0, 1000.0], min_length=1,
                                      description="NVT temperatures (K)")
    time_ps: float = Field(5.0, gt=0, description="length of each run (ps)")
    timestep_fs: float = Field(1.0, gt=0, le=5.0, description="MD time step (fs)")
    tdamp_fs: float = Field(100.0, gt=0, description="thermostat time constant (fs)")
    check_every: int = Field(10, ge=1, description="steps between distance and energy checks")
    min_distance: float = Field(1.0, gt=0, description="a pair closer than this is a failure")
    pair_fraction: float = Field(
        0.6, gt=0, le=1, description="a pair of elements closer than this fraction of the sum "
        "of their covalent radii is a failure (Na–Na 1.99 Å, C–Na 1.45 Å)")
    seed: int = Field(0, ge=0, description="seed of the initial velocities")

    @field_validator("temperatures")
    @classmethod
    def _positive(cls, values: list[float]) -> list[float]:
        for temperature in values:
            if not temperature > 0:
                raise ValueError(f"temperature {temperature:g} K is not positive")
        return values


def pair_floors(symbols: set[str], min_distance: float, fraction: float) -> dict[str, float]:
    """Shortest allowed distance (Å) of each pair of elements, ``"C-Na"`` style keys.

    A fixed 1.0 Å misses a collapse of Na: a model with a hole in its Na–Na energy pulls Na
    pairs to 1.3 Å (twice too close; Na2 is 3.08 Å) long before any pair reaches 1.0 Å.  So
    each pair gets ``fraction`` of the sum of its covalent radii (ASE's table), and never
    less than ``min_distance``.
    """
    from ase.data import atomic_numbers, covalent_radii

    ordered = sorted(symbols)
    return {f"{a}-{b}": max(min_distance, fraction * float(covalent_radii[atomic_numbers[a]]
                                                           + covalent_radii[atomic_numbers[b]]))
            for k, a in enumerate(ordered) for b in ordered[k:]}


def under_floors(shortest: dict[str, float], floors: dict[str, float]) -> dict[str, float]:
    """The pairs of ``shortest`` (Å per pair, :func:`~hardcarbon.analysis.shortest_by_pair`)
    that are under their floor (:func:`pair_floors`)."""
    return {pair: d for pair, d in shortest.items() if d < floors[pair]}


def pairs_under_floors(atoms: Atoms, floors: dict[str, float]) -> dict[str, float]:
    """The shortest distance (Å) of each pair of elements of ``atoms`` that is under its
    floor (:func:`pair_floors`); empty when none is."""
    from hardcarbon.analysis import shortest_by_pair  # the analysis package is slow to import

    return under_floors(shortest_by_pair(atoms, max(floors.values())), floors)


def run_nvt(atoms: Atoms, calc: Any, temperature: float, config: StabilityConfig) -> dict:
    """One NVT run; the summary of :func:`md_stability` for this temperature."""
    from hardcarbon.analysis import shortest_by_pair  # the analysis package is slow to import

    work = bare_structure(atoms)
    work.calc = calc
    rng = np.random.default_rng([config.seed, round(temperature)])
    thermalize_momenta(work, temperature_K=temperature, rng=rng)
    Stationary(work)
    dyn = NoseHooverChainNVT(work, timestep=config.timestep_fs * units.fs,
                             temperature_K=temperature, tdamp=config.tdamp_fs * units.fs)
    n_steps = round(config.time_ps * 1000.0 / config.timestep_fs)
    floors = pair_floors(set(atoms.get_chemical_symbols()), config.min_distance,
                         config.pair_fraction)
    cutoff = max(2.0, *floors.values())
    times, conserved, temps = [], [], []
    closest: dict[str, float] = {}  # shortest distance seen so far, per pair of elements

    def collapsed() -> list[str]:
        return list(under_floors(closest, floors))

    def check() -> None:
        times.append(dyn.get_time() / (1000.0 * units.fs))
        # ASE's get_conserved_energy asks for the force-consistent (free) energy, which
        # calorine's CPUNEP does not provide; for a NEP the two are the same energy
        conserved.append(work.get_potential_energy() + work.get_kinetic_energy()
                         + dyn._thermostat.get_thermostat_energy())
        temps.append(work.get_temperature())
        for pair, d in shortest_by_pair(work, cutoff).items():
            closest[pair] = min(d, closest.get(pair, cutoff))

    check()
    next_report = report_every = max(1, n_steps // 10)  # a progress line per tenth
    start = time.perf_counter()
    steps_done = 0
    while steps_done < n_steps and not collapsed():
        chunk = min(config.check_every, n_steps - steps_done)
        dyn.run(chunk)
        steps_done += chunk
        check()
        if steps_done >= next_report or steps_done == n_steps:
            next_report += report_every
            log.info("%g K: %.2f of %.2f ps, shortest pair %.3f Å, T %.0f K, %.2f s/step",
                     temperature, times[-1], config.time_ps,
                     min(closest.values(), default=cutoff), temps[-1],
                     (time.perf_counter() - start) / steps_done)
    wall = time.perf_counter() - start
    t, e = np.array(times), np.array(conserved) / len(work)
    drift = float(np.polyfit(t, e, 1)[0] * 1000.0) if t.size > 2 else float("nan")
    stable = bool(not collapsed() and np.all(np.isfinite(e)))
    return {
        "temperature_K": temperature,
        "steps": steps_done,
        "time_ps": steps_done * config.timestep_fs / 1000.0,
        "stable": stable,
        "shortest_distance_A": min(closest.values(), default=cutoff),
        "shortest_by_pair_A": closest,
        "collapsed_pairs": collapsed(),
        "mean_temperature_K": float(np.mean(temps[len(temps) // 5:])),
        "conserved_energy_drift_meV_atom_ps": drift,
        "seconds_per_step": wall / max(steps_done, 1),
        "atom_steps_per_second": len(work) * steps_done / wall if wall > 0 else float("nan"),
        "final": work,
    }


def md_stability(atoms: Atoms, config: StabilityConfig | None = None,
                 workdir: str | Path | None = None) -> dict[str, Any]:
    """NVT MD of ``atoms`` with a NEP model at each temperature; is it stable?

    Parameters
    ----------
    atoms : ase.Atoms
        Periodic structure (e.g. a sodiated hard-carbon state).
    config : StabilityConfig, optional
        Model, temperatures, run length and checks.
    workdir : str or Path, optional
        Where ``stability.json`` and ``final_<T>K.xyz`` go; finished temperatures are kept
        and skipped on a rerun.

    Returns
    -------
    dict
        ``model``, ``n_atoms``, ``formula`` and ``runs``: one dict per temperature with
        ``stable``, ``shortest_distance_A``, ``conserved_energy_drift_meV_atom_ps``,
        ``mean_temperature_K``, ``seconds_per_step`` and ``atom_steps_per_second``.
    """
    config = config or StabilityConfig()
    if not atoms.pbc.all():
        raise InputError("MD stability needs a periodic structure (pbc in all three directions)")
    model = config.model if config.model is not None else bundled_model()
    if model is None:
        raise InputError("no Na–C model is bundled: give one with model")
    if not Path(model).is_file():
        raise InputError(f"model file {model} does not exist: give a nep.txt")
    calc = nep_calculator(model, set(atoms.get_chemical_symbols()))
    summary: dict[str, Any] = {"model": str(model), "n_atoms": len(atoms),
                               "formula": atoms.get_chemical_formula(),
                               "settings": config.model_dump(mode="json"), "runs": []}
    path = Path(workdir) / "stability.json" if workdir is not None else None
    done: dict[float, dict] = {}
    if path is not None and path.is_file():
        previous = json.loads(path.read_text())
        same = all(previous.get(k) == summary[k] for k in ("formula", "settings"))
        done = {run["temperature_K"]: run for run in previous["runs"]} if same else {}
    for temperature in config.temperatures:
        if temperature in done:
            summary["runs"].append(done[temperature])
            continue
        run = run_nvt(atoms, calc, temperature, config)
        final = run.pop("final")
        summary["runs"].append(run)
        if path is not None:
            write_structure(path.parent / f"final_{temperature:g}K.xyz", final)
            write_json(path, summary)
    return summary


def stability_table(summary: dict[str, Any]) -> str:
    """The runs of :func:`md_stability` as a plain-text table (one line per temperature)."""
    lines = [f"{summary['formula']}: {summary['n_atoms']} atoms; model {summary['model']}",
             f"{'T':>8} {'ps':>5} {'outcome':>8} {'shortest (Å)':>12} {'<T> (K)':>8} "
             f"{'drift (meV/atom/ps)':>19} {'s/step':>7} {'atom-steps/s':>12}  "
             "shortest per pair (Å; ! below its floor)"]
    for run in summary["runs"]:
        outcome = "stable" if run["stable"] else "UNSTABLE"
        lines.append(f"{run['temperature_K']:>6g} K {run['time_ps']:>5.2f} {outcome:>8} "
                     f"{run['shortest_distance_A']:>12.3f} {run['mean_temperature_K']:>8.0f} "
                     f"{run['conserved_energy_drift_meV_atom_ps']:>19.3f} "
                     f"{run['seconds_per_step']:>7.3f} {run['atom_steps_per_second']:>12.3g}  "
                     + " ".join(f"{pair} {d:.2f}" + ("!" if pair in run["collapsed_pairs"] else "")
                                for pair, d in run["shortest_by_pair_A"].items()))
    return "\n".join(lines)
