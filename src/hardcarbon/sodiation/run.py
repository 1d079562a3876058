"""Iterative sodiation of a hard-carbon host with a NEP model (sections 2.2–2.4 of the study).

State 0 is the bare host, relaxed.  Each iteration then

1. **scores** ``n_candidates`` random Na positions that keep ``min_dist_c`` from the host and
   ``min_dist_na`` from the Na present (:func:`~hardcarbon.sodiation.insertion.propose_candidates`)
   by their local NEP insertion energies (:class:`~hardcarbon.sodiation.insertion.LocalNEP`:
   exact single-Na energy changes from the atoms within twice the cut-off, no full-model
   evaluation per candidate);
2. **inserts** a batch picked from the low-energy candidates, kept ``min_dist_na`` apart
   (:func:`~hardcarbon.sodiation.insertion.select_batch`: greedy lowest energy first, or
   Boltzmann-weighted);
3. **relaxes** all atoms (FIRE or LBFGS; the cell too with ``relax_cell``);
4. **records** the state: total energy, formation energy ``E_f = E - E_host - n mu_Na``, the
   voltage of the step from the previous state by eq. (1), capacity (mAh per g of carbon),
   ``x`` in Na_xC, the site of every Na (:func:`~hardcarbon.sodiation.sites.classify_sites`)
   and every Na's own voltage contribution (below).

``mu_Na`` is the energy per atom of bcc Na relaxed with the same model
(:func:`~hardcarbon.electrochem.sodium_chemical_potential`), unless ``mu_na`` is given.  The
model defaults to the Na–C model bundled as ``hardcarbon/data/nep_na_c.txt``.  Without a target the
run stops after the first step whose voltage is <= 0 V; with ``target_na`` or
``target_capacity`` it goes on, past 0 V, until that Na count is reached (the overcharged
run).  ``max_iterations`` bounds both, and a run also ends (``stopped: host_full``) when the
free volume cannot take another batch at the minimum distances; if not even the first batch
fits, that is an input error.  A relaxation that pulls a pair of atoms under its floor
(:func:`~hardcarbon.forcefield.stability.pair_floors`: ``pair_fraction`` of the sum of their
covalent radii, Na–Na 1.99 Å) ends the run too (``stopped: collapse``), and that state is not
recorded: its energy measures a hole in the model, not a site.

**Per-Na voltage contribution.**  In each relaxed state ``S`` every Na ``i`` gets
``v_i = -(eps_i - mu_Na) / e`` with ``eps_i = E(S) - E(S without Na i)``, the other atoms kept
in place: the (unrelaxed) insertion energy of that Na into its own site, computed locally like
the candidates' energies.  It is the differential voltage of that site; the step voltage of eq. (1)
is the relaxed average over a whole batch.  These are the scatter points of Figure 6, coloured
by the site of each Na.

**Outputs** in ``workdir`` (every file written atomically):

* ``states/state_NNN.xyz``: each state, with per-atom arrays ``site`` (class of each Na, the
  element symbol for other atoms), ``voltage_contribution`` (V; NaN for non-Na atoms) and
  ``inserted_at`` (iteration that inserted each Na; -1 for the host);
* ``sodiation.csv``: one row per state (columns :data:`TABLE_COLUMNS`);
* ``na_voltages.csv``: one row per Na per state (columns :data:`NA_COLUMNS`);
* ``summary.json``: capacity at 0 V, site counts, mu_Na, the table, timings per iteration
  (scoring, insertion, relaxation, evaluation, classification, contributions, output);
* ``checkpoint.json``: everything needed to continue: the exact structure, the table, the
  state of the random generator and hashes of the input structure and model.  With
  ``resume=True`` a run continues from its last finished iteration and, with the same
  settings, ends with the same table as an uninterrupted run.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import io
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from ase import Atoms
from pydantic import Field, field_validator, model_validator

from hardcarbon.electrochem import (
    capacity_at_zero_volt,
    formation_energy,
    na_fraction,
    sodium_chemical_potential,
    specific_capacity,
    voltage_profile,
)
from hardcarbon.errors import InputError
from hardcarbon.forcefield.nep import bundled_model, nep_calculator
from hardcarbon.forcefield.stability import pair_floors, pairs_under_floors
from hardcarbon.settings import Settings
from hardcarbon.sodiation.insertion import HostFull, LocalNEP, propose_candidates, select_batch
from hardcarbon.sodiation.sites import SITE_CLASSES, SiteRules, classify_sites, site_labels_array
from hardcarbon.storage import atomic_write, write_json, write_structure

log = logging.getLogger(__name__)

#: Columns of ``sodiation.csv``.
TABLE_COLUMNS: tuple[str, ...] = (
    "iteration",
    "n_na",
    "x",
    "capacity_mAh_g",
    "energy_eV",
    "formation_energy_eV",
    "voltage_V",
    "n_adsorption",
    "n_intercalation",
    "n_filling",
)

#: Columns of ``na_voltages.csv``.
NA_COLUMNS: tuple[str, ...] = (
    "iteration",
    "n_na",
    "capacity_mAh_g",
    "index",
    "site",
    "inserted_at",
    "voltage_V",
)

#: Timed parts of an iteration, in the order they run (seconds, in ``summary["timings"]``).
TIMING_PARTS: tuple[str, ...] = ("scoring_s", "insertion_s", "relaxation_s", "evaluation_s",
                                 "classification_s", "contributions_s", "output_s")

#: Settings that only move the end of a run; they may change when a run is resumed.
_STOP_SETTINGS = ("target_na", "target_capacity", "max_iterations")

_CHECKPOINT_VERSION = 1



class SodiationConfig(Settings):
    """Settings of :func:`sodiate` (distances in Å, energies in eV, capacities in mAh/g)."""

    model: Path | None = Field(
        None, description="nep.txt covering C and Na; None: the bundled Na–C model"
    )
    batch_size: int = Field(50, ge=1, description="Na inserted per iteration")
    n_candidates: int | None = Field(
        None, ge=1, description="candidate positions scored per iteration; None: 20 x batch_size"
    )
    min_dist_c: float = Field(2.0, gt=0, description="smallest Na–host distance of a candidate")
    min_dist_na: float = Field(2.8, gt=0, description="smallest Na–Na distance of a candidate")
    selection: Literal["greedy", "boltzmann"] = Field(
        "greedy", description="batch from the lowest energies, or Boltzmann-weighted draws"
    )
    temperature: float = Field(300.0, gt=0, description="temperature of 'boltzmann' (K)")
    optimizer: Literal["FIRE", "LBFGS"] = "FIRE"
    fmax: float = Field(0.05, gt=0, description="force tolerance of the relaxations (eV/Å)")
    max_steps: int = Field(500, ge=1, description="optimizer steps per relaxation")
    relax_cell: bool = Field(False, description="relax the cell too (FrechetCellFilter)")
    seed: int = Field(0, ge=0, description="seed of the candidate positions")
    target_na: int | None = Field(
        None, ge=1, description="go on to this Na count, past 0 V (overcharge)"
    )
    target_capacity: float | None = Field(
        None, gt=0, description="go on to this capacity (mAh/g), past 0 V (overcharge)"
    )
    max_iterations: int = Field(100, ge=1, description="largest number of iterations")
    mu_na: float | None = Field(
        None, description="Na chemical potential (eV/atom); None: bcc Na relaxed with the model"
    )
    na_contributions: bool = Field(True, description="compute each Na's voltage contribution")
    min_distance: float = Field(1.0, gt=0, description="a relaxed pair closer than this (Å) "
                                "ends the run")
    pair_fraction: float = Field(
        0.6, gt=0, le=1, description="a relaxed pair of elements closer than this fraction of "
        "the sum of their covalent radii ends the run (Na–Na 1.99 Å, C–Na 1.45 Å)")
    sites: SiteRules = Field(default_factory=SiteRules, description="site classification rules")

    @field_validator("optimizer", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> SodiationConfig:
        if self.target_na is not None and self.target_capacity is not None:
            raise ValueError("give target_na or target_capacity, not both")
        if self.n_candidates is not None and self.n_candidates < self.batch_size:
            raise ValueError(
                f"n_candidates ({self.n_candidates}) must be at least batch_size "
                f"({self.batch_size})"
            )
        return self

    @property
    def candidates_per_iteration(self) -> int:
        """Number of candidate positions scored per iteration."""
        return self.n_candidates if self.n_candidates is not None else 20 * self.batch_size


def resolve_model(model: str | Path | None) -> Path:
    """The nep.txt to use: ``model`` if given, else the bundled one; one-line error otherwise."""
    if model is None:
        bundled = bundled_model()
        if bundled is None:
            raise InputError(
                "no NEP model given and no Na–C model is bundled with this hardcarbon: "
                "pass the path of a nep.txt that covers C and Na"
            )
        return bundled
    path = Path(model)
    if not path.is_file():
        raise InputError(f"NEP model file {path} does not exist: give the path of a nep.txt")
    return path


def structure_hash(atoms: Atoms) -> str:
    """SHA-256 of a structure's numbers, positions, cell and periodicity."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(atoms.numbers, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(atoms.positions, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(atoms.cell.array, dtype=np.float64).tobytes())
    digest.update(np.asarray(atoms.pbc, dtype=np.uint8).tobytes())
    return digest.hexdigest()


def file_hash(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def target_na_count(config: SodiationConfig, n_c: int) -> int | None:
    """Na count the run goes on to (``target_na``, or ``target_capacity`` rounded up)."""
    if config.target_na is not None:
        return config.target_na
    if config.target_capacity is not None:
        per_na = float(specific_capacity(1, n_c))
        return max(1, math.ceil(config.target_capacity / per_na - 1e-9))
    return None


def stop_reason(config: SodiationConfig, rows: list[dict[str, Any]], n_c: int) -> str | None:
    """Why the run ends after the last recorded state, or None if it goes on.

    With a target the run ends when the Na count reaches it; without one, after the first step
    whose voltage is <= 0 V.  ``max_iterations`` ends it in either case.
    """
    last = rows[-1]
    target = target_na_count(config, n_c)
    if target is not None:
        if last["n_na"] >= target:
            return "target_reached"
    elif last["voltage_V"] is not None and last["voltage_V"] <= 0.0:
        return "zero_voltage"
    if last["iteration"] >= config.max_iterations:
        return "max_iterations"
    return None


def _check_structure(atoms: Atoms) -> None:
    symbols = set(atoms.get_chemical_symbols())
    if "C" not in symbols:
        raise InputError(
            f"the structure ({atoms.get_chemical_formula()}) holds no carbon: "
            "give a hard-carbon host"
        )
    n_na = int(np.count_nonzero(atoms.numbers == 11))
    if n_na:
        raise InputError(
            f"the structure already holds {n_na} Na: give the bare carbon host "
            "(resume=True continues an earlier run from its workdir)"
        )
    if not np.all(atoms.pbc) or abs(atoms.cell.volume) < 1e-6:
        raise InputError(
            "the structure must be periodic in all three directions with a cell: "
            "give a bulk hard-carbon cell"
        )


def _relax(atoms: Atoms, model: Path, config: SodiationConfig) -> tuple[int, bool]:
    """Relax ``atoms`` in place; return the optimizer steps and whether ``fmax`` was reached."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE, LBFGS

    atoms.calc = nep_calculator(model, set(atoms.get_chemical_symbols()))
    target = FrechetCellFilter(atoms) if config.relax_cell else atoms
    optimizer = (FIRE if config.optimizer == "FIRE" else LBFGS)(target, logfile=None)
    converged = bool(optimizer.run(fmax=config.fmax, steps=config.max_steps))
    steps = int(optimizer.get_number_of_steps())
    atoms.calc = None
    return steps, converged


class Collapse(RuntimeError):
    """A relaxation pulled a pair of atoms under its floor: the model has a hole there."""


def _check_collapse(atoms: Atoms, iteration: int, config: SodiationConfig) -> None:
    """Raise :class:`Collapse` when a pair of ``atoms`` is under its floor."""
    floors = pair_floors(set(atoms.get_chemical_symbols()), config.min_distance,
                         config.pair_fraction)
    low = pairs_under_floors(atoms, floors)
    if low:
        pairs = ", ".join(f"{pair} {d:.2f} Å (floor {floors[pair]:.2f} Å)"
                          for pair, d in low.items())
        raise Collapse(f"the relaxation of iteration {iteration} pulled {pairs}: the model "
                       "has no repulsion there (docs/model-card.md); the state is not recorded")


def _csv_text(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row[c] is None else repr(row[c]) if isinstance(row[c], float)
                         else row[c] for c in columns])
    return buffer.getvalue()


def _atoms_to_json(atoms: Atoms) -> dict[str, Any]:
    return {
        "numbers": atoms.numbers.tolist(),
        "positions": atoms.positions.tolist(),
        "cell": atoms.cell.array.tolist(),
        "pbc": [bool(p) for p in atoms.pbc],
        "inserted_at": atoms.arrays["inserted_at"].tolist(),
    }


def _atoms_from_json(data: dict[str, Any]) -> Atoms:
    atoms = Atoms(
        numbers=data["numbers"], positions=data["positions"], cell=data["cell"], pbc=data["pbc"]
    )
    atoms.arrays["inserted_at"] = np.asarray(data["inserted_at"], dtype=int)
    return atoms


class _Progress:
    """A rich progress bar (iteration, Na count, voltage) on a terminal, else plain lines.

    Both go to stderr, so they never mix with a command's regular output.
    """

    def __init__(self, enabled: bool, total: int | None, start: int) -> None:
        self.enabled = enabled
        self._bar = None
        if not enabled:
            return
        try:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
        except ImportError:  # pragma: no cover - rich is a dependency
            return
        console = Console(stderr=True)
        if not console.is_terminal:
            return
        self._bar = Progress(
            TextColumn("sodiation"),
            BarColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
        )
        self._task = self._bar.add_task("starting", total=total, completed=start)
        self._bar.start()

    def update(self, iteration: int, n_na: int, voltage: float | None) -> None:
        """Show the state just recorded."""
        if not self.enabled:
            return
        volts = "n/a" if voltage is None else f"{voltage:+.3f} V"
        text = f"iteration {iteration:3d}  Na {n_na:5d}  voltage {volts}"
        if self._bar is None:
            print(f"sodiation: {text}", file=sys.stderr, flush=True)
        else:
            self._bar.update(self._task, completed=iteration, description=text)

    def close(self) -> None:
        """Stop the bar."""
        if self._bar is not None:
            self._bar.stop()


class _Run:
    """State of one sodiation run and the files of its workdir."""

    def __init__(self, workdir: Path, config: SodiationConfig, model: Path) -> None:
        self.workdir = workdir
        self.config = config
        self.model = model
        self.data: dict[str, Any] = {}
        self.atoms: Atoms | None = None
        self.scorer: LocalNEP | None = None
        self.rng = np.random.default_rng(config.seed)

    # -- checkpoint -----------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.workdir / "checkpoint.json"

    def start(self, atoms: Atoms, structure_sha: str, model_sha: str) -> None:
        """Relax the host (state 0), compute mu_Na and write the first checkpoint."""
        config = self.config
        timer = time.perf_counter()
        if config.mu_na is None:
            reference = sodium_chemical_potential(nep_calculator(self.model, {"Na"}))
            mu_na = float(reference["mu_na"])
        else:
            reference = {"mu_na": config.mu_na, "given": True}
            mu_na = float(config.mu_na)
        mu_s = time.perf_counter() - timer
        host = atoms.copy()
        host.calc = None
        host.arrays["inserted_at"] = np.full(len(host), -1, dtype=int)
        steps, converged, relax_s, evaluation_s = self._relax_and_rescore(host, config)
        n_c = int(np.count_nonzero(host.numbers == 6))
        self.atoms = host
        self.data = {
            "version": _CHECKPOINT_VERSION,
            "structure_sha256": structure_sha,
            "model_sha256": model_sha,
            "model": str(self.model),
            "config": config.model_dump(mode="json"),
            "mu_na": mu_na,
            "mu_na_details": reference,
            "mu_na_s": mu_s,
            "n_c": n_c,
            "n_host_atoms": len(host),
            "host_energy": self.scorer.energy,
            "rows": [],
            "per_na": [],
            "iterations": [],
        }
        timing = {"iteration": 0, "scoring_s": 0.0, "insertion_s": 0.0, "relaxation_s": relax_s,
                  "evaluation_s": evaluation_s, "relax_steps": steps, "relax_converged": converged}
        labelled = self._record(host, 0, timing)
        self._finish_iteration(labelled, timing)

    def load(self, structure_sha: str, model_sha: str) -> None:
        """Read the checkpoint and check that it belongs to this structure, model and config."""
        try:
            data = json.loads(self.checkpoint_path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(
                f"cannot read {self.checkpoint_path} ({type(exc).__name__}): "
                "the workdir is not a sodiation run; start a new one elsewhere"
            ) from None
        if data.get("version") != _CHECKPOINT_VERSION:
            raise InputError(f"{self.checkpoint_path} was written by another version of "
                             "hardcarbon: start a new run in a new workdir")
        if data["structure_sha256"] != structure_sha:
            raise InputError(
                f"workdir {self.workdir} holds a run of a different structure: resume it with the "
                "structure it started from, or start this one in a new workdir"
            )
        if data["model_sha256"] != model_sha:
            raise InputError(
                f"workdir {self.workdir} holds a run made with a different model "
                f"({data['model']}): resume it with that model, or use a new workdir"
            )
        wanted = self.config.model_dump(mode="json")
        for key, value in data["config"].items():
            if key in (*_STOP_SETTINGS, "model"):
                continue
            if wanted.get(key) != value:
                raise InputError(
                    f"workdir {self.workdir} was run with {key}={value!r}, not "
                    f"{wanted.get(key)!r}: resume with the same settings or use a new workdir"
                )
        self.data = data
        self.data["config"] = wanted
        self.atoms = _atoms_from_json(data["atoms"])
        self.rng.bit_generator.state = data["rng_state"]
        self.scorer = LocalNEP(self.atoms, self.model)

    # -- one iteration ----------------------------------------------------------------------
    def iterate(self) -> None:
        """Insert one batch, relax, record the state and write the checkpoint."""
        config = self.config
        rows = self.data["rows"]
        iteration = rows[-1]["iteration"] + 1
        n_now = rows[-1]["n_na"]
        target = target_na_count(config, self.data["n_c"])
        n_add = config.batch_size if target is None else min(config.batch_size, target - n_now)
        n_candidates = max(config.candidates_per_iteration, n_add)

        timer = time.perf_counter()
        candidates = propose_candidates(
            self.atoms, n_candidates, config.min_dist_c, config.min_dist_na, rng=self.rng,
            at_least=n_add,
        )
        energies = self.scorer.insertion_energies(candidates)
        picked = select_batch(
            candidates, energies, n_add, self.atoms.cell.array, config.min_dist_na,
            method=config.selection, temperature=config.temperature, rng=self.rng,
        )
        scoring_s = time.perf_counter() - timer

        timer = time.perf_counter()
        atoms = self.atoms.copy()
        new = Atoms(["Na"] * n_add, positions=candidates[picked])
        new.arrays["inserted_at"] = np.full(n_add, iteration, dtype=int)
        atoms += new
        insertion_s = time.perf_counter() - timer

        steps, converged, relax_s, evaluation_s = self._relax_and_rescore(atoms, config,
                                                                          iteration)

        timing: dict[str, Any] = {
            "iteration": iteration,
            "scoring_s": scoring_s,
            "insertion_s": insertion_s,
            "relaxation_s": relax_s,
            "evaluation_s": evaluation_s,
            "relax_steps": steps,
            "relax_converged": converged,
            "n_candidates": len(candidates),
            "candidate_energy_min_eV": float(energies.min()),
            "candidate_energy_median_eV": float(np.median(energies)),
            "inserted_energy_mean_eV": float(energies[picked].mean()),
        }
        self.atoms = atoms
        labelled = self._record(atoms, iteration, timing)
        self._finish_iteration(labelled, timing)

    def _record(self, atoms: Atoms, iteration: int, timing: dict[str, Any]) -> Atoms:
        """Add the table row and per-Na rows of a relaxed state; return it labelled.

        The returned copy carries the per-atom ``site``, ``voltage_contribution`` and
        ``inserted_at`` arrays and the state's row in ``info``.
        """
        data = self.data
        scorer = self.scorer
        n_c = data["n_c"]
        na = np.flatnonzero(atoms.numbers == 11)
        n_na = int(na.size)
        energy = scorer.energy
        e_f = float(formation_energy(energy, data["host_energy"], n_na, data["mu_na"]))
        voltage = None
        if data["rows"]:
            previous = data["rows"][-1]
            profile = voltage_profile(
                [previous["n_na"], n_na], [previous["formation_energy_eV"], e_f]
            )
            voltage = float(profile.voltage[0])

        timer = time.perf_counter()
        if n_na:
            classes = classify_sites(atoms, self.config.sites)
            labels = site_labels_array(atoms, classes)
            counts = classes.counts
        else:
            labels = np.asarray(atoms.get_chemical_symbols(), dtype="<U13")
            counts = dict.fromkeys(SITE_CLASSES, 0)
        classification_s = time.perf_counter() - timer

        timer = time.perf_counter()
        contribution = np.full(len(atoms), np.nan)
        if n_na and self.config.na_contributions:
            contribution[na] = -(scorer.removal_energies(na) - data["mu_na"])
        contributions_s = time.perf_counter() - timer
        timing["classification_s"] = classification_s
        timing["contributions_s"] = contributions_s

        capacity = float(specific_capacity(n_na, n_c))
        row = {
            "iteration": iteration,
            "n_na": n_na,
            "x": float(na_fraction(n_na, n_c)),
            "capacity_mAh_g": capacity,
            "energy_eV": float(energy),
            "formation_energy_eV": e_f,
            "voltage_V": voltage,
            **{f"n_{name}": int(counts[name]) for name in SITE_CLASSES},
        }
        data["rows"].append(row)
        for i in na:
            value = contribution[i]
            data["per_na"].append(
                {
                    "iteration": iteration,
                    "n_na": n_na,
                    "capacity_mAh_g": capacity,
                    "index": int(i),
                    "site": str(labels[i]),
                    "inserted_at": int(atoms.arrays["inserted_at"][i]),
                    "voltage_V": None if np.isnan(value) else float(value),
                }
            )
        labelled = atoms.copy()
        labelled.calc = None
        labelled.arrays["site"] = labels
        labelled.arrays["voltage_contribution"] = contribution
        labelled.info = {k: v for k, v in row.items() if v is not None}
        return labelled

    def _finish_iteration(self, state: Atoms, timing: dict[str, Any]) -> None:
        """Write the state, the tables, the summary and the checkpoint (in that order)."""
        timer = time.perf_counter()
        write_structure(self.workdir / "states" / f"state_{state.info['iteration']:03d}.xyz",
                        state)
        timing["output_s"] = time.perf_counter() - timer
        timing["total_s"] = sum(v for k, v in timing.items() if k.endswith("_s"))
        self.data["iterations"].append(timing)
        self.data["atoms"] = _atoms_to_json(self.atoms)
        self.data["rng_state"] = self.rng.bit_generator.state
        self.data["stopped"] = stop_reason(self.config, self.data["rows"], self.data["n_c"])
        self.write_outputs()
        write_json(self.checkpoint_path, self.data)

    # -- outputs ----------------------------------------------------------------------------
    def write_outputs(self) -> dict[str, Any]:
        """Write ``sodiation.csv``, ``na_voltages.csv`` and ``summary.json``; return the summary."""
        table = _csv_text(TABLE_COLUMNS, self.data["rows"])
        atomic_write(self.workdir / "sodiation.csv", lambda tmp: tmp.write_text(table))
        per_na = _csv_text(NA_COLUMNS, self.data["per_na"])
        atomic_write(self.workdir / "na_voltages.csv", lambda tmp: tmp.write_text(per_na))
        summary = self.summary()
        write_json(self.workdir / "summary.json", summary)
        return summary

    def _relax_and_rescore(self, atoms: Atoms, config: SodiationConfig,
                           iteration: int | None = None) -> tuple[int, bool, float, float]:
        """Relax ``atoms`` in place and rebuild the insertion scorer on the result.

        With an insertion ``iteration`` (not for the host), a relaxed pair under its floor
        raises :class:`Collapse` before the scorer is rebuilt for a state that will not be
        recorded.  Returns the optimiser steps, whether it converged, and the seconds of each
        part.
        """
        timer = time.perf_counter()
        steps, converged = _relax(atoms, self.model, config)
        relax_s = time.perf_counter() - timer
        if iteration is not None:
            _check_collapse(atoms, iteration, config)
        timer = time.perf_counter()
        # Every ASE calculator sits in a reference cycle (Calculator.__init__ stores a bound
        # method on the instance), so dropped CPUNEP engines, with their C++ neighbour lists,
        # wait for the cyclic collector, which does not see their size: memory rose by about
        # 130 MB per iteration on a 1175-C host.  Free them before building the new ones.
        self.scorer = None
        gc.collect()
        self.scorer = LocalNEP(atoms, self.model)
        return steps, converged, relax_s, time.perf_counter() - timer

    def summary(self) -> dict[str, Any]:
        """Capacity at 0 V, site counts, mu_Na, the table and the timings of the run."""
        data = self.data
        rows = data["rows"]
        n_c = data["n_c"]
        zero_volt = None
        zero_volt_sites = None
        if len(rows) >= 2:
            cut = capacity_at_zero_volt(
                [r["n_na"] for r in rows], [r["formation_energy_eV"] for r in rows], n_c
            )
            zero_volt = cut.as_dict()
            state = next(r for r in rows if r["n_na"] == cut.n_na)
            zero_volt_sites = {name: state[f"n_{name}"] for name in SITE_CLASSES}
        totals = {p: float(sum(t.get(p, 0.0) for t in data["iterations"]))
                  for p in (*TIMING_PARTS, "total_s")}
        last = rows[-1]
        return {
            "workdir": str(self.workdir),
            "model": data["model"],
            "model_sha256": data["model_sha256"],
            "structure_sha256": data["structure_sha256"],
            "config": data["config"],
            "n_c": n_c,
            "n_host_atoms": data["n_host_atoms"],
            "mu_na_eV": data["mu_na"],
            "mu_na_details": data["mu_na_details"],
            "host_energy_eV": data["host_energy"],
            "iterations": last["iteration"],
            "n_na": last["n_na"],
            "capacity_mAh_g": last["capacity_mAh_g"],
            "voltage_V": last["voltage_V"],
            "stopped": data.get("stopped"),
            "target_na": target_na_count(self.config, n_c),
            "capacity_at_zero_volt": zero_volt,
            "site_counts_at_zero_volt": zero_volt_sites,
            "site_counts": {name: last[f"n_{name}"] for name in SITE_CLASSES},
            "states": rows,
            "timings": data["iterations"],
            "timing_totals_s": {**totals, "mu_na_s": data.get("mu_na_s", 0.0)},
        }


def sodiate(
    atoms: Atoms,
    config: SodiationConfig | None = None,
    workdir: str | Path = "sodiation",
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Sodiate a hard-carbon host batch by batch and record the voltage curve.

    Parameters
    ----------
    atoms : ase.Atoms
        The bare carbon host (periodic; no Na), e.g. from ``hardcarbon build``.
    config : SodiationConfig, optional
        Settings; the defaults follow the study (50 Na per iteration, stop at 0 V).
    workdir : str or Path
        Folder of the run's outputs and checkpoint (see the module docstring).
    resume : bool
        Continue the run in ``workdir`` from its last finished iteration (a workdir without a
        checkpoint starts a new run).  Without it, a workdir that already holds a run is
        refused.
    progress : bool
        Show a progress line (iteration, Na count, voltage) on stderr.

    Returns
    -------
    dict
        The summary also written to ``summary.json``: capacity at 0 V (mAh/g), site counts,
        mu_Na (eV/atom), the table of states and the timings per iteration (s).

    Raises
    ------
    InputError
        A structure without carbon, with Na already, or not periodic; a model that does not
        cover Na or the host; no room for a batch at the minimum distances; a workdir from a
        different structure, model or settings.
    """
    config = SodiationConfig() if config is None else config
    if not isinstance(atoms, Atoms):
        raise InputError("sodiate needs an ase.Atoms structure: read it with read_structure")
    _check_structure(atoms)
    model = resolve_model(config.model)
    nep_calculator(model, set(atoms.get_chemical_symbols()) | {"Na"})
    workdir = Path(workdir)
    run = _Run(workdir, config, model)
    structure_sha = structure_hash(atoms)
    model_sha = file_hash(model)
    if run.checkpoint_path.exists() and not resume:
        raise InputError(
            f"{workdir} already holds a sodiation run: pass resume=True (--resume) to continue "
            "it, or choose another workdir"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    if run.checkpoint_path.exists():
        run.load(structure_sha, model_sha)
    else:
        run.start(atoms, structure_sha, model_sha)

    n_c = run.data["n_c"]
    target = target_na_count(config, n_c)
    total = None if target is None else math.ceil(target / config.batch_size)
    bar = _Progress(progress, total, run.data["rows"][-1]["iteration"])
    try:
        last = run.data["rows"][-1]
        bar.update(last["iteration"], last["n_na"], last["voltage_V"])
        while (reason := stop_reason(config, run.data["rows"], n_c)) is None:
            try:
                run.iterate()
            except HostFull as exc:
                if len(run.data["rows"]) == 1:
                    raise  # not even one batch fits: bad input
                log.warning("sodiation stops: %s", exc)
                reason = "host_full"
                break
            except Collapse as exc:
                log.warning("sodiation stops: %s", exc)
                reason = "collapse"
                break
            last = run.data["rows"][-1]
            bar.update(last["iteration"], last["n_na"], last["voltage_V"])
    finally:
        bar.close()
    run.data["stopped"] = reason
    summary = run.write_outputs()
    write_json(run.checkpoint_path, run.data)
    return summary
