"""NEP4 training from labelled structures, on the CPU with neppo or on a GPU with GPUMD's ``nep``.

:func:`train_nep` turns labelled structures (``info['REF_energy']``, ``arrays['REF_forces']``
and optionally ``info['REF_stress']`` as written by
:func:`hardcarbon.forcefield.labelling.label_structures`, or the calculator results of an
extended-XYZ file such as GPUMD's own ``train.xyz``) into a run directory of GPUMD's ``nep``
executable::

    nep.in      hyper-parameters (see :class:`TrainConfig` and :func:`nep_in_text`)
    train.xyz   training structures, GPUMD format (energy=, forces, stress=)
    test.xyz    held-out structures (when ``test_fraction`` > 0)

and trains a model there, either with neppo (PyTorch, gradient descent, the default on
machines without GPUMD) or with GPUMD's ``nep`` (SNES, on a GPU) when that executable is on
``PATH``.  The result is ``nep.txt``, readable by GPUMD, calorine and LAMMPS-NEP.

Resuming: ``training.json`` in the run directory records a hash of the inputs (``nep.in``,
``train.xyz``, ``test.xyz``, engine) and whether the run finished.  A finished run with the
same inputs is returned as is.  An interrupted neppo run continues from the last ``nep.txt``
it wrote (every ``output_interval`` steps) for the remaining steps, with the learning rate
taken up where the cosine schedule was; AdamW's moments start from zero again, as neppo has no
optimizer checkpoint.  An interrupted GPUMD run continues from ``nep.restart`` (GPUMD reads it
by itself) for the remaining generations.  Different inputs start a new run in the directory.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import math
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols
from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from hardcarbon.errors import InputError
from hardcarbon.settings import Settings, check_pattern
from hardcarbon.storage import (
    atomic_write,
    bare_structure,
    read_frames,
    structure_key,
    write_json,
)

log = logging.getLogger(__name__)

#: Run-state file in the training directory.
STATE_FILE = "training.json"
#: Files that a training run writes (removed before a fresh run).
OUTPUT_FILES = ("nep.txt", "nep_best.txt", "nep.restart", "loss.out", "neppo.log", "nep.log",
                "energy_train.out", "energy_test.out", "force_train.out", "force_test.out",
                "virial_train.out", "virial_test.out", "stress_train.out", "stress_test.out")
#: Default ``batch`` per engine: GPUMD evaluates a large batch per SNES generation, neppo
#: takes one AdamW step per mini-batch.
DEFAULT_BATCH = {"gpumd": 1000, "neppo": 32}
#: Default length of a neppo run when neither ``steps`` nor ``epochs`` is given.
DEFAULT_STEPS = 20000

_INSTALL_NEPPO = ("neppo is not installed: pip install torch==2.13.0, then pip install "
                  "'.[train]' (see docs/training.md)")


# --------------------------------------------------------------------------------------------
# configuration


class TrainConfig(Settings):
    """Hyper-parameters of a NEP4 model and of its training, in the terms of GPUMD's ``nep.in``.

    Unknown or invalid settings raise a one-line :class:`InputError` (also from
    ``TrainConfig.model_validate(mapping)`` and ``TrainConfig.from_yaml(path)``).

    Attributes
    ----------
    engine
        ``"auto"`` (GPUMD's ``nep`` when ``nep_command`` is on PATH, else neppo), ``"neppo"``
        or ``"gpumd"``.
    elements
        Order of the species in the model (``type``); by default the elements of the training
        data in order of atomic number.  Must list every element of the data.
    cutoff
        Radial and angular cutoff (Å); GPUMD requires 3 ≤ angular ≤ radial ≤ 100.
    n_max
        Number of radial and angular descriptor functions minus one (≤ 12, ≤ 8).
    basis_size
        Number of radial and angular basis functions minus one (≤ 16, ≤ 12).
    l_max
        Largest angular momentum of the three-body descriptors (2–8).
    four_body, five_body
        Include the four-body (``l_max`` second value 2) and five-body (third value 1) terms.
    neuron
        Neurons in the hidden layer (1–120).
    lambda_e, lambda_f, lambda_v
        Weights of the energy (eV/atom), force (eV/Å) and virial (eV/atom) errors.
    lambda_1, lambda_2
        L1 and L2 regularisation weights; None: GPUMD's automatic value, none with neppo.
    zbl
        Outer cutoff (Å, 1–4) of the universal ZBL repulsion added to the model; None: no ZBL.
    zbl_typewise
        GPUMD's ``use_typewise_cutoff_zbl`` factor: each pair's ZBL is switched off between 0
        and this factor times the sum of the two species' covalent radii (capped at ``zbl``),
        instead of between ``zbl``/2 and ``zbl`` for every pair. None: the universal cutoffs.
    batch
        Structures per batch; None: 1000 for GPUMD (per generation), 32 for neppo (per step).
    population, generation
        GPUMD's SNES population size and number of generations.
    steps, epochs
        Length of a neppo run: AdamW steps, or passes through the training set (converted to
        steps with ⌈n_train / batch⌉ batches per pass).  At most one; neither:
        :data:`DEFAULT_STEPS` steps.
    learning_rate
        neppo's learning rate at the first and at the last step (cosine decay between).
    weight_decay
        neppo's decoupled AdamW weight decay.
    loss_form
        neppo's loss: mean square (``"mse"``) or root mean square (``"rmse"``, as GPUMD) errors.
    output_interval
        neppo steps between reports (a row of ``loss.out`` and a new ``nep.txt``); a resumed run
        loses at most this many steps.
    threads
        PyTorch CPU threads of a neppo run.
    device
        PyTorch device of a neppo run: ``"cpu"``, or ``"cuda"`` / ``"cuda:N"`` for an NVIDIA
        GPU, where neppo replays each step as a CUDA graph (timings in docs/training.md,
        "Training on a GPU with neppo").  GPUMD's ``nep`` always runs on a GPU and ignores
        it; choose that GPU with ``CUDA_VISIBLE_DEVICES``.
    nep_command
        GPUMD's ``nep`` executable (name on PATH or path).
    seed
        Seed of the train/test split and of neppo's initial parameters and batches (GPUMD's
        ``nep`` seeds itself from the clock, so its runs do not repeat exactly).
    test_fraction
        Share of the structures of each family held out in ``test.xyz`` (0 ≤ f < 1).
    weights
        Structure weights by ``config_type``: each regular expression that matches a
        structure's ``config_type`` (``re.search``) multiplies its GPUMD ``weight``.  Used to
        let a consistent series (one cell, one k-mesh and grid: e.g. a sheet with and without
        Na) outweigh the label noise between cells of different sizes.  GPUMD and neppo square
        this weight: a factor of 10 counts the structure's errors a hundredfold.
    energy_weights
        The same for the GPUMD ``energy_weight`` of a structure, which multiplies its energy
        error alone (not squared): weights the energies of a series whose energy differences
        matter (a binding-energy or interlayer scan) without weighting its forces.
    initial_model
        A nep.txt to start from instead of random parameters (fine-tuning, neppo only).  Its
        own species order, cutoffs, descriptor sizes and network width replace the settings
        above, except a ``neuron`` set above its width: the network is then widened by new
        neurons that start with zero output weights (:func:`~hardcarbon.forcefield.nep.
        widen_nep`), so training starts from exactly the initial model.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: Literal["auto", "neppo", "gpumd"] = "auto"
    elements: list[str] | None = Field(None, description="species order of the model")
    cutoff: tuple[float, float] = Field((6.0, 4.0), description="radial, angular cutoff (Å)")
    n_max: tuple[int, int] = Field((4, 4), description="radial, angular n_max")
    basis_size: tuple[int, int] = Field((8, 8), description="radial, angular basis size")
    l_max: int = Field(4, ge=2, le=8, description="l_max of the three-body descriptors")
    four_body: bool = True
    five_body: bool = False
    neuron: int = Field(30, ge=1, le=120, description="neurons in the hidden layer")
    lambda_e: float = Field(1.0, ge=0, description="energy weight")
    lambda_f: float = Field(1.0, ge=0, description="force weight")
    lambda_v: float = Field(0.1, ge=0, description="virial weight")
    lambda_1: float | None = Field(None, ge=0, description="L1 regularisation weight")
    lambda_2: float | None = Field(None, ge=0, description="L2 regularisation weight")
    zbl: float | None = Field(None, ge=1.0, le=4.0, description="ZBL outer cutoff (Å)")
    zbl_typewise: float | None = Field(None, gt=0, le=1.5,
                                       description="typewise ZBL cutoff factor (needs zbl)")
    batch: int | None = Field(None, ge=1, description="structures per batch")
    population: int = Field(50, ge=10, le=200, description="GPUMD SNES population")
    generation: int = Field(100000, ge=1, le=10_000_000, description="GPUMD generations")
    steps: int | None = Field(None, ge=1, description="neppo training steps")
    epochs: float | None = Field(None, gt=0, description="neppo passes through the data")
    learning_rate: tuple[float, float] = Field((1e-2, 1e-4), description="neppo start, end")
    weight_decay: float = Field(0.0, ge=0, description="neppo AdamW weight decay")
    loss_form: Literal["mse", "rmse"] = "mse"
    output_interval: int = Field(100, ge=1, description="neppo steps between reports")
    threads: int = Field(1, ge=1, description="PyTorch CPU threads (neppo)")
    device: str = Field("cpu", description="PyTorch device (neppo)")
    nep_command: str = Field("nep", description="GPUMD nep executable")
    seed: int = Field(42, ge=0)
    test_fraction: float = Field(0.1, ge=0, lt=1, description="held-out share per family")
    weights: dict[str, float] = Field(default_factory=dict,
                                      description="config_type pattern -> weight factor")
    energy_weights: dict[str, float] = Field(
        default_factory=dict, description="config_type pattern -> energy-weight factor")
    initial_model: Path | None = Field(None, description="nep.txt to fine-tune (neppo)")

    @field_validator("elements")
    @classmethod
    def _elements(cls, elements: list[str] | None) -> list[str] | None:
        if elements is None:
            return None
        bad = [e for e in elements if e not in chemical_symbols[1:95]]
        if bad or not elements or len(set(elements)) != len(elements):
            raise ValueError(f"give distinct element symbols (H to Pu), got {elements}")
        return elements

    @field_validator("cutoff")
    @classmethod
    def _cutoff(cls, cutoff: tuple[float, float]) -> tuple[float, float]:
        radial, angular = cutoff
        if not 3.0 <= angular <= radial <= 100.0:
            raise ValueError(f"need 3 <= angular <= radial <= 100 Å, got {radial}, {angular}")
        return cutoff

    @field_validator("n_max")
    @classmethod
    def _n_max(cls, n_max: tuple[int, int]) -> tuple[int, int]:
        if not (0 <= n_max[0] <= 12 and 0 <= n_max[1] <= 8):
            raise ValueError(f"need radial 0-12 and angular 0-8, got {n_max}")
        return n_max

    @field_validator("basis_size")
    @classmethod
    def _basis_size(cls, size: tuple[int, int]) -> tuple[int, int]:
        if not (0 <= size[0] <= 16 and 0 <= size[1] <= 12):
            raise ValueError(f"need radial 0-16 and angular 0-12, got {size}")
        return size

    @field_validator("weights", "energy_weights")
    @classmethod
    def _weights(cls, weights: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        for pattern, factor in weights.items():
            check_pattern(pattern, f"{info.field_name} pattern")
            if not (math.isfinite(factor) and factor > 0):
                raise ValueError(f"{info.field_name} factor of {pattern!r} must be positive, "
                                 f"got {factor}")
        return weights

    @field_validator("device")
    @classmethod
    def _device(cls, device: str) -> str:
        if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
            raise ValueError(f"use cpu, cuda or cuda:N, got {device!r}")
        return device

    @field_validator("learning_rate")
    @classmethod
    def _learning_rate(cls, rate: tuple[float, float]) -> tuple[float, float]:
        if not (rate[0] > 0 and rate[1] > 0 and all(map(math.isfinite, rate))):
            raise ValueError(f"learning rates must be positive, got {rate}")
        return rate

    @model_validator(mode="after")
    def _one_length(self) -> TrainConfig:
        if self.steps is not None and self.epochs is not None:
            raise ValueError("give steps or epochs, not both")
        if self.zbl_typewise is not None and self.zbl is None:
            raise ValueError("zbl_typewise needs zbl, the cap on the typewise cutoffs (Å)")
        return self

    def batch_for(self, engine: str) -> int:
        """``batch``, or the default of ``engine`` (``"gpumd"`` or ``"neppo"``)."""
        return self.batch if self.batch is not None else DEFAULT_BATCH[engine]

    def neppo_steps(self, n_train: int) -> int:
        """Number of neppo steps for ``n_train`` training structures."""
        if self.steps is not None:
            return self.steps
        if self.epochs is not None:
            batches = math.ceil(n_train / self.batch_for("neppo"))
            return max(1, round(self.epochs * batches))
        return DEFAULT_STEPS


def apply_weights(structures: list[Atoms], weights: dict[str, float], key: str = "weight"
                  ) -> list[Atoms]:
    """``structures`` with ``info[key]`` (``"weight"`` or ``"energy_weight"``) multiplied by the
    factor of every pattern of ``weights`` that matches their ``config_type`` (see
    ``TrainConfig.weights`` and ``TrainConfig.energy_weights``)."""
    for atoms in structures:
        kind = str(atoms.info.get("config_type", ""))
        for pattern, factor in weights.items():
            if re.search(pattern, kind):
                atoms.info[key] = float(atoms.info.get(key, 1.0)) * factor
    return structures


def resolve_engine(config: TrainConfig) -> str:
    """``"gpumd"`` or ``"neppo"``: the engine that :func:`train_nep` uses with ``config``.

    Raises
    ------
    InputError
        If the chosen engine is not available here.
    """
    have_nep = shutil.which(config.nep_command) is not None
    if config.engine == "gpumd" or (config.engine == "auto" and have_nep):
        if not have_nep:
            raise InputError(f"GPUMD's nep executable '{config.nep_command}' is not on PATH: "
                             "build GPUMD (see docs/training.md) or use engine neppo")
        return "gpumd"
    if importlib.util.find_spec("neppo") is None or importlib.util.find_spec("torch") is None:
        raise InputError(_INSTALL_NEPPO)
    if config.device != "cpu":
        import torch

        if not torch.cuda.is_available():
            raise InputError(f"device {config.device} asked for, but PyTorch {torch.__version__} "
                             "sees no CUDA GPU here: use device cpu, or install a CUDA build of "
                             "torch on the GPU machine")
    return "neppo"


# --------------------------------------------------------------------------------------------
# labels, families and the split


def family_of(atoms: Atoms) -> str:
    """``info['family']``, else the part of ``info['config_type']`` before ``/``, else "all"."""
    family = atoms.info.get("family")
    if isinstance(family, str) and family:
        return family
    config_type = atoms.info.get("config_type")
    if isinstance(config_type, str) and config_type:
        return config_type.split("/", 1)[0]
    return "all"


def reference_labels(atoms: Atoms, where: str = "structure", detail: str = ""
                     ) -> tuple[float, np.ndarray, np.ndarray | None]:
    """Reference energy (eV), forces (eV/Å, N×3) and stress (eV/Å³, 3×3, or None) of ``atoms``.

    Taken from ``REF_energy``/``REF_forces``/``REF_stress`` (labelling module), else from the
    calculator results that ASE reads from an extended-XYZ file (``energy=``, ``forces``,
    ``stress=``), else from ``info['virial']`` (eV, GPUMD's train.xyz; stress = −virial/V).

    Parameters
    ----------
    atoms
        A labelled structure.
    where, detail
        Name of the structure in error messages, e.g. ``"training file t.xyz"`` and
        ``" (structure 3)"``.

    Raises
    ------
    InputError
        ``"<where> has no forces<detail>: label it first ..."`` (or no energy).
    """
    energy = atoms.info.get("REF_energy")
    forces = atoms.arrays.get("REF_forces")
    stress = atoms.info.get("REF_stress")
    calc = atoms.calc
    results = getattr(calc, "results", {}) if calc is not None else {}
    if forces is None:
        forces = results.get("forces", atoms.arrays.get("forces"))
    if energy is None:
        energy = results.get("energy", results.get("free_energy", atoms.info.get("energy")))
    if stress is None:
        stress = results.get("stress", atoms.info.get("stress"))
        if stress is None and "virial" in atoms.info and atoms.cell.rank == 3:
            stress = -np.asarray(atoms.info["virial"], dtype=float).reshape(3, 3) \
                / atoms.get_volume()
    if forces is None:
        raise InputError(f"{where} has no forces{detail}: label it first "
                         "(hardcarbon.forcefield.labelling.label_structures)")
    if energy is None:
        raise InputError(f"{where} has no energy{detail}: label it first "
                         "(hardcarbon.forcefield.labelling.label_structures)")
    forces = np.asarray(forces, dtype=float)
    if forces.shape != (len(atoms), 3) or not np.isfinite(forces).all():
        raise InputError(f"{where} has forces of shape {forces.shape} or non-finite "
                         f"forces{detail}: label it again")
    if stress is not None:
        stress = np.asarray(stress, dtype=float).reshape(-1)
        if stress.size == 6:  # Voigt xx yy zz yz xz xy
            xx, yy, zz, yz, xz, xy = stress
            stress = np.array([xx, xy, xz, xy, yy, yz, xz, yz, zz])
        stress = stress.reshape(3, 3)
    return float(energy), forces, stress


def _labelled(atoms: Atoms, where: str, detail: str = "") -> Atoms:
    """A plain copy with REF_* labels, family, config_type and weight (what training needs)."""
    energy, forces, stress = reference_labels(atoms, where, detail)
    out = bare_structure(atoms)
    out.info["REF_energy"] = energy
    out.arrays["REF_forces"] = forces
    if stress is not None and atoms.pbc.all():
        out.info["REF_stress"] = stress.reshape(9)
    out.info["family"] = family_of(atoms)
    for key in ("config_type", "weight", "energy_weight", "REF_method"):
        if key in atoms.info:
            out.info[key] = atoms.info[key]
    return out


def load_training_data(data: Sequence[Atoms] | str | Path, kind: str = "training"
                       ) -> list[Atoms]:
    """Labelled structures from a list, an extended-XYZ file or a folder of label files.

    ``kind`` names the data in error messages (``"training file x.xyz has no forces ..."``).

    Returns
    -------
    list of ase.Atoms
        Plain copies with ``REF_energy`` (eV), ``REF_forces`` (eV/Å), ``REF_stress`` (eV/Å³,
        when given) and ``info['family']``.

    Raises
    ------
    InputError
        If the file cannot be read, holds no structures, or a structure has no forces.
    """
    if isinstance(data, str | Path):
        path = Path(data)
        if path.is_dir():
            from hardcarbon.forcefield.labelling import collect_labels

            structures = collect_labels(path)
            return [_labelled(a, f"label folder {path}", f" (file {n + 1})")
                    for n, a in enumerate(structures)]
        structures = read_frames(path, kind, "give an extended-XYZ file of labelled "
                                 "structures or a label folder")
        if not structures:
            raise InputError(f"{kind} file {path} holds no structures")
        return [_labelled(a, f"{kind} file {path}", f" (structure {n})")
                for n, a in enumerate(structures)]
    structures = list(data)
    if not structures:
        raise InputError(f"no {kind} structures given")
    out = []
    for n, atoms in enumerate(structures):
        if not isinstance(atoms, Atoms) or len(atoms) == 0:
            raise InputError(f"{kind} structure {n} is not a non-empty ase.Atoms")
        out.append(_labelled(atoms, f"{kind} structure {n} "
                                    f"({atoms.get_chemical_formula()})"))
    return out


def combine_references(primary: Sequence[Atoms], secondary: Sequence[Atoms],
                       weight: float = 0.1) -> tuple[list[Atoms], dict[str, float]]:
    """One training set from two reference methods: ``primary`` (e.g. GPAW) as it is, plus
    the ``secondary`` structures (e.g. SevenNet + D3) it does not hold, moved onto the
    primary's energy zero and down-weighted.

    Two methods' total energies differ by a constant per atom of each element (their atomic
    references).  Those constants come from a least-squares fit of E_primary − E_secondary over
    the structures that both labelled (the same geometry); the secondary energies are shifted
    by them, so that both sets share one zero.  The secondary structures get GPUMD's per-
    structure ``weight`` (neppo reads it too): they keep the model broad where the primary
    has few structures, while the primary decides wherever both have data.

    Returns
    -------
    structures : list of ase.Atoms
        Primary structures (``weight`` 1) then the shifted, weighted secondary ones.
    shifts : dict
        eV per atom of each element added to the secondary energies, and the RMS residual of
        the fit (``rms_residual_meV_atom``).

    Raises
    ------
    InputError
        If too few shared structures fix a constant for every element.
    """
    if not 0 < weight <= 1:
        raise InputError(f"weight {weight} of the secondary structures must be in (0, 1]")
    first = [_labelled(a, "primary data", f" (structure {i})") for i, a in enumerate(primary)]
    second = [_labelled(a, "secondary data", f" (structure {i})")
              for i, a in enumerate(secondary)]
    by_key = {structure_key(a): a for a in first}
    elements = sorted({s for a in [*first, *second] for s in a.get_chemical_symbols()},
                      key=lambda s: atomic_numbers[s])
    rows, diffs = [], []
    for atoms in second:
        match = by_key.get(structure_key(atoms))
        if match is not None:
            symbols = atoms.get_chemical_symbols()
            rows.append([symbols.count(e) for e in elements])
            diffs.append(reference_labels(match)[0] - reference_labels(atoms)[0])
    a = np.array(rows, dtype=float).reshape(-1, len(elements))
    if len(rows) == 0 or np.linalg.matrix_rank(a) < len(elements):
        raise InputError(f"only {len(rows)} structures are labelled by both methods, too few "
                         f"to fix an energy shift for each of {', '.join(elements)}: label "
                         "structures of different compositions with both")
    delta, *_ = np.linalg.lstsq(a, np.array(diffs), rcond=None)
    residual = np.array(diffs) - a @ delta
    per_atom = residual / a.sum(axis=1)
    shifts = {e: float(d) for e, d in zip(elements, delta, strict=True)}
    out = []
    for atoms in first:
        atoms = atoms.copy()
        atoms.info["weight"] = 1.0
        out.append(atoms)
    for atoms in second:
        if structure_key(atoms) in by_key:
            continue
        energy, forces, stress = reference_labels(atoms)
        symbols = atoms.get_chemical_symbols()
        atoms = atoms.copy()
        atoms.info["REF_energy"] = energy + sum(shifts[s] for s in symbols)
        atoms.arrays["REF_forces"] = forces
        if stress is not None:
            atoms.info["REF_stress"] = stress.reshape(9)
        atoms.info["weight"] = float(weight)
        out.append(atoms)
    return out, {**shifts, "rms_residual_meV_atom": float(1000 * np.sqrt(np.mean(per_atom**2))),
                 "shared_structures": len(rows)}


def _structure_key(atoms: Atoms, seed: int) -> str:
    h = hashlib.sha256(np.int64(seed).tobytes())
    h.update(np.asarray(atoms.numbers, dtype="<i8").tobytes())
    for array in (atoms.positions, atoms.cell[:]):
        h.update((np.round(np.asarray(array, dtype=float), 5) + 0.0).astype("<f8").tobytes())
    return h.hexdigest()


def split_train_test(structures: Sequence[Atoms], test_fraction: float, seed: int = 42
                     ) -> tuple[list[int], list[int]]:
    """Indices of the training and the test structures, stratified by :func:`family_of`.

    Within each family the structures are ranked by a hash of their content and ``seed``, and
    the first ``round(n × test_fraction)`` go to the test set: at least one of a family of two
    or more, so that every family with a second cell gets a test error, and never all.  The
    split depends only on the structures, not on their order.  Adding structures to a family
    can move some of its test structures into training, when the newcomers rank above them
    (12 edge cells added to the 221 plane-wave cells moved 5 of the 34): a family of its own
    (``info['family']``) keeps the other families' split as it was.
    """
    families: dict[str, list[int]] = {}
    for i, atoms in enumerate(structures):
        families.setdefault(family_of(atoms), []).append(i)
    test: list[int] = []
    for members in families.values():
        n_test = round(len(members) * test_fraction)
        if test_fraction > 0:
            n_test = min(max(n_test, 1), len(members) - 1)
        ranked = sorted(members, key=lambda i: _structure_key(structures[i], seed))
        test += ranked[:n_test]
    test_set = set(test)
    return [i for i in range(len(structures)) if i not in test_set], sorted(test)


# --------------------------------------------------------------------------------------------
# nep.in


def _g(value: float) -> str:
    return f"{value:g}"


def nep_in_text(config: TrainConfig, elements: Sequence[str], engine: str,
                n_train: int) -> str:
    """Contents of ``nep.in`` for ``engine`` (``"gpumd"`` or ``"neppo"``).

    GPUMD rejects keywords it does not know, so the neppo-only keywords (``seed``,
    ``learning_rate``, ``weight_decay``, ``loss_form``, ``output_interval``) go only into
    neppo's file, and SNES's ``population`` only into GPUMD's.  ``generation`` is the number of
    SNES generations for GPUMD and of AdamW steps for neppo.
    """
    lines = [
        "version 4",
        f"type {len(elements)} {' '.join(elements)}",
        f"cutoff {_g(config.cutoff[0])} {_g(config.cutoff[1])}",
        f"n_max {config.n_max[0]} {config.n_max[1]}",
        f"basis_size {config.basis_size[0]} {config.basis_size[1]}",
        f"l_max {config.l_max} {2 if config.four_body else 0} {1 if config.five_body else 0}",
        f"neuron {config.neuron}",
    ]
    if config.zbl is not None:
        lines.append(f"zbl {_g(config.zbl)}")
    if config.zbl_typewise is not None:
        lines.append(f"use_typewise_cutoff_zbl {_g(config.zbl_typewise)}")
    lines += [f"lambda_e {_g(config.lambda_e)}", f"lambda_f {_g(config.lambda_f)}",
              f"lambda_v {_g(config.lambda_v)}"]
    if config.lambda_1 is not None:
        lines.append(f"lambda_1 {_g(config.lambda_1)}")
    if config.lambda_2 is not None:
        lines.append(f"lambda_2 {_g(config.lambda_2)}")
    lines.append(f"batch {config.batch_for(engine)}")
    if engine == "gpumd":
        lines += [f"population {config.population}", f"generation {config.generation}"]
    else:
        lines += [f"generation {config.neppo_steps(n_train)}",
                  f"seed {config.seed}",
                  f"learning_rate {_g(config.learning_rate[0])} {_g(config.learning_rate[1])}",
                  f"weight_decay {_g(config.weight_decay)}",
                  f"loss_form {config.loss_form}",
                  f"output_interval {config.output_interval}"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# loss.out


def read_loss(path: str | Path) -> list[dict[str, float]]:
    """Rows of a ``loss.out`` of GPUMD or neppo, with ``step`` counted over resumed segments.

    A resumed run appends a new segment whose ``generation`` starts again from zero (neppo
    writes a ``#`` header before each); ``step`` adds the last generation of the segments
    before.  Columns are named as in the ``# columns`` header, or as GPUMD's classic
    ``generation total L1 L2 rmse_energy_train rmse_force_train rmse_virial_train`` (+ the
    ``_test`` ones) for files without a header.  Energies in eV/atom, forces in eV/Å.
    """
    path = Path(path)
    if not path.is_file():
        return []
    rows: list[dict[str, float]] = []
    columns: list[str] | None = None
    offset = previous = 0.0
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            if line.startswith("# columns"):
                columns = line.split()[2:]
            offset, previous = offset + previous, 0.0
            continue
        try:
            values = [float(v) for v in line.split()]
        except ValueError:
            continue  # a line cut off by a kill
        if not values:
            continue
        names = columns or _gpumd_columns(len(values))
        if len(values) != len(names):
            continue
        row = dict(zip(names, values, strict=True))
        generation = values[0]  # the first column in both formats
        if generation <= previous:  # a restarted run without a header line
            offset += previous
        previous = generation
        row["step"] = offset + generation
        rows.append(row)
    return rows


def _gpumd_columns(n: int) -> list[str]:
    names = ["generation", "total", "L1", "L2", "rmse_energy_train", "rmse_force_train",
             "rmse_virial_train", "rmse_energy_test", "rmse_force_test", "rmse_virial_test"]
    return names[:n] if n <= len(names) else [*names, *(f"c{i}" for i in range(len(names), n))]


# --------------------------------------------------------------------------------------------
# training


def train_nep(data: Sequence[Atoms] | str | Path, config: TrainConfig | None = None,
              workdir: str | Path = "nep-train") -> Path:
    """Train a NEP4 model on labelled structures; return the path of ``nep.txt``.

    Parameters
    ----------
    data
        Labelled structures (``REF_energy`` eV, ``REF_forces`` eV/Å, optional ``REF_stress``
        eV/Å³), or an extended-XYZ file of them (also GPUMD's train.xyz), or a label folder.
    config
        Hyper-parameters and engine; the defaults when None.
    workdir
        Run directory; it receives ``nep.in``, ``train.xyz``, ``test.xyz``, the engine's
        outputs (``nep.txt``, ``loss.out``, ``*_train.out``, ...) and ``training.json``.

    Returns
    -------
    pathlib.Path
        ``workdir/nep.txt``, checked to load in calorine and to give finite energies.

    Raises
    ------
    InputError
        Structures without forces or energies, elements not in ``config.elements``, an
        engine that is not available, or inputs that neppo rejects.
    RuntimeError
        If GPUMD's ``nep`` fails or the trained model does not evaluate.
    """
    from hardcarbon.forcefield.labelling import write_training_file

    config = config or TrainConfig()
    structures = apply_weights(load_training_data(data), config.weights)
    structures = apply_weights(structures, config.energy_weights, key="energy_weight")
    if config.initial_model is not None:
        config = _with_initial_model(config)
    present = {s for atoms in structures for s in atoms.get_chemical_symbols()}
    if config.elements is not None:
        missing = sorted(present - set(config.elements))
        if missing:
            raise InputError(f"the training data hold {', '.join(missing)}, which the "
                             f"elements setting ({', '.join(config.elements)}) leaves out")
        elements = list(config.elements)
    else:
        elements = sorted(present, key=lambda s: atomic_numbers[s])
    engine = resolve_engine(config)

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    train_idx, test_idx = split_train_test(structures, config.test_fraction, config.seed)
    nep_in = nep_in_text(config, elements, engine, len(train_idx))
    write_training_file([structures[i] for i in train_idx], workdir / "train.xyz")
    if test_idx:
        write_training_file([structures[i] for i in test_idx], workdir / "test.xyz")
    else:
        (workdir / "test.xyz").unlink(missing_ok=True)
    inputs = _inputs_hash(workdir, nep_in, engine, bool(test_idx), config.initial_model)
    total = config.generation if engine == "gpumd" else config.neppo_steps(len(train_idx))

    state = _read_state(workdir)
    model = workdir / "nep.txt"
    if (state.get("inputs") == inputs and state.get("status") == "done" and model.is_file()
            and _sha256(model) == state.get("nep_sha256")):
        log.info("%s: finished model for these inputs found, not retraining", model)
        return model

    done = 0
    if state.get("inputs") == inputs and state.get("status") == "running":
        done = _resumable_steps(workdir, engine, elements)
    if done == 0:
        if state:
            log.info("%s: starting a new training run (inputs changed or nothing to resume)",
                     workdir)
        for name in OUTPUT_FILES:
            (workdir / name).unlink(missing_ok=True)
        state = {"inputs": inputs, "engine": engine, "status": "running",
                 "elements": elements, "n_train": len(train_idx), "n_test": len(test_idx),
                 "total_steps": total, "resumed_at": [], "seconds": 0.0,
                 "config": config.model_dump(mode="json")}
    else:
        log.info("%s: resuming the interrupted %s run at step %d of %d", workdir, engine,
                 done, total)
        state["resumed_at"] = [*state.get("resumed_at", []), done]
    atomic_write(workdir / "nep.in", lambda tmp: tmp.write_text(nep_in))
    write_json(workdir / STATE_FILE, state)

    start = time.perf_counter()
    if done < total:
        if engine == "neppo":
            _run_neppo(workdir, config, total, done)
        else:
            _run_gpumd(workdir, config, nep_in, total, done)
    seconds = state.get("seconds", 0.0) + time.perf_counter() - start
    atomic_write(workdir / "nep.in", lambda tmp: tmp.write_text(nep_in))  # GPUMD resume

    try:
        _check_model(model, elements, structures[train_idx[0]])
    except InputError as exc:  # e.g. a run that diverged to NaN
        raise RuntimeError(f"training in {workdir} produced an unusable model: {exc}") from None
    rows = read_loss(workdir / "loss.out")
    state.update(status="done", seconds=round(seconds, 2), nep_sha256=_sha256(model),
                 steps_done=int(rows[-1]["step"]) if rows else total,
                 last_report=rows[-1] if rows else None,
                 finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
    write_json(workdir / STATE_FILE, state)
    log.info("%s: trained in %.1f s (%s, %d steps)", model, seconds, engine, total)
    return model


def _with_initial_model(config: TrainConfig) -> TrainConfig:
    """``config`` with the species order of its ``initial_model``, checked to load."""
    from hardcarbon.forcefield.nep import nep_elements, nep_header

    path = config.initial_model
    if not path.is_file():
        raise InputError(f"initial model {path} does not exist: give a nep.txt to fine-tune")
    elements = nep_elements(path)
    if config.elements is not None and list(config.elements) != elements:
        raise InputError(f"elements {config.elements} differ from those of the initial model "
                         f"{path} ({elements}): leave elements unset to use the model's")
    if resolve_engine(config) != "neppo":
        raise InputError("fine-tuning an initial model needs engine neppo")
    header = nep_header(path)
    has_zbl = "zbl" in header
    if config.zbl is not None and not has_zbl:
        # neppo keeps the initial model's form: a ZBL core asked for here would be dropped
        raise InputError(f"the initial model {path} has no ZBL core and fine-tuning cannot "
                         "add one: leave zbl unset, or train from scratch with zbl")
    try:
        l_max = [int(v) for v in header["l_max"]]
        update = {"elements": elements,
                  "cutoff": tuple(float(v) for v in header["cutoff"][:2]),
                  "n_max": tuple(int(v) for v in header["n_max"]),
                  "basis_size": tuple(int(v) for v in header["basis_size"]),
                  "l_max": l_max[0], "four_body": len(l_max) > 1 and l_max[1] > 0,
                  "five_body": len(l_max) > 2 and l_max[2] > 0}
        width = int(header["ANN"][0])
        if has_zbl:  # GPUMD writes "zbl <inner> <outer> [typewise factor]"; nep.in takes
            update["zbl"] = float(header["zbl"][1])  # the outer cutoff and the factor
            typewise = header["zbl"][2:]
            update["zbl_typewise"] = float(typewise[0]) if typewise else None
    except (KeyError, IndexError, ValueError):
        raise InputError(f"cannot read the architecture of the initial model {path}: "
                         "give a nep4 nep.txt written by GPUMD or neppo") from None
    if "neuron" not in config.model_fields_set:
        update["neuron"] = width
    elif config.neuron < width:
        raise InputError(f"neuron {config.neuron} is fewer than the {width} of the initial "
                         f"model {path}: a fine-tune can widen a network, not narrow it")
    if config.zbl_typewise is not None and config.zbl_typewise != update.get("zbl_typewise"):
        # neppo keeps the initial model's ZBL form, so a different factor would be dropped
        raise InputError(f"the initial model {path} has typewise ZBL factor "
                         f"{update.get('zbl_typewise')}, not {config.zbl_typewise}: fine-tuning "
                         "keeps the model's ZBL form, so leave zbl_typewise unset")
    return config.model_copy(update=update)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _inputs_hash(workdir: Path, nep_in: str, engine: str, has_test: bool,
                 initial_model: Path | None = None) -> str:
    h = hashlib.sha256(f"{engine}\n{nep_in}".encode())
    if initial_model is not None:
        h.update(initial_model.read_bytes())
    for name in ("train.xyz", "test.xyz") if has_test else ("train.xyz",):
        h.update(name.encode())
        h.update((workdir / name).read_bytes())
    return h.hexdigest()


def _read_state(workdir: Path) -> dict[str, Any]:
    path = workdir / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _resumable_steps(workdir: Path, engine: str, elements: list[str]) -> int:
    """Steps (generations) an interrupted run finished that can be continued, 0 if none."""
    rows = read_loss(workdir / "loss.out")
    if not rows:
        return 0
    if engine == "gpumd":
        return int(rows[-1]["step"]) if (workdir / "nep.restart").is_file() else 0
    try:
        _check_model(workdir / "nep.txt", elements, None)
    except (InputError, RuntimeError) as exc:  # e.g. killed while writing nep.txt
        log.warning("cannot resume from %s (%s): training from scratch",
                    workdir / "nep.txt", exc)
        return 0
    return int(rows[-1]["step"])


def _check_model(path: Path, elements: list[str], atoms: Atoms | None) -> None:
    """Raise unless ``path`` loads in calorine and gives a finite energy."""
    from hardcarbon.forcefield.evaluation import load_nep

    calc = load_nep(path, elements)
    if atoms is not None:
        probe = bare_structure(atoms)
        probe.calc = calc
        if not np.isfinite(probe.get_potential_energy()):
            raise RuntimeError(f"the trained model {path} gives a non-finite energy")


def _run_neppo(workdir: Path, config: TrainConfig, total: int, done: int) -> None:
    import torch

    handler = logging.FileHandler(workdir / "neppo.log")
    handler.setFormatter(logging.Formatter("%(message)s"))
    neppo_log = logging.getLogger("neppo")
    level = neppo_log.level
    neppo_log.addHandler(handler)
    neppo_log.setLevel(logging.INFO)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        if done == 0 and config.initial_model is not None:
            from hardcarbon.forcefield.nep import widen_nep

            widen_nep(config.initial_model, config.neuron, workdir / "nep.txt", config.seed)
            _continue_neppo(workdir, config, total, 0)
        elif done == 0:
            from neppo.nep_in import run

            run(workdir, device=config.device)
        else:
            _continue_neppo(workdir, config, total, done)
    except (ValueError, NotImplementedError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"neppo rejected the training inputs in {workdir}: {message}") from None
    finally:
        torch.set_num_threads(threads)
        neppo_log.removeHandler(handler)
        neppo_log.setLevel(level)
        handler.close()


def _continue_neppo(workdir: Path, config: TrainConfig, total: int, done: int) -> None:
    """Train the model in ``workdir/nep.txt`` for the ``total - done`` remaining steps."""
    import ase.io
    import torch
    from neppo import StructureContainer, Trainer, read_model
    from neppo.nep_in import get_loss, read_nep_in
    from neppo.trainer import get_cosine_learning_rate

    settings = read_nep_in(workdir / "nep.in")
    model = read_model(workdir / "nep.txt")
    train = StructureContainer(model, ase.io.read(workdir / "train.xyz", index=":"))
    test = None
    if (workdir / "test.xyz").is_file():
        test = StructureContainer(model, ase.io.read(workdir / "test.xyz", index=":"))
    start = get_cosine_learning_rate(config.learning_rate, done, total)
    torch.manual_seed(config.seed + done)
    trainer = Trainer(model, get_loss(settings), train, test=test,
                      batch_size=config.batch_for("neppo"),
                      learning_rate=(start, config.learning_rate[1]),
                      weight_decay=config.weight_decay, device=config.device,
                      seed=config.seed + done, output_directory=workdir)
    trainer.train(steps=total - done, report_interval=config.output_interval)


def _run_gpumd(workdir: Path, config: TrainConfig, nep_in: str, total: int, done: int) -> None:
    if done:  # nep reads nep.restart by itself and counts generations from zero
        remaining = nep_in.replace(f"generation {total}\n", f"generation {total - done}\n")
        atomic_write(workdir / "nep.in", lambda tmp: tmp.write_text(remaining))
    command = shutil.which(config.nep_command) or config.nep_command
    with open(workdir / "nep.log", "a") as out:
        result = subprocess.run([command], cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
                                check=False)
    if result.returncode != 0 or not (workdir / "nep.txt").is_file():
        tail = (workdir / "nep.log").read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"GPUMD nep failed in {workdir} (exit status {result.returncode}): "
                           + " | ".join(tail))


def training_rmse(workdir: str | Path) -> dict[str, float]:
    """Last reported RMSEs of a run: ``energy_train`` (meV/atom), ``force_train`` (meV/Å), ...

    Read from ``loss.out``; the ``_test`` entries are present when the run had a test set.
    """
    rows = read_loss(Path(workdir) / "loss.out")
    if not rows:
        raise InputError(f"{workdir} has no loss.out: train a model there first")
    last = rows[-1]
    return {key.removeprefix("rmse_"): round(1000.0 * value, 3) for key, value in last.items()
            if key.startswith("rmse_") and key.split("_")[1] in ("energy", "force")}
