"""Reference labels (energy, forces, stress) for NEP training, one worker process per structure.

:func:`label_structures` runs a reference calculator (GPAW DFT by default, see
``docs/reference-labels.md``) on each structure in a worker process with BLAS/OpenMP pinned to
one thread, and writes every labelled structure, as soon as it is done, to its own extended-XYZ
file in ``folder``.  The file is named by a hash of the structure and of the settings that
change the numbers, so a rerun skips what is already labelled and an interrupted run loses
only the structures that were being computed.  A structure whose calculation fails (SCF not
converged, any exception, a worker killed) is recorded in ``folder/failed.jsonl`` and skipped.

Stored labels (units of ASE)::

    info['REF_energy']    eV, the force-consistent (free) energy, D3 included
    arrays['REF_forces']  eV/Å
    info['REF_stress']    eV/Å³, full 3×3 tensor flattened row by row (xx xy xz yx yy yz zx zy
                          zz), ASE sign (positive = tensile); only where the calculator gives
                          a stress and the cell is periodic in all directions; never with GPAW
                          LCAO, which has no stress
                          (GPAW plane waves: with the Pulay stress when ``gpaw.dedecut`` is
                          set, :func:`pulay_stress`)
    info['REF_method']    the method, e.g. "GPAW 26.7.0 PBE LCAO(dzp) ... + D3(BJ) w/o Na-Na"
    info['d3_energy']     eV, the D3 part of REF_energy (0 when D3 is off)

:func:`write_training_file` turns these into GPUMD's ``train.xyz`` (``energy=``,
``forces:R:3``, ``stress=`` with nine components in eV/Å³, which GPUMD converts to the virial
as −stress × volume), written by calorine's :func:`calorine.nep.io.write_structures`.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import importlib
import importlib.util
import inspect
import json
import logging
import os
import re
import time
import traceback
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.data import chemical_symbols
from ase.stress import full_3x3_to_voigt_6_stress
from pydantic import ConfigDict, Field, field_validator, model_validator

from hardcarbon.errors import InputError
from hardcarbon.executors import (
    ExecutorConfig,
    completed,
    failure_reason,
    local_pool,
    open_executor,
    pin_threads,
)
from hardcarbon.settings import NameOrFile, Settings
from hardcarbon.storage import atomic_write, bare_structure, read_structure, write_structure

log = logging.getLogger(__name__)

#: Calculator names :class:`LabelConfig` accepts besides ``"module:factory"``.
CALCULATORS: tuple[str, ...] = ("gpaw", "sevenn", "vasp", "emt")

#: File in the label folder that lists the structures whose calculation failed.
FAILED_FILE = "failed.jsonl"

_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_AXES = "xyz"
# info keys that ASE's extxyz reader would turn into calculator results
_RESULT_KEYS = {"energy", "free_energy", "forces", "stress", "virial", "magmom", "magmoms",
                "dipole", "charges"}

_INSTALL = {
    "gpaw": "GPAW is not installed: run scripts/install-dft.sh then pip install '.[dft]'",
    "dftd3": "dftd3 (DFT-D3) is not installed: run scripts/install-dft.sh or "
             "pip install '.[dft]'",
    "sevenn": "SevenNet is not installed: pip install sevenn (pre-training/sampling only, "
              "not reference quality)",
    "vasp": "VASP is not set up: set ASE_VASP_COMMAND (or VASP_COMMAND) and VASP_PP_PATH "
            "as described in ase.calculators.vasp",
}


# --------------------------------------------------------------------------------------------
# configuration


class _Options(Settings):
    model_config = ConfigDict(frozen=True)


class GPAWOptions(_Options):
    """GPAW settings; defaults from docs/reference-labels.md."""

    mode: Literal["lcao", "pw"] = Field(
        "lcao", description="'lcao' (energy + forces) or 'pw' (plane waves, + stress)")
    basis: str = Field("dzp", description="LCAO basis set (lcao mode)")
    h: float = Field(0.2, gt=0.05, le=0.3, description="real-space grid spacing (Å), lcao mode")
    ecut: float = Field(600.0, ge=200, le=2000, description="plane-wave cutoff (eV), pw mode")
    kpoint_spacing: float = Field(
        0.25, gt=0, description="largest k-point spacing (Å⁻¹, 2π included), Γ-centred mesh")
    vacuum_gap: float = Field(
        5.0, gt=0, description="a periodic direction with an empty slab thicker than this (Å) "
                               "gets a single k-point")
    smearing: float = Field(0.1, ge=0, description="Fermi–Dirac width (eV)")
    xc: Literal["PBE"] = "PBE"
    spinpol: bool = Field(False, description="spin-polarised; a structure without initial "
                                             "magnetic moments starts at 1 μB per atom")
    maxiter: int = Field(333, ge=10, description="SCF iterations before giving up")
    d3: bool = Field(True, description="add DFT-D3(BJ) with PBE parameters (dftd3 package)")
    dedecut: dict[str, float] = Field(
        default_factory=dict,
        description="pw mode: dE/dEcut per atom of each element at ecut (eV per eV), for the "
                    "Pulay stress that GPAW's plane-wave stress leaves out; {}: none")

    @field_validator("dedecut")
    @classmethod
    def _dedecut(cls, dedecut: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(dedecut) - set(chemical_symbols[1:]))
        if unknown:
            raise ValueError(f"dedecut names unknown elements {unknown}: use chemical symbols")
        return dedecut

    @model_validator(mode="after")
    def _dedecut_needs_pw(self) -> GPAWOptions:
        if self.dedecut and self.mode != "pw":
            raise ValueError("dedecut is for plane waves (LCAO has no stress): set mode: pw or "
                             "drop dedecut")
        return self


class SevenNetOptions(_Options):
    """SevenNet universal potential (pre-training and sampling only)."""

    model: NameOrFile = Field("7net-0", description="SevenNet model name or checkpoint path")
    device: str = "cpu"
    d3: bool = Field(True, description="add DFT-D3(BJ) with PBE parameters (dftd3 package)")


class LabelConfig(Settings):
    """How :func:`label_structures` labels structures.

    ``calculator`` is ``"gpaw"``, ``"sevenn"``, ``"vasp"``, ``"emt"`` (ASE's toy EMT, for
    tests) or ``"module:factory"``: any importable callable that returns an ASE calculator;
    it is called as ``factory(**factory_kwargs)``, with ``atoms=`` added when it has a
    parameter of that name.  Invalid options raise :class:`InputError`.
    """

    model_config = ConfigDict(frozen=True)

    calculator: str = Field("gpaw", description="gpaw, sevenn, vasp, emt or module:factory")
    gpaw: GPAWOptions = Field(default_factory=GPAWOptions)
    sevenn: SevenNetOptions = Field(default_factory=SevenNetOptions)
    vasp: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of ase.calculators.vasp.Vasp")
    factory_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of a module:factory calculator")
    d3_exclude_pairs: list[str] = Field(
        default_factory=lambda: ["Na-Na"],
        description="element pairs left out of D3; D3 over-binds Na metal (bcc a0 4.20 -> "
                    "4.07 Å), so Na-Na pairs get plain PBE")
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1,
                         description="parallel worker processes")
    executor: ExecutorConfig = Field(
        default_factory=ExecutorConfig,
        description="where the structures run: local processes (workers) or a Dask cluster")
    method: str | None = Field(
        None, description="method stored in info['REF_method']; derived from the settings "
                          "when not given")

    @field_validator("calculator")
    @classmethod
    def _known_calculator(cls, name: str) -> str:
        if name.lower() in CALCULATORS:
            return name.lower()
        if _FACTORY.match(name):
            return name
        raise ValueError(f"unknown calculator '{name}': use one of {', '.join(CALCULATORS)} "
                         "or 'module:factory' naming a function that returns an ASE calculator")

    @field_validator("d3_exclude_pairs")
    @classmethod
    def _pairs(cls, pairs: list[str]) -> list[str]:
        out = []
        for pair in pairs:
            parts = pair.split("-")
            if len(parts) != 2 or not all(p in chemical_symbols[1:] for p in parts):
                raise ValueError(f"'{pair}' is not an element pair: write pairs as 'Na-Na'")
            out.append("-".join(sorted(parts)))
        return sorted(set(out))

    @property
    def d3(self) -> bool:
        """Whether D3(BJ) is added to the calculator's results."""
        if self.calculator == "gpaw":
            return self.gpaw.d3
        if self.calculator == "sevenn":
            return self.sevenn.d3
        return False

    def settings(self) -> dict[str, Any]:
        """What changes the labels, hashed into file names (not ``workers`` nor ``method``)."""
        settings: dict[str, Any] = {"calculator": self.calculator}
        if self.calculator == "gpaw":  # without dedecut when unset: older label files keep
            settings["gpaw"] = self.gpaw.model_dump(  # their names
                exclude=None if self.gpaw.dedecut else {"dedecut"})
        elif self.calculator == "sevenn":
            settings["sevenn"] = self.sevenn.model_dump()
        elif self.calculator == "vasp":
            settings["vasp"] = self.vasp
        elif ":" in self.calculator:
            settings["factory_kwargs"] = self.factory_kwargs
        if self.d3:
            settings["d3"] = {"damping": "bj", "functional": "pbe", "atm": False,
                              "exclude_pairs": self.d3_exclude_pairs}
        return settings


def check_calculator(config: LabelConfig) -> None:
    """Raise a one-line :class:`InputError` when the configured calculator cannot run here."""
    name = config.calculator
    if name == "gpaw" and not _importable("gpaw"):
        raise InputError(_INSTALL["gpaw"])
    if name == "sevenn" and not _importable("sevenn"):
        raise InputError(_INSTALL["sevenn"])
    if name == "vasp" and not (
            any(os.environ.get(v) for v in ("ASE_VASP_COMMAND", "VASP_COMMAND", "VASP_SCRIPT"))
            and os.environ.get("VASP_PP_PATH")):
        raise InputError(_INSTALL["vasp"])
    if ":" in name:
        _factory(name)
    if config.d3 and not _importable("dftd3"):
        raise InputError(_INSTALL["dftd3"])


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _factory(name: str) -> Callable[..., Any]:
    module_name, attr = name.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"calculator '{name}': cannot import {module_name} ({exc}): "
                         "install it or fix the module name") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise InputError(f"calculator '{name}': {module_name} has no callable {attr}")
    return factory


# --------------------------------------------------------------------------------------------
# k-points and file names


def kpoint_mesh(atoms: Atoms, spacing: float, vacuum_gap: float = 5.0) -> tuple[int, int, int]:
    """Γ-centred mesh with at most ``spacing`` Å⁻¹ (2π included) between k-points.

    Non-periodic directions, directions named in ``atoms.info['vacuum_axes']`` (as written by
    :mod:`hardcarbon.forcefield.families`) and periodic directions crossed by an empty slab
    thicker than ``vacuum_gap`` Å get one k-point.
    """
    recip = 2 * np.pi * np.linalg.norm(atoms.cell.reciprocal(), axis=1)
    mesh = [max(1, int(np.ceil(b / spacing - 1e-9))) for b in recip]
    vacuum_axes = atoms.info.get("vacuum_axes")
    for axis in range(3):
        if (not atoms.pbc[axis]
                or (isinstance(vacuum_axes, str) and _AXES[axis] in vacuum_axes)
                or vacuum_thickness(atoms, axis) > vacuum_gap):
            mesh[axis] = 1
    return tuple(mesh)


def own_kpoint_mesh(atoms: Atoms) -> tuple[int, int, int] | None:
    """The mesh fixed in ``atoms.info['kpts']`` (three integers), or None when it has none.

    A scan's points share one mesh: with a mesh per cell, bcc Na at 0.25 Å⁻¹ steps from 7³ to
    6³ k-points between 4.1 and 4.2 Å, and its energy by 4.8 meV/atom, right at the minimum.
    """
    if "kpts" not in atoms.info:
        return None
    mesh = tuple(int(k) for k in np.ravel(atoms.info["kpts"]))
    if len(mesh) != 3 or min(mesh) < 1:
        raise InputError(f"info['kpts'] must be three positive integers, got "
                         f"{atoms.info['kpts']!r}")
    return mesh


def vacuum_thickness(atoms: Atoms, axis: int) -> float:
    """Thickness (Å) of the thickest atom-free slab parallel to the other two cell vectors."""
    if len(atoms) == 0:
        return float("inf")
    frac = np.sort(atoms.get_scaled_positions(wrap=True)[:, axis])
    gaps = np.diff(np.concatenate([frac, [frac[0] + 1.0]]))
    plane_distance = 1.0 / np.linalg.norm(atoms.cell.reciprocal()[axis])
    return float(gaps.max() * plane_distance)


def structure_hash(atoms: Atoms, config: LabelConfig) -> str:
    """Stable hash of numbers, positions, cell, pbc, magnetic moments and label settings."""
    h = hashlib.sha256()
    h.update(np.asarray(atoms.numbers, dtype="<i8").tobytes())
    for array in (atoms.positions, atoms.cell[:]):
        h.update((np.round(np.asarray(array, dtype=float), 6) + 0.0).astype("<f8").tobytes())
    h.update(np.asarray(atoms.pbc, dtype="u1").tobytes())
    magmoms = atoms.get_initial_magnetic_moments()
    if np.any(magmoms):
        h.update((np.round(magmoms, 6) + 0.0).astype("<f8").tobytes())
    h.update(json.dumps(config.settings(), sort_keys=True, default=str).encode())
    mesh = own_kpoint_mesh(atoms)
    if mesh is not None:  # after the settings, so that files without a mesh keep their names
        h.update(np.asarray(mesh, dtype="<i8").tobytes())
    return h.hexdigest()


def label_filename(atoms: Atoms, config: LabelConfig) -> str:
    """``<formula>-<hash>.xyz``, the file that holds the labels of ``atoms``."""
    return f"{atoms.get_chemical_formula(mode='hill')}-{structure_hash(atoms, config)[:20]}.xyz"


# --------------------------------------------------------------------------------------------
# DFT-D3


def d3_correction(atoms: Atoms, exclude_pairs: Iterable[str] = ("Na-Na",),
                  functional: str = "pbe", stress: bool = True
                  ) -> tuple[float, np.ndarray, np.ndarray | None]:
    """DFT-D3(BJ) two-body energy (eV), forces (eV/Å) and stress (eV/Å³, 3×3 or None).

    Pairs in ``exclude_pairs`` (e.g. ``"Na-Na"``) are left out exactly: the dftd3 library's
    ghost atoms give the sum over pairs within a set of elements, with coordination numbers
    from the whole structure, and inclusion–exclusion over these sums removes the pairs.
    This holds for the two-body term only, which is why the three-body (ATM) term is off,
    as in Grimme's original D3(BJ).
    """
    from ase.units import Bohr, Hartree
    from dftd3.interface import DispersionModel, RationalDampingParam

    param = RationalDampingParam(method=functional, atm=False)
    periodic = bool(atoms.pbc.any())
    want_stress = stress and bool(atoms.pbc.all())

    def evaluate(keep: set[str] | None) -> tuple[float, np.ndarray, np.ndarray]:
        model = DispersionModel(atoms.numbers, atoms.positions / Bohr,
                                atoms.cell[:] / Bohr if periodic else None,
                                atoms.pbc if periodic else None)
        if keep is not None:
            symbols = np.array(atoms.get_chemical_symbols())
            ghosts = np.flatnonzero(~np.isin(symbols, sorted(keep)))
            if len(ghosts) == len(atoms):
                return 0.0, np.zeros((len(atoms), 3)), np.zeros((3, 3))
            model.set_ghost_atoms(ghosts)
        res = model.get_dispersion(param, grad=True)
        return float(res["energy"]), np.array(res["gradient"]), np.array(res["virial"])

    present = set(atoms.get_chemical_symbols())
    terms: list[tuple[float, set[str] | None]] = [(1.0, None)]
    for pair in exclude_pairs:
        a, b = pair.split("-")
        if not {a, b} <= present:
            continue
        if a == b:
            terms.append((-1.0, {a}))
        else:
            terms += [(-1.0, {a, b}), (1.0, {a}), (1.0, {b})]
    energy, gradient, virial = 0.0, np.zeros((len(atoms), 3)), np.zeros((3, 3))
    for weight, keep in terms:
        e, g, v = evaluate(keep)
        energy += weight * e
        gradient += weight * g
        virial += weight * v
    sigma = virial * Hartree / atoms.get_volume() if want_stress else None
    return energy * Hartree, -gradient * Hartree / Bohr, sigma


class D3Pairs(Calculator):
    """DFT-D3(BJ) two-body dispersion as an ASE calculator, excluding element pairs.

    Adds to a reference calculator through :class:`ase.calculators.mixing.SumCalculator`
    (see :func:`reference_calculator`); the numbers come from :func:`d3_correction`.
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, exclude_pairs: Iterable[str] = ("Na-Na",)) -> None:
        super().__init__()
        self.exclude_pairs = tuple(exclude_pairs)

    def calculate(self, atoms: Atoms | None = None, properties: Any = ("energy",),
                  system_changes: Any = all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        want_stress = "stress" in properties and bool(self.atoms.pbc.all())
        energy, forces, stress = d3_correction(self.atoms, self.exclude_pairs,
                                               stress=want_stress)
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}
        if stress is not None:
            self.results["stress"] = full_3x3_to_voigt_6_stress(stress)


def pulay_stress(atoms: Atoms, ecut: float, dedecut: dict[str, float]) -> np.ndarray:
    """The Pulay stress of a plane-wave calculation at cutoff ``ecut`` (eV): 3×3, eV/Å³.

    σ_P = (2/3) E_cut (dE/dE_cut) / V on the diagonal, with dE/dE_cut the sum over the atoms of
    ``dedecut`` (eV per eV, per atom of each element; negative: more plane waves lower the
    energy).  It is the stress of the basis set growing with the cell at a fixed cutoff, which
    a stress taken at a fixed set of plane waves leaves out; with it, the stress agrees with
    the slope of the energy along a scan of the cell at that cutoff.
    """
    missing = sorted(set(atoms.get_chemical_symbols()) - set(dedecut))
    if missing:
        raise InputError(f"no dE/dEcut for {', '.join(missing)}: add it to gpaw.dedecut")
    total = sum(dedecut[symbol] for symbol in atoms.get_chemical_symbols())
    return np.eye(3) * (2.0 / 3.0) * ecut * total / atoms.get_volume()


class PulayStress(Calculator):
    """:func:`pulay_stress` as an ASE calculator (no energy, no forces), added to GPAW.

    GPAW's plane-wave code (26.7, ``gpaw/new``) accepts ``PW(dedecut=...)`` but does not use
    it, so the term is added here.
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, ecut: float, dedecut: dict[str, float]) -> None:
        super().__init__()
        self.ecut = ecut
        self.dedecut = dict(dedecut)

    def calculate(self, atoms: Atoms | None = None, properties: Any = ("energy",),
                  system_changes: Any = all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        self.results = {"energy": 0.0, "free_energy": 0.0,
                        "forces": np.zeros((len(self.atoms), 3))}
        if "stress" in properties:
            self.results["stress"] = full_3x3_to_voigt_6_stress(
                pulay_stress(self.atoms, self.ecut, self.dedecut))


def measure_dedecut(atoms: Atoms, config: LabelConfig, step: float = 12.5) -> float:
    """dE/dEcut per atom (eV per eV) of ``atoms`` at ``config.gpaw.ecut``, for ``gpaw.dedecut``.

    A central difference of GPAW energies at ecut ± ``step`` (eV) with the label settings
    (D3 has no cutoff).  The energy is a staircase in the cutoff, so use a bulk cell of a
    dozen atoms or more and a step of 10 eV or more.
    """
    options = config.gpaw.model_copy(update={"mode": "pw", "d3": False, "dedecut": {}})
    energies = []
    for ecut in (options.ecut - step, options.ecut + step):
        at_ecut = config.model_copy(update={"calculator": "gpaw",
                                            "gpaw": options.model_copy(update={"ecut": ecut})})
        work = _plain_copy(atoms)
        work.calc, _ = _make_calculator(at_ecut, work, Path(os.devnull))
        energies.append(work.get_potential_energy())
    return (energies[1] - energies[0]) / (2 * step) / len(atoms)


PULAY_TAG = " + Pulay stress"


def add_pulay_stress(structures: Iterable[Atoms], ecut: float, dedecut: dict[str, float]
                     ) -> list[Atoms]:
    """Copies of plane-wave labels with :func:`pulay_stress` added to ``REF_stress``.

    For labels made before ``gpaw.dedecut`` existed.  ``REF_method`` gains
    ``" + Pulay stress"``; a structure that has it already, or has no stress, is copied as is.
    """
    out = []
    for atoms in structures:
        atoms = atoms.copy()
        method = str(atoms.info.get("REF_method", ""))
        if "REF_stress" in atoms.info and PULAY_TAG not in method:
            stress = np.reshape(atoms.info["REF_stress"], (3, 3))
            atoms.info["REF_stress"] = (stress + pulay_stress(atoms, ecut, dedecut)).reshape(9)
            atoms.info["REF_method"] = method + PULAY_TAG
        out.append(atoms)
    return out


def reference_calculator(config: LabelConfig, atoms: Atoms, log_path: str | Path
                         ) -> tuple[Any, str]:
    """The ASE calculator that labels ``atoms`` under ``config``, D3 included; and its method.

    GPAW's k-point mesh depends on the cell, so build one calculator per structure (or per
    cell shape).  ``log_path`` receives GPAW's text output (VASP runs in a folder named
    after it).  This is what :func:`label_one` evaluates, and what validation relaxes with.
    """
    from ase.calculators.mixing import SumCalculator

    calc, method = _make_calculator(config, atoms, Path(log_path))
    parts = [calc]
    if config.d3:  # second, where label_one reads its energy
        pairs = ",".join(config.d3_exclude_pairs)
        method += f" + D3(BJ) w/o {pairs}" if pairs else " + D3(BJ)"
        parts.append(D3Pairs(config.d3_exclude_pairs))
    if config.calculator == "gpaw" and config.gpaw.mode == "pw" and config.gpaw.dedecut:
        method += PULAY_TAG
        parts.append(PulayStress(config.gpaw.ecut, config.gpaw.dedecut))
    calc = SumCalculator(parts) if len(parts) > 1 else calc
    return calc, config.method or method


# --------------------------------------------------------------------------------------------
# worker side

_SEVENNET: dict[tuple[str, str], tuple[Any, str]] = {}


def _make_calculator(config: LabelConfig, atoms: Atoms, log_path: Path) -> tuple[Any, str]:
    """The ASE calculator for ``atoms`` and a description of the method (a spin-polarised GPAW
    run gives ``atoms`` initial moments of 1 μB each where it has none)."""
    name = config.calculator
    if name == "gpaw":
        import gpaw
        from gpaw import GPAW

        o = config.gpaw
        if o.spinpol and not np.any(atoms.get_initial_magnetic_moments()):
            # GPAW keeps a spin-polarised run that starts without moments non-magnetic; start
            # from 1 μB per atom, VASP's MAGMOM default, unless the structure sets its own
            atoms.set_initial_magnetic_moments(np.ones(len(atoms)))
        # a structure may carry its own mesh (a scan keeps one mesh for all its points)
        own = own_kpoint_mesh(atoms)
        mesh = own or kpoint_mesh(atoms, o.kpoint_spacing, o.vacuum_gap)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = dict(
            xc=o.xc, kpts={"size": mesh, "gamma": True}, spinpol=o.spinpol, maxiter=o.maxiter,
            occupations={"name": "fermi-dirac", "width": o.smearing}, txt=str(log_path))
        if o.mode == "lcao":
            kwargs.update(mode="lcao", basis=o.basis, h=o.h)
            desc = f"LCAO({o.basis}) h={o.h}"
        else:
            kwargs.update(mode={"name": "pw", "ecut": o.ecut})
            desc = f"PW {o.ecut:g} eV"
        kpoints = ("k-mesh " + "x".join(map(str, own)) if own
                   else f"k-spacing {o.kpoint_spacing:g}/Å")
        method = f"GPAW {gpaw.__version__} {o.xc} {desc} {kpoints} FD {o.smearing:g} eV"
        return GPAW(**kwargs), method
    if name == "sevenn":
        return _sevennet(config.sevenn)
    if name == "vasp":
        from ase.calculators.vasp import Vasp

        directory = log_path.parent / log_path.stem
        keys = " ".join(f"{k}={v}" for k, v in sorted(config.vasp.items()))
        return Vasp(directory=str(directory), **config.vasp), f"VASP {keys}".strip()
    if name == "emt":
        from ase.calculators.emt import EMT

        return EMT(), "ASE EMT"
    factory = _factory(name)
    kwargs = dict(config.factory_kwargs)
    try:
        takes_atoms = "atoms" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes_atoms = False
    if takes_atoms:
        kwargs["atoms"] = atoms
    return factory(**kwargs), name


def _sevennet(options: SevenNetOptions) -> tuple[Any, str]:
    """SevenNet calculator, built once per worker process and model (building takes ~1 s)."""
    key = (options.model, options.device)
    if key not in _SEVENNET:
        import sevenn
        from sevenn.calculator import SevenNetCalculator

        with warnings.catch_warnings():  # no cuEquivariance/FlashTP on the CPU: expected
            warnings.filterwarnings("ignore", message="No tensor product accelerator")
            calc = SevenNetCalculator(model=options.model, device=options.device)
        _SEVENNET[key] = (calc, f"SevenNet {sevenn.__version__} {options.model}")
    calc, method = _SEVENNET[key]
    calc.reset()  # no results of the previous structure
    return calc, method


def _stress_expected(config: LabelConfig, atoms: Atoms) -> bool:
    if not atoms.pbc.all():
        return False
    return not (config.calculator == "gpaw" and config.gpaw.mode == "lcao")


def _plain_copy(atoms: Atoms) -> Atoms:
    """Numbers, positions, cell, pbc, magnetic moments and simple info (e.g. config_type)."""
    out = bare_structure(atoms)
    magmoms = atoms.get_initial_magnetic_moments()
    if np.any(magmoms):
        out.set_initial_magnetic_moments(magmoms)
    mesh = own_kpoint_mesh(atoms)
    if mesh is not None:
        out.info["kpts"] = np.array(mesh)
    for key, value in atoms.info.items():
        if (key.startswith("REF_") or key in _RESULT_KEYS or key == "d3_energy"
                or not isinstance(value, str | int | float | bool | np.number)):
            continue
        out.info[key] = value
    return out


def label_one(atoms: Atoms, config: LabelConfig, path: str | Path) -> dict[str, Any]:
    """Label one structure and write it to ``path`` (atomically); never raises.

    Returns ``{"status": "ok" | "failed", "reason": ..., "seconds": ...}``.  This is the task
    that :func:`label_structures` submits; it pins threads itself so that it also runs well on
    executors without an initializer (Dask).
    """
    start = time.perf_counter()
    path = Path(path)
    try:
        pin_threads()
        work = _plain_copy(atoms)
        calc, method = reference_calculator(config, work,
                                            path.parent / "logs" / f"{path.stem}.txt")
        work.calc = calc
        try:
            energy = work.get_potential_energy(force_consistent=True)
        except PropertyNotImplementedError:  # calculators without a free energy
            energy = work.get_potential_energy()
        forces = np.array(work.get_forces())
        stress = None
        if _stress_expected(config, work):
            try:
                stress = work.get_stress(voigt=False)
            except PropertyNotImplementedError:
                stress = None
        d3_energy = 0.0
        if config.d3:  # the dispersion part, recorded separately
            d3_energy = float(calc.mixer.calcs[1].results["energy"])
        if not (np.isfinite(energy) and np.isfinite(forces).all()
                and (stress is None or np.isfinite(stress).all())):
            raise FloatingPointError("the calculator returned NaN or infinite values")
        work.calc = None
        work.info["REF_energy"] = energy
        work.arrays["REF_forces"] = forces
        if stress is not None:
            work.info["REF_stress"] = np.asarray(stress, dtype=float).reshape(9)
        work.info["REF_method"] = method
        work.info["d3_energy"] = d3_energy
        write_structure(path, work)
    except Exception as exc:  # a label run must survive any failure of one structure
        return {"status": "failed", "reason": failure_reason(exc),
                "seconds": time.perf_counter() - start,
                "traceback": traceback.format_exc(limit=-3)}
    return {"status": "ok", "seconds": time.perf_counter() - start}


# --------------------------------------------------------------------------------------------
# driver


@dataclass(eq=False)
class _Job:
    index: int
    atoms: Atoms
    path: Path
    suspect: bool = False  # was running when a worker process died


def label_structures(structures: Sequence[Atoms], config: LabelConfig | None = None,
                     folder: str | Path = "labels", *, executor: Any = None,
                     skip_failed: bool = False) -> list[Atoms]:
    """Label ``structures`` into ``folder``; return the labelled ones, in input order.

    Each structure runs as :func:`label_one` in a worker: by default a
    :class:`~concurrent.futures.ProcessPoolExecutor` (``spawn``) with ``config.workers``
    processes, each pinned to one BLAS/OpenMP thread; with ``config.executor`` on a Dask
    scheduler or a batch system (:mod:`hardcarbon.executors`) there.  Any object with
    ``submit(fn, *args)`` returning a future with ``result()`` can be given as ``executor``,
    e.g. a ``dask.distributed.Client`` (workers with one thread each, ``folder`` on a shared
    file system); it is not shut down here.

    Structures whose file already exists are not recomputed.  Failures are appended to
    ``folder/failed.jsonl`` and left out of the result; ``skip_failed=True`` also skips the
    structures listed there on a rerun (by default they are tried again).  When a worker
    process dies (e.g. killed for memory), the structures it may have been running are
    rerun one at a time, so only the culprit is recorded as failed.
    """
    config = config or LabelConfig()
    check_calculator(config)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    failed_before = _failed_names(folder) if skip_failed else set()

    paths: list[Path] = []
    todo: dict[Path, _Job] = {}
    for i, atoms in enumerate(structures):
        if not isinstance(atoms, Atoms) or len(atoms) == 0:
            raise InputError(f"structure {i} is not a non-empty ase.Atoms")
        path = folder / label_filename(atoms, config)
        paths.append(path)
        if not path.exists() and path.name not in failed_before and path not in todo:
            todo[path] = _Job(i, atoms, path)
    log.info("labelling %d of %d structures in %s (%d already done)", len(todo),
             len(structures), folder, len(structures) - len(todo))

    jobs = list(todo.values())
    if jobs and executor is None and config.executor.kind == "local":
        _run_own_pool(jobs, config, folder)  # recovers from dead workers
    elif jobs and executor is None:
        with open_executor(config.executor, config.workers) as where:
            _run_external(jobs, config, folder, where)
    elif jobs:
        _run_external(jobs, config, folder, executor)

    return [read_structure(path) for path in paths if path.exists()]


def _record(job: _Job, result: dict[str, Any], config: LabelConfig, folder: Path) -> None:
    if result.get("status") == "ok":
        log.info("labelled %s in %.1f s", job.path.name, result.get("seconds", 0.0))
        return
    entry = {
        "file": job.path.name, "index": job.index,
        "formula": job.atoms.get_chemical_formula(mode="hill"),
        "config_type": job.atoms.info.get("config_type"), "calculator": config.calculator,
        "reason": result.get("reason", "unknown"), "seconds": round(result.get("seconds", 0), 2),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    log.warning("labelling structure %d (%s) failed: %s", job.index, job.path.name,
                entry["reason"])
    with open(folder / FAILED_FILE, "a") as fh:
        fh.write(json.dumps(entry, default=str) + "\n")


def _failed_names(folder: Path) -> set[str]:
    names = set()
    failed = folder / FAILED_FILE
    if failed.is_file():
        for line in failed.read_text().splitlines():
            try:
                names.add(json.loads(line)["file"])
            except (ValueError, KeyError, TypeError):
                continue
    return names


def _run_own_pool(jobs: list[_Job], config: LabelConfig, folder: Path) -> None:
    """At most ``workers`` structures in flight, so a dead worker affects only those.

    When a worker dies, every structure then in flight is a suspect; suspects are rerun one
    at a time in a fresh pool, and one that kills its worker while running alone is recorded
    as failed.
    """
    queue = deque(jobs)
    workers = min(config.workers, len(jobs))
    pool = local_pool(workers)
    running: dict[cf.Future, _Job] = {}
    try:
        while queue or running:
            while queue and len(running) < workers:
                if running and (queue[0].suspect
                                or any(j.suspect for j in running.values())):
                    break  # a suspect runs alone
                job = queue.popleft()
                running[pool.submit(label_one, job.atoms, config, job.path)] = job
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                done, _ = cf.wait(running)  # the others end too, with a result or broken
            crashed = []
            for future in done:
                job = running.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    crashed.append(job)
                    continue
                except Exception as exc:  # e.g. a structure that cannot be pickled
                    result = {"status": "failed", "reason": failure_reason(exc)}
                _record(job, result, config, folder)
            if not crashed:
                continue
            pool.shutdown(wait=True, cancel_futures=True)
            pool = local_pool(workers)
            if len(crashed) == 1:
                _record(crashed[0], {"status": "failed", "reason": (
                    "worker process died (killed for memory, or a crash in compiled code); "
                    f"see logs/{crashed[0].path.stem}.txt for GPAW")}, config, folder)
            else:
                for job in crashed:
                    job.suspect = True
                queue.extendleft(reversed(crashed))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_external(jobs: list[_Job], config: LabelConfig, folder: Path, where: Any) -> None:
    for job, future in completed(label_one, {job: (job.atoms, config, job.path)
                                             for job in jobs}, where):
        try:
            result = future.result()
        except Exception as exc:  # e.g. dask's KilledWorker
            result = {"status": "failed", "reason": failure_reason(exc)}
        _record(job, result, config, folder)


# --------------------------------------------------------------------------------------------
# collecting


def collect_labels(folder: str | Path) -> list[Atoms]:
    """All labelled structures in ``folder``, sorted by file name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"label folder {folder} does not exist: run label_structures first")
    return [read_structure(path) for path in sorted(folder.glob("*.xyz"))]


def write_training_file(structures: Sequence[Atoms], path: str | Path) -> Path:
    """Write GPUMD's ``train.xyz``/``test.xyz`` from labelled structures, atomically.

    Energies, forces and (where present) stresses become ASE calculator results and are
    written by calorine's ``write_structures``: ``energy=``, ``forces:R:3`` and
    ``stress=`` (9 components, eV/Å³, ASE sign), plus ``config_type``, ``weight`` and
    ``energy_weight`` when set.
    """
    from ase.calculators.singlepoint import SinglePointCalculator
    from calorine.nep.io import write_structures

    out = []
    for i, atoms in enumerate(structures):
        if "REF_energy" not in atoms.info or "REF_forces" not in atoms.arrays:
            raise InputError(f"structure {i} ({atoms.get_chemical_formula()}) has no "
                             "REF_energy/REF_forces: label it with label_structures first")
        copy = bare_structure(atoms, info=("config_type", "weight", "energy_weight"))
        results: dict[str, Any] = {"energy": float(atoms.info["REF_energy"]),
                                   "forces": np.asarray(atoms.arrays["REF_forces"])}
        if "REF_stress" in atoms.info:
            sigma = np.asarray(atoms.info["REF_stress"], dtype=float).reshape(-1)
            results["stress"] = (sigma.reshape(3, 3)[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
                                 if sigma.size == 9 else sigma)
        copy.calc = SinglePointCalculator(copy, **results)
        out.append(copy)

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Failed to retrieve stresses")
            write_structures(str(tmp), out)

    return atomic_write(path, write)
