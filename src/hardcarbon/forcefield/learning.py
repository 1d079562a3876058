"""Active learning of a NEP model, the loop of Figure 1a of the study.

:func:`learn` starts from labelled structures (``initial_data``) and repeats, in
``workdir/iter_NNN`` for iteration ``NNN`` = 000, 001, ...:

1. **train** a committee of ``committee`` NEP models on all labelled data so far (the initial
   data and every earlier iteration's labels), model ``k`` with seed ``train.seed + k`` (which
   changes its train/test split and its batches), each fine-tuned from the previous
   iteration's ``model_0`` (iteration 0: from ``initial_model``, or from scratch without one);
   ``model_0`` is the iteration's model;
2. **errors** of ``model_0`` on its own held-out ``test.xyz``;
3. **explore** with ``model_0``: short MD runs (Langevin NVT, Berendsen NPT at zero pressure)
   from the starting structures at each temperature, keeping a frame every ``interval`` steps;
   a run ends early at a non-finite energy or when a pair of atoms comes closer than its
   floor (:func:`~hardcarbon.forcefield.stability.pair_floors`: ``pair_fraction`` of the
   sum of covalent radii, at least ``min_distance``), so a Na collapse ends it too (the
   frames before are kept);
4. **select**: the committee's force disagreement of every frame
   (:func:`~hardcarbon.forcefield.selection.committee_disagreement`); frames inside the window
   of :class:`~hardcarbon.forcefield.selection.SelectConfig` are thinned by farthest-point
   sampling against all labelled data
   (:func:`~hardcarbon.forcefield.selection.select_structures`);
5. **label** the selection with the reference calculator
   (:func:`~hardcarbon.forcefield.labelling.label_structures`).

The loop stops after ``max_iterations``, when nothing is selected (no frame in the
disagreement window), or when the held-out force RMSE and the median disagreement both
improve by less than ``tolerance`` (relative) over the previous iteration (the disagreement
alone while the data are too few to hold out a test structure).  The last
iteration's selection is written but not labelled: a rerun with more iterations labels it.

Files (all written atomically)::

    workdir/config.json              settings of the run (checked on a rerun)
    workdir/starts.xyz               starting structures of the MD exploration
    workdir/learning.json            one row per iteration, stop reason, final model
    workdir/learning.png             force RMSE and median disagreement per iteration
    workdir/iter_NNN/state.json      finished stages with their numbers and seconds
    workdir/iter_NNN/model_K/        train_nep run directories (nep.txt, test.xyz, ...)
    workdir/iter_NNN/errors.json     errors of model_0 on its test.xyz (evaluation.summary)
    workdir/iter_NNN/explore.xyz     MD frames; explore.json: one row per MD run
    workdir/iter_NNN/disagreement.json   per-frame disagreement (eV/Å), median, max, window
    workdir/iter_NNN/selected.xyz    frames to label (info['disagreement'] in eV/Å)
    workdir/iter_NNN/labels/         label_structures folder of the selection

Resuming: each finished stage is recorded in ``state.json``, so rerunning :func:`learn` with
the same settings (``max_iterations``, ``tolerance``, ``label.workers`` and
``train.threads`` may change) continues where a killed run stopped; an interrupted training
or labelling stage resumes by itself (:func:`~hardcarbon.forcefield.training.train_nep`,
:func:`~hardcarbon.forcefield.labelling.label_structures`).  Other settings in the same
``workdir`` raise :class:`~hardcarbon.errors.InputError`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from ase import Atoms, units
from pydantic import Field, ValidationInfo, field_validator, model_validator

from hardcarbon.errors import InputError
from hardcarbon.forcefield.families import DatasetConfig, generate_dataset
from hardcarbon.forcefield.labelling import LabelConfig, check_calculator, vacuum_thickness
from hardcarbon.forcefield.selection import SelectConfig
from hardcarbon.forcefield.stability import pair_floors, pairs_under_floors
from hardcarbon.forcefield.training import (
    TrainConfig,
    combine_references,
    family_of,
    load_training_data,
)
from hardcarbon.settings import Settings
from hardcarbon.storage import bare_structure, read_frames, write_json, write_structure

log = logging.getLogger(__name__)

#: Stages of an iteration, in order; each leaves a marker in ``iter_NNN/state.json``.
STAGES: tuple[str, ...] = ("train", "errors", "explore", "select", "label")
#: Settings of :class:`LearnConfig` that may change between a run and its resumption.
RESUMABLE_CHANGES: dict[str, Any] = {"max_iterations": True, "tolerance": True,
                                     "label": {"workers", "executor"}, "train": {"threads"}}
#: Loop defaults of the nested settings (the classes' own defaults suit a one-off run).
SELECT_DEFAULTS: dict[str, Any] = {"count": 20, "max_atoms": 60}
DATASET_DEFAULTS: dict[str, Any] = {
    "counts": {"disordered": 4, "layered": 2, "fullerene": 2, "nanotube": 2, "sodium": 1},
    "max_atoms": 64, "seed": 1}

_LANGEVIN_FRICTION = 0.01  # 1/fs
_BERENDSEN_TAUT = 100.0  # fs
_BERENDSEN_TAUP = 500.0  # fs
_COMPRESSIBILITY = 8.0  # Å³/eV, about 1/(20 GPa): disordered carbon
_VACUUM_GAP = 5.0  # Å: a cell with a thicker empty slab gets no NPT run
_SKIPPED = "skipped: vacuum in the cell"


# --------------------------------------------------------------------------------------------
# configuration


class ExploreConfig(Settings):
    """MD exploration with the current model and the structures it starts from.

    Attributes
    ----------
    temperatures
        Temperatures of the runs (K).
    ensembles
        ``"nvt"`` (Langevin) and/or ``"npt"`` (Berendsen at zero pressure; only for cells
        without vacuum, others get the NVT runs only).
    steps
        MD steps per run.
    timestep
        MD time step (fs).
    interval
        Steps between saved frames.
    min_distance, pair_fraction
        A frame with a pair of atoms closer than ``pair_fraction`` of the sum of their
        covalent radii, or than ``min_distance`` (Å), ends its run.
    seed
        Seed of the velocities, the Langevin noise and the hard-carbon cells; iteration ``n``
        uses ``seed + n`` for the MD.
    starts
        Extended-XYZ file of extra starting structures (periodic cells).
    carbon_atoms, density
        Size (C atoms) and density (g/cm³) of the random hard-carbon starting cells.
    loadings
        Na/C ratios of the hard-carbon starting cells, one cell each (empty: none).
    na_c_min, na_na_min
        Smallest Na–C and Na–Na distances (Å) at which Na is inserted into them.
    """

    temperatures: list[float] = Field(default_factory=lambda: [300.0, 1000.0, 2000.0])
    ensembles: list[Literal["nvt", "npt"]] = Field(default_factory=lambda: ["nvt", "npt"])
    steps: int = Field(1000, ge=1, description="MD steps per run")
    timestep: float = Field(1.0, gt=0, le=5, description="MD time step (fs)")
    interval: int = Field(50, ge=1, description="steps between saved frames")
    min_distance: float = Field(0.8, gt=0, description="closest approach that ends a run (Å)")
    pair_fraction: float = Field(0.6, gt=0, le=1, description="a pair closer than this "
                                 "fraction of its covalent-radius sum ends a run")
    seed: int = Field(0, ge=0)
    starts: Path | None = Field(None, description="extended XYZ of extra starting structures")
    carbon_atoms: int = Field(48, ge=8, le=200, description="C atoms of a hard-carbon cell")
    density: float = Field(1.5, gt=0.5, le=2.2, description="hard-carbon density (g/cm³)")
    loadings: list[float] = Field(default_factory=lambda: [0.02, 0.06, 0.12])
    na_c_min: float = Field(2.2, gt=0, le=3.5, description="smallest Na–C distance (Å)")
    na_na_min: float = Field(3.0, gt=0, le=4.5, description="smallest Na–Na distance (Å)")

    @field_validator("temperatures")
    @classmethod
    def _temperatures(cls, temperatures: list[float]) -> list[float]:
        if not temperatures or any(not 0 < t <= 5000 for t in temperatures):
            raise ValueError(f"give temperatures in (0, 5000] K, got {temperatures}")
        return temperatures

    @field_validator("ensembles")
    @classmethod
    def _ensembles(cls, ensembles: list[str]) -> list[str]:
        if not ensembles or len(set(ensembles)) != len(ensembles):
            raise ValueError(f"give nvt and/or npt once each, got {ensembles}")
        return ensembles

    @field_validator("loadings")
    @classmethod
    def _loadings(cls, loadings: list[float]) -> list[float]:
        if any(not 0 < x <= 0.2 for x in loadings):
            raise ValueError(f"give Na/C ratios in (0, 0.2], got {loadings}")
        return loadings

    @model_validator(mode="after")
    def _frames(self) -> ExploreConfig:
        if self.interval > self.steps:
            raise ValueError(f"interval ({self.interval}) is longer than a run ({self.steps} "
                             "steps): no frame would be saved")
        return self


class LearnConfig(Settings):
    """Settings of :func:`learn`.

    Attributes
    ----------
    initial_data
        Labelled structures to start from (extended XYZ or a label folder); required.
    initial_model
        A nep.txt that iteration 0 fine-tunes (None: iteration 0 trains from scratch).
    secondary_data, secondary_weight
        Labels of a second, cheaper method (e.g. SevenNet + D3) added to every training set
        by :func:`~hardcarbon.forcefield.training.combine_references`: moved onto the
        reference's energy zero and given this GPUMD weight.  Errors and selection use the
        reference labels only.
    committee
        Models per iteration (≥ 2); their disagreement picks the structures to label.
    max_iterations
        Largest number of iterations.
    tolerance
        Stop when the held-out force RMSE and the median disagreement both improve by less
        than this fraction over the previous iteration.
    train, label, select, explore, dataset
        Training, labelling, selection and exploration settings, and the
        :class:`~hardcarbon.forcefield.families.DatasetConfig` of the fresh starting
        structures (``counts: {}`` for none).  Keys given for ``select`` and ``dataset``
        override the loop's defaults (:data:`SELECT_DEFAULTS`, :data:`DATASET_DEFAULTS`).
    """

    initial_data: Path | None = Field(None, description="labelled extended XYZ to start from")
    initial_model: Path | None = Field(None, description="nep.txt fine-tuned in iteration 0")
    secondary_data: Path | None = Field(None, description="labels of a cheaper method")
    secondary_weight: float = Field(0.1, gt=0, le=1, description="their GPUMD weight")
    committee: int = Field(3, ge=2, le=16, description="models per iteration")
    max_iterations: int = Field(5, ge=1, description="largest number of iterations")
    tolerance: float = Field(0.05, ge=0, lt=1, description="relative improvement to go on")
    train: TrainConfig = Field(default_factory=TrainConfig)
    label: LabelConfig = Field(default_factory=LabelConfig)
    select: SelectConfig = Field(default_factory=lambda: SelectConfig(**SELECT_DEFAULTS))
    explore: ExploreConfig = Field(default_factory=ExploreConfig)
    dataset: DatasetConfig = Field(default_factory=lambda: DatasetConfig(**DATASET_DEFAULTS))

    @field_validator("select", "dataset", mode="before")
    @classmethod
    def _loop_defaults(cls, value: Any, info: ValidationInfo) -> Any:
        defaults = SELECT_DEFAULTS if info.field_name == "select" else DATASET_DEFAULTS
        if isinstance(value, SelectConfig | DatasetConfig):
            value = value.model_dump(exclude_unset=True)
        return {**defaults, **value} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _consistent(self) -> LearnConfig:
        if self.initial_data is None:
            raise ValueError("give initial_data: an extended-XYZ file of labelled structures "
                             "to start from")
        if self.train.initial_model is not None:
            raise ValueError("set initial_model at the top level, not under train: the loop "
                             "fine-tunes each iteration from the one before")
        if self.train.test_fraction == 0:
            raise ValueError("train.test_fraction must be above 0: the loop measures the "
                             "errors of each model on held-out structures")
        return self


# --------------------------------------------------------------------------------------------
# starting structures


def hard_carbon_cells(config: ExploreConfig) -> list[Atoms]:
    """Random hard-carbon cells with Na, one per Na/C ratio in ``config.loadings``.

    A cube of ``config.carbon_atoms`` C at ``config.density`` g/cm³ (counting C only) gets
    ``max(1, round(loading × carbon_atoms))`` Na at random points at least ``na_na_min`` Å
    apart.  Carbon is placed at random at least 1.4 Å apart
    (:func:`hardcarbon.structures.random_carbon.random_carbon`) with more atoms than needed;
    those closer than ``na_c_min`` Å to a Na are dropped, then random ones until
    ``carbon_atoms`` remain.  (Random carbon at 1.5 g/cm³ has almost no room ``na_c_min`` Å
    from every C, so inserting Na after the carbon would miss the loading.)

    Returns
    -------
    list of ase.Atoms
        Family ``disordered``, ``config_type`` ``disordered/explore_rho<ρ>_C<n>_Na<m>``.

    Raises
    ------
    InputError
        If the carbon cannot be placed at this density and loading.
    """
    from scipy.spatial import cKDTree

    from hardcarbon.structures.random_carbon import number_density, random_carbon

    rng = np.random.default_rng([config.seed, 1])
    edge = (config.carbon_atoms / number_density(config.density)) ** (1 / 3)
    lengths = np.full(3, edge)
    cells = []
    for loading in config.loadings:
        sodium: list[np.ndarray] = []
        for point in rng.random((5000, 3)) * lengths:
            if len(sodium) == max(1, round(loading * config.carbon_atoms)):
                break
            d = np.reshape(sodium, (-1, 3)) - point
            d -= lengths * np.round(d / lengths)
            if np.all(np.linalg.norm(d, axis=1) >= config.na_na_min):
                sodium.append(point)
        tree = cKDTree(np.reshape(sodium, (-1, 3)), boxsize=lengths)
        free = np.mean(tree.query(rng.random((20000, 3)) * lengths)[0] >= config.na_c_min)
        keep: np.ndarray = np.zeros(0, dtype=int)
        for margin in (1.1, 1.2, 1.3, 1.4):
            try:
                carbon = random_carbon(math.ceil(margin * config.carbon_atoms / free),
                                       (edge, edge, edge), min_distance=1.4,
                                       seed=int(rng.integers(2**31)))
            except InputError:
                break
            keep = np.flatnonzero(tree.query(carbon.positions % lengths)[0] >= config.na_c_min)
            if len(keep) >= config.carbon_atoms:
                break
        if len(keep) < config.carbon_atoms:
            raise InputError(f"cannot place {config.carbon_atoms} C at {config.density} g/cm³ "
                             f"around {len(sodium)} Na (Na/C {loading}): lower explore.density "
                             "or explore.loadings")
        keep = np.sort(rng.choice(keep, config.carbon_atoms, replace=False))
        atoms = carbon[keep] + Atoms(["Na"] * len(sodium), positions=sodium)
        atoms.info.update(family="disordered", vacuum_axes="none", config_type=(
            f"disordered/explore_rho{config.density:.2f}_C{config.carbon_atoms}_Na{len(sodium)}"))
        cells.append(atoms)
    return cells


def starting_structures(config: LearnConfig) -> list[Atoms]:
    """Structures the MD exploration starts from.

    The structures of ``config.explore.starts`` (if given), a fresh set of
    :func:`~hardcarbon.forcefield.families.generate_dataset` (``config.dataset``) and the
    hard-carbon cells of :func:`hard_carbon_cells`.

    Raises
    ------
    InputError
        An unreadable or non-periodic starts file, or no starting structure at all.
    """
    starts: list[Atoms] = []
    if config.explore.starts is not None:
        starts += [_plain(a) for a in read_frames(config.explore.starts, "starts")]
    starts += [_plain(a) for a in generate_dataset(config.dataset)]
    starts += hard_carbon_cells(config.explore)
    if not starts:
        raise InputError("no starting structures for the exploration: give explore.starts, "
                         "dataset counts or explore.loadings")
    for i, atoms in enumerate(starts):
        if len(atoms) == 0 or atoms.cell.rank < 3:
            raise InputError(f"starting structure {i} has no atoms or no 3-D cell: give "
                             "periodic cells as starting structures")
    return starts


# --------------------------------------------------------------------------------------------
# exploration


class _Unphysical(Exception):
    """A run reached a state whose energy or forces are not finite."""


def explore(model: str | Path, starts: Sequence[Atoms], config: ExploreConfig | None = None,
            seed: int = 0) -> tuple[list[Atoms], list[dict[str, Any]]]:
    """MD frames of the NEP ``model`` from each start, at each temperature and ensemble.

    Parameters
    ----------
    model
        The nep.txt that drives the MD (calorine ``CPUNEP``).
    starts
        Periodic starting structures; ``info`` ``family``, ``config_type`` and
        ``vacuum_axes`` are passed on to their frames.
    config
        Temperatures, ensembles, run length and frame interval; the defaults when None.
    seed
        Seed of the initial velocities and of the Langevin noise.

    Returns
    -------
    frames : list of ase.Atoms
        A frame every ``interval`` steps (not the start), with ``info`` ``explore_start``
        (index), ``explore_ensemble``, ``explore_temperature`` (K) and ``explore_step``, and
        ``config_type`` ``<start's config_type>/explore_<ensemble>_<T>K``.
    runs : list of dict
        One per run: start, ensemble, temperature (K), steps run, frames, and ``ended``
        (``"finished"``, ``"skipped: vacuum in the cell"`` for NPT of a cell with vacuum, or
        why the run ended early).
    """
    from hardcarbon.forcefield.nep import nep_calculator

    config = config or ExploreConfig()
    calc = nep_calculator(model, {s for a in starts for s in a.get_chemical_symbols()})
    frames: list[Atoms] = []
    runs: list[dict[str, Any]] = []
    for i, start in enumerate(starts):
        bulk = all(vacuum_thickness(start, axis) <= _VACUUM_GAP for axis in range(3))
        for t, temperature in enumerate(config.temperatures):
            for ensemble in config.ensembles:
                run = {"start": i, "formula": start.get_chemical_formula(),
                       "ensemble": ensemble, "temperature_K": temperature, "steps": 0,
                       "frames": 0, "ended": _SKIPPED}
                if ensemble == "nvt" or bulk:
                    rng = np.random.default_rng([seed, i, t, ensemble == "npt"])
                    new, run["steps"], run["ended"] = _md_run(start, calc, temperature,
                                                              ensemble, config, rng)
                    for frame in new:
                        frame.info.update(explore_start=i)
                    run["frames"] = len(new)
                    frames += new
                runs.append(run)
    return frames, runs


def _md_run(start: Atoms, calc: Any, temperature: float, ensemble: str, config: ExploreConfig,
            rng: np.random.Generator) -> tuple[list[Atoms], int, str]:
    """Frames, steps run and how the run ended (``"finished"`` or the reason it stopped)."""
    from ase.md.langevin import Langevin
    from ase.md.nptberendsen import NPTBerendsen
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    atoms = _plain(start)
    floors = pair_floors(set(atoms.get_chemical_symbols()), config.min_distance,
                         config.pair_fraction)
    atoms.calc = calc
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    dt = config.timestep * units.fs
    if ensemble == "nvt":
        dyn = Langevin(atoms, dt, temperature_K=temperature, fixcm=False, rng=rng,
                       friction=_LANGEVIN_FRICTION / units.fs)
    else:
        dyn = NPTBerendsen(atoms, dt, temperature_K=temperature, pressure_au=0.0,
                           taut=_BERENDSEN_TAUT * units.fs, taup=_BERENDSEN_TAUP * units.fs,
                           compressibility_au=_COMPRESSIBILITY)

    def check() -> None:
        if not (np.isfinite(atoms.get_potential_energy())
                and np.isfinite(atoms.get_forces()).all()):
            raise _Unphysical

    dyn.attach(check, interval=1)
    frames: list[Atoms] = []
    done = 0
    while done < config.steps:
        chunk = min(config.interval, config.steps - done)
        try:
            dyn.run(chunk)
        except _Unphysical:
            return frames, int(dyn.nsteps), f"non-finite energy at step {dyn.nsteps}"
        done += chunk
        short = pairs_under_floors(atoms, floors)
        if short:
            pair, d = min(short.items(), key=lambda item: item[1] / floors[item[0]])
            return frames, done, (f"{pair} {d:.2f} Å apart at step {done} "
                                  f"(floor {floors[pair]:.2f} Å)")
        if chunk == config.interval:
            frame = _plain(atoms)
            frame.info.update(config_type=f"{_config_type(start)}/explore_{ensemble}_"
                                          f"{temperature:g}K",
                              explore_ensemble=ensemble, explore_temperature=temperature,
                              explore_step=done)
            frames.append(frame)
    return frames, done, "finished"


# --------------------------------------------------------------------------------------------
# the loop


def learn(config: LearnConfig, workdir: str | Path = "learning") -> dict[str, Any]:
    """Run (or resume) the active-learning loop; see the module docstring.

    Parameters
    ----------
    config
        Settings of the loop.
    workdir
        Run folder; a rerun with the same settings continues the run in it.

    Returns
    -------
    dict
        What ``workdir/learning.json`` holds: ``iterations`` (one row per iteration:
        ``n_train``, ``n_test``, ``energy_rmse_meV_atom``, ``force_rmse_meV_A`` of model_0
        on its test set, ``disagreement_median_eV_A``, ``disagreement_max_eV_A``,
        ``n_frames``, ``n_in_window``, ``n_selected``, ``n_labelled`` (None when not
        labelled), ``seconds`` per stage), ``stop_reason`` (``"max_iterations"``,
        ``"tolerance"`` or ``"no_candidates"``), ``stop_message`` and ``final_model``.

    Raises
    ------
    InputError
        Unlabelled or missing initial data, a missing initial model, a calculator or
        training engine that cannot run here, or other settings than those of the run
        already in ``workdir``.
    """
    from hardcarbon.forcefield.training import resolve_engine

    workdir = Path(workdir)
    data = load_training_data(config.initial_data, "initial data")
    secondary = (load_training_data(config.secondary_data, "secondary data")
                 if config.secondary_data is not None else [])
    if config.initial_model is not None and not config.initial_model.is_file():
        raise InputError(f"initial model {config.initial_model} does not exist: give a "
                         "nep.txt to fine-tune, or leave initial_model unset")
    check_calculator(config.label)
    if resolve_engine(config.train) != "neppo" and (
            config.initial_model is not None or config.max_iterations > 1):
        raise InputError("the loop fine-tunes each model from the one before, which needs "
                         "neppo: set train.engine to neppo")
    settings = _fingerprint(config)
    _check_workdir(workdir, settings)
    if (workdir / "starts.xyz").is_file():
        starts = read_frames(workdir / "starts.xyz", "starts")
    else:
        starts = starting_structures(config)
        elements = {s for a in data for s in a.get_chemical_symbols()}
        extra = sorted({s for a in starts for s in a.get_chemical_symbols()} - elements)
        if extra:
            raise InputError(f"the starting structures hold {', '.join(extra)}, which the "
                             "initial data do not: give starting structures of the trained "
                             "elements")
        write_structure(workdir / "starts.xyz", starts)
    write_json(workdir / "config.json", {"settings": settings})

    rows: list[dict[str, Any]] = []
    model = config.initial_model
    for n in range(config.max_iterations):
        folder = workdir / f"iter_{n:03d}"
        row = _iteration(n, config, data, secondary, starts, model, folder)
        rows.append(row)
        reason, message = _stop_reason(config, rows)
        if reason is None:
            state = _read_state(folder)
            record = _stage(folder, state, "label", _label, folder, config.label)
            row["n_labelled"] = record["n_labelled"]
            row["seconds"]["label"] = record["seconds"]
            data = data + load_training_data(folder / "labels", "labels")
            model = folder / "model_0" / "nep.txt"
        result = _write_summary(workdir, rows, reason, message)
        if reason is not None:
            return result
    raise AssertionError("unreachable: the last iteration always stops")


def _iteration(n: int, config: LearnConfig, data: list[Atoms], secondary: list[Atoms],
               starts: list[Atoms], previous: Path | None, folder: Path) -> dict[str, Any]:
    """Stages train to select of iteration ``n``; its row of ``learning.json``."""
    state = _read_state(folder)
    models = [folder / f"model_{k}" / "nep.txt" for k in range(config.committee)]
    training = (combine_references(data, secondary, config.secondary_weight)[0] if secondary
                else data)
    stages = [("train", _train, (config, training, previous, folder)),
              ("errors", _errors, (models[0], folder)),
              ("explore", _explore, (models[0], starts, config.explore, n, folder)),
              ("select", _select, (models, data, config.select, folder))]
    row: dict[str, Any] = {"iteration": n, "model": str(models[0])}
    seconds = {}
    for name, work, args in stages:
        record = _stage(folder, state, name, work, *args)
        seconds[name] = record["seconds"]
        row.update({k: v for k, v in record.items() if k != "seconds"})
    row.update(n_labelled=None, seconds=seconds)
    if "label" in state["stages"]:  # an earlier run labelled this iteration
        row["n_labelled"] = state["stages"]["label"]["n_labelled"]
        seconds["label"] = state["stages"]["label"]["seconds"]
    return row


def _stage(folder: Path, state: dict[str, Any], name: str, work: Callable[..., dict[str, Any]],
           *args: Any) -> dict[str, Any]:
    """The record of stage ``name``: read from ``state`` if done, else run ``work(*args)``."""
    if name in state["stages"]:
        return state["stages"][name]
    log.info("%s: %s", folder, name)
    start = time.perf_counter()
    record = work(*args)
    record["seconds"] = round(time.perf_counter() - start, 2)
    state["stages"][name] = record
    write_json(folder / "state.json", state)
    return record


def _train(config: LearnConfig, data: list[Atoms], previous: Path | None, folder: Path
           ) -> dict[str, Any]:
    from hardcarbon.forcefield.training import STATE_FILE, train_nep

    for k in range(config.committee):
        train = config.train.model_copy(update={"seed": config.train.seed + k,
                                                "initial_model": previous})
        train_nep(data, train, folder / f"model_{k}")
    run = json.loads((folder / "model_0" / STATE_FILE).read_text())
    return {"n_train": run["n_train"], "n_test": run["n_test"]}


def _errors(model: Path, folder: Path) -> dict[str, Any]:
    from hardcarbon.forcefield.evaluation import evaluate_model, summary

    test = model.parent / "test.xyz"
    if not test.is_file():  # every family too small to hold one out
        write_json(folder / "errors.json", {"model": str(model), "overall": None})
        return {"energy_rmse_meV_atom": None, "force_rmse_meV_A": None}
    reference = [a for a in load_training_data(test, "test")
                 if float(a.info.get("weight", 1.0)) >= 1.0]  # not the secondary labels
    if not reference:
        write_json(folder / "errors.json", {"model": str(model), "overall": None})
        return {"energy_rmse_meV_atom": None, "force_rmse_meV_A": None}
    errors = summary(evaluate_model(model, reference))
    write_json(folder / "errors.json", errors)
    return {"energy_rmse_meV_atom": round(errors["overall"]["energy_rmse_meV_atom"], 3),
            "force_rmse_meV_A": round(errors["overall"]["force_rmse_meV_A"], 3)}


def _explore(model: Path, starts: list[Atoms], config: ExploreConfig, n: int, folder: Path
             ) -> dict[str, Any]:
    frames, runs = explore(model, starts, config, seed=config.seed + n)
    write_structure(folder / "explore.xyz", frames)
    write_json(folder / "explore.json", {"model": str(model), "runs": runs})
    return {"n_frames": len(frames),
            "n_runs_ended_early": sum(r["ended"] not in ("finished", _SKIPPED) for r in runs)}


def _select(models: list[Path], data: list[Atoms], config: SelectConfig, folder: Path
            ) -> dict[str, Any]:
    from hardcarbon.forcefield.selection import committee_disagreement, select_structures

    frames = read_frames(folder / "explore.xyz", "explored")
    spread = committee_disagreement(frames, models) if frames else np.zeros(0)
    window = [i for i, (atoms, s) in enumerate(zip(frames, spread, strict=True))
              if len(atoms) <= config.max_atoms
              and config.min_disagreement <= s <= config.max_disagreement]
    picked = []
    if window:
        candidates = [frames[i] for i in window]
        picked = [window[j] for j in select_structures(candidates, models[0], config,
                                                       labelled=data)]
    selected = []
    for i in picked:
        atoms = frames[i].copy()
        atoms.info["disagreement"] = float(spread[i])
        selected.append(atoms)
    write_structure(folder / "selected.xyz", selected)
    median = round(float(np.median(spread)), 4) if len(spread) else None
    largest = round(float(spread.max()), 4) if len(spread) else None
    write_json(folder / "disagreement.json", {
        "units": "eV/Å", "median": median, "max": largest,
        "window": [config.min_disagreement, config.max_disagreement],
        "max_atoms": config.max_atoms, "n_frames": len(frames), "n_in_window": len(window),
        "selected": picked, "frames": spread})
    return {"disagreement_median_eV_A": median, "disagreement_max_eV_A": largest,
            "n_in_window": len(window), "n_selected": len(selected)}


def _label(folder: Path, config: LabelConfig) -> dict[str, Any]:
    from hardcarbon.forcefield.labelling import label_structures

    selected = read_frames(folder / "selected.xyz", "selected")
    labelled = label_structures(selected, config, folder / "labels") if selected else []
    (folder / "labels").mkdir(exist_ok=True)
    return {"n_labelled": len(labelled)}


def _stop_reason(config: LearnConfig, rows: list[dict[str, Any]]) -> tuple[str | None, str]:
    """Why the loop stops after the last of ``rows`` (None: it goes on), and a sentence."""
    row = rows[-1]
    if row["n_selected"] == 0:
        where = ("no explored frame in the disagreement window" if row["n_in_window"] == 0
                 else "no frame in the disagreement window differs from the labelled data")
        return "no_candidates", where
    if len(rows) > 1:
        gains = [_improvement(rows[-2][key], row[key])
                 for key in ("force_rmse_meV_A", "disagreement_median_eV_A")]
        gains = [g for g in gains if g is not None]
        if gains and all(g < config.tolerance for g in gains):
            return "tolerance", (f"force RMSE and median disagreement improved by less than "
                                 f"{100 * config.tolerance:g} %")
    if len(rows) >= config.max_iterations:
        return "max_iterations", f"reached max_iterations ({config.max_iterations})"
    return None, ""


def _improvement(before: float | None, after: float | None) -> float | None:
    if before is None or after is None or before <= 0:
        return None
    return (before - after) / before


def _write_summary(workdir: Path, rows: list[dict[str, Any]], reason: str | None,
                   message: str) -> dict[str, Any]:
    result = {"workdir": str(workdir), "iterations": rows, "stop_reason": reason,
              "stop_message": message, "final_model": rows[-1]["model"],
              "units": {"energy_rmse": "meV/atom", "force_rmse": "meV/Å",
                        "disagreement": "eV/Å", "seconds": "s"}}
    write_json(workdir / "learning.json", result)
    _plot(rows, workdir / "learning.png")
    return result


def _plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """Force RMSE (meV/Å) and median disagreement (eV/Å) against iteration."""
    from matplotlib.ticker import MaxNLocator

    from hardcarbon.forcefield.evaluation import _figure, _save

    def values(key: str) -> list[float]:
        return [math.nan if r[key] is None else r[key] for r in rows]

    iterations = [r["iteration"] for r in rows]
    fig, ax = _figure(5.0, 3.6)
    ax.plot(iterations, values("force_rmse_meV_A"), "o-", color="C0")
    ax.set_xlabel("Iteration")
    ax.set_ylabel("Held-out force RMSE (meV/Å)", color="C0")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    twin = ax.twinx()
    twin.plot(iterations, values("disagreement_median_eV_A"), "s--", color="C1")
    twin.set_ylabel("Median committee disagreement (eV/Å)", color="C1")
    return _save(fig, path)


# --------------------------------------------------------------------------------------------
# files and resuming


def _plain(atoms: Atoms) -> Atoms:
    """Numbers, positions, cell and pbc, with ``family``, ``config_type`` and vacuum axes."""
    out = bare_structure(atoms)
    out.info["family"] = family_of(atoms)
    for key in ("config_type", "vacuum_axes"):
        if isinstance(atoms.info.get(key), str):
            out.info[key] = atoms.info[key]
    return out


def _config_type(atoms: Atoms) -> str:
    config_type = atoms.info.get("config_type")
    return config_type if isinstance(config_type, str) and config_type else family_of(atoms)


def _read_state(folder: Path) -> dict[str, Any]:
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):
        state = {}
    if not isinstance(state, dict) or not isinstance(state.get("stages"), dict):
        state = {"stages": {}}
    return state


def _content_hash(path: Path | None) -> str | None:
    """SHA-256 of a file, or of the ``*.xyz`` files of a folder (None for None)."""
    if path is None:
        return None
    h = hashlib.sha256()
    for item in sorted(path.glob("*.xyz")) if path.is_dir() else [path]:
        h.update(item.name.encode() if path.is_dir() else b"")
        h.update(item.read_bytes())
    return h.hexdigest()


def _fingerprint(config: LearnConfig) -> dict[str, Any]:
    """The settings that define a run; input files by their content, not their path."""
    settings = config.model_dump(mode="json", exclude=RESUMABLE_CHANGES)
    settings["initial_data"] = _content_hash(config.initial_data)
    settings["initial_model"] = _content_hash(config.initial_model)
    settings["secondary_data"] = _content_hash(config.secondary_data)
    settings["explore"]["starts"] = _content_hash(config.explore.starts)
    return settings


def _flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _check_workdir(workdir: Path, settings: dict[str, Any]) -> None:
    """Raise unless ``workdir`` is new or holds a run with these settings."""
    path = workdir / "config.json"
    if not path.is_file():
        return
    try:
        before = json.loads(path.read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"{path} is unreadable: delete {workdir} or give another "
                         "workdir") from None
    old, new = _flatten(before), _flatten(json.loads(json.dumps(settings)))
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if changed:
        names = ", ".join(changed[:4]) + (", ..." if len(changed) > 4 else "")
        raise InputError(f"{workdir} holds a learning run with other settings ({names}): "
                         f"rerun with the settings in {path}, or give another workdir")
