"""Validation of a force field against its reference: physical checks and relaxed structures.

Two comparisons of section 2.1 of the study, each run the same way for the model and for the
reference method (any :class:`~hardcarbon.forcefield.labelling.LabelConfig`: GPAW PBE + D3,
SevenNet + D3, ...), so that the numbers sit side by side:

* :func:`physical_checks`: the bcc Na lattice constant and chemical potential; the AB graphite
  interlayer spacing; Na above pristine graphene, a monovacancy and a divacancy, relative to
  bcc Na; the formation energies of stage-1 NaC6 and NaC8 (AA-stacked) relative to graphite
  and bcc Na.  Each is the minimum of a rigid scan (lattice constant, interlayer spacing or Na
  height; carbon sheets held at a = 2.46 Å), located by a parabola through the lowest points.
  Rigid scans keep the reference cost to single points, which GPAW affords on 2 cores.
* :func:`relax_comparison` (Table 1): the same starting structures relaxed with each method;
  energy per atom at each method's own minimum, relative error and positional RMSD.

Energies are in eV, lengths in Å.  A "factory" is a callable that returns an ASE calculator
for a given structure, since GPAW's k-point mesh depends on the cell.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.build import bulk, graphene, make_supercell
from ase.calculators.calculator import PropertyNotImplementedError
from ase.optimize import BFGS
from pydantic import Field, field_validator

from hardcarbon.errors import InputError
from hardcarbon.executors import completed, failure_reason, open_executor, pin_threads
from hardcarbon.forcefield.labelling import LabelConfig, kpoint_mesh, own_kpoint_mesh
from hardcarbon.settings import Settings, check_pattern
from hardcarbon.storage import atomic_write, bare_structure, structure_key, write_json

CalculatorFactory = Callable[[Atoms], Any]

#: In-plane lattice constant of the carbon sheets of the scans (Å).
GRAPHENE_A = 2.46


def nep_factory(model: str | Path) -> CalculatorFactory:
    """Factory of calorine CPUNEP calculators for the nep.txt ``model`` (one, reused)."""
    from hardcarbon.forcefield.nep import nep_calculator

    calc = nep_calculator(model, {"C", "Na"})
    return lambda atoms: calc


def reference_factory(config: Any, log_dir: str | Path) -> CalculatorFactory:
    """Factory of reference calculators of a ``LabelConfig``; GPAW logs go to ``log_dir``."""
    from hardcarbon.forcefield.labelling import check_calculator, reference_calculator

    check_calculator(config)
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    count = iter(range(1_000_000))

    def make(atoms: Atoms) -> Any:
        return reference_calculator(config, atoms, log_dir / f"calc_{next(count):04d}.txt")[0]

    return make


def energy(atoms: Atoms, factory: CalculatorFactory) -> float:
    """Energy (eV) of ``atoms``: the free energy where the calculator has one (as labelled)."""
    work = bare_structure(atoms, info=("kpts",))
    work.calc = factory(work)
    return _free_energy(work)


def _free_energy(atoms: Atoms) -> float:
    """The force-consistent energy (eV) of ``atoms``' calculator, or its energy if it has none."""
    try:
        return float(atoms.get_potential_energy(force_consistent=True))
    except PropertyNotImplementedError:
        return float(atoms.get_potential_energy())


EnergyFunction = Callable[[Atoms], float]


def energy_function(factory: CalculatorFactory | None, cache: str | Path | None = None
                    ) -> EnergyFunction:
    """``atoms -> energy (eV)`` with ``factory``'s calculators.

    With ``cache`` (a JSON file) every energy is stored under a hash of the structure as soon
    as it is computed, and found there on later calls: an interrupted reference run loses
    nothing, and a rerun costs no reference calculation.  With ``factory`` None only the
    cache answers; a structure missing from it raises :class:`InputError`.
    """
    path = Path(cache) if cache is not None else None
    try:
        stored: dict[str, float] = json.loads(path.read_text()) if path else {}
    except (OSError, ValueError):
        stored = {}

    def evaluate(atoms: Atoms) -> float:
        if path is None:
            return energy(atoms, factory)
        key = structure_key(atoms)
        mesh = own_kpoint_mesh(atoms)
        if mesh is not None:  # a mesh fixed by the scan, not the one of the spacing
            key += "-k" + "x".join(map(str, mesh))
        if key not in stored:
            if factory is None:
                raise InputError(f"no cached reference energy for {atoms.get_chemical_formula()}"
                                 f" in {path}: run the reference first")
            stored[key] = energy(atoms, factory)
            write_json(path, stored)
        return stored[key]

    return evaluate


def scan_minimum(make: Callable[[float], Atoms], xs: Sequence[float],
                 energy_of: EnergyFunction, refine: int = 2) -> tuple[float, float]:
    """Position and energy of the minimum of ``energy_of(make(x))`` over the grid ``xs``.

    A cubic spline through every point (scipy, not-a-knot) is minimised between the
    neighbours of the lowest point; then, ``refine`` times, two points a quarter of the local
    grid step either side of that minimum are added and the spline is minimised again.
    Without refinement these coarse grids are not good enough: next to a steep repulsive wall
    (Na 1.2 Å above a vacancy) a parabola through five points put the GPAW minimum 0.23 eV
    too low, and a spline alone overshoots a steep Morse well by 0.5 eV (tests).  A minimum
    on the edge of the grid raises :class:`InputError` (widen the scan).
    """
    from scipy.interpolate import CubicSpline
    from scipy.optimize import minimize_scalar

    points = {float(x): energy_of(make(float(x))) for x in xs}
    grid = np.array(sorted(points))
    if int(np.argmin([points[x] for x in grid])) in (0, len(grid) - 1):
        raise InputError(f"the scan minimum lies on the edge of {grid[0]:g}–{grid[-1]:g}: "
                         "the model or reference has no minimum there")

    def spline_minimum() -> tuple[float, float, float]:
        """Minimum position and energy of the spline, and the local grid step there."""
        x = np.array(sorted(points))
        e = np.array([points[v] for v in x])
        k = int(np.argmin(e))
        spline = CubicSpline(x, e)
        best = minimize_scalar(spline, bounds=(x[k - 1], x[k + 1]), method="bounded",
                               options={"xatol": 1e-5})
        return float(best.x), float(spline(best.x)), min(x[k + 1] - x[k], x[k] - x[k - 1])

    for _ in range(refine):
        x0, _, step = spline_minimum()
        for new in (x0 - step / 4, x0 + step / 4):
            new = round(float(np.clip(new, grid[0], grid[-1])), 4)  # round: a stable cache key
            if new not in points:
                points[new] = energy_of(make(new))
    x0, e0, _ = spline_minimum()
    return x0, e0


# --------------------------------------------------------------------------------------------
# structures of the checks


def bcc_sodium(a: float) -> Atoms:
    """Conventional bcc Na cell (2 atoms), lattice constant ``a`` (Å)."""
    return bulk("Na", "bcc", a=a, cubic=True)


def ab_graphite(spacing: float) -> Atoms:
    """AB graphite (4 C), interlayer ``spacing`` (Å)."""
    a = GRAPHENE_A
    cell = [[a, 0, 0], [-a / 2, a * 3**0.5 / 2, 0], [0, 0, 2 * spacing]]
    frac = [[0, 0, 0.25], [1 / 3, 2 / 3, 0.25], [0, 0, 0.75], [2 / 3, 1 / 3, 0.75]]
    return Atoms("C4", cell=cell, pbc=True, scaled_positions=frac)


def intercalated_graphite(kind: str, spacing: float) -> Atoms:
    """Stage-1 AA graphite with one Na per hexagon of a √3×√3 (NaC6) or 2×2 (NaC8) cell."""
    cells = {"NaC6": [[2, 1, 0], [-1, 1, 0], [0, 0, 1]], "NaC8": [[2, 0, 0], [0, 2, 0], [0, 0, 1]]}
    if kind not in cells:
        raise InputError(f"unknown intercalation compound {kind}: use NaC6 or NaC8")
    sheet = graphene(a=GRAPHENE_A, size=(1, 1, 1), vacuum=spacing / 2)
    sheet.pbc = True
    sheet = make_supercell(sheet, cells[kind])
    hollow = _hexagon_centre(sheet, 0)
    na = Atoms("Na", positions=[[hollow[0], hollow[1], sheet.positions[0, 2] + spacing / 2]])
    out = sheet + na
    out.wrap()
    return out


def _hexagon_centre(sheet: Atoms, index: int) -> np.ndarray:
    """A hexagon centre of a flat sheet: one bond length from atom ``index``, opposite a bond."""
    d = sheet.get_distances(index, range(len(sheet)), mic=True, vector=True)
    lengths = np.linalg.norm(d, axis=1)
    neighbour = int(np.argsort(lengths)[1])
    return sheet.positions[index] - d[neighbour]


def graphene_sheet(defect: str, size: int = 4, vacuum: float = 8.0) -> tuple[Atoms, np.ndarray]:
    """A ``size``×``size`` graphene sheet with a defect, and the in-plane site above it.

    ``defect`` is ``"pristine"`` (site: a hexagon centre), ``"monovacancy"`` (one atom
    removed; site: where it was) or ``"divacancy"`` (two bonded atoms removed; site: the
    midpoint).  The sheet is not relaxed (a rigid check, the same for model and reference).
    """
    sheet = graphene(a=GRAPHENE_A, size=(size, size, 1), vacuum=vacuum)
    sheet.pbc = True
    centre = sheet.cell.sum(axis=0) / 2
    index = int(np.argmin(np.linalg.norm(sheet.positions[:, :2] - centre[:2], axis=1)))
    if defect == "pristine":
        site = _hexagon_centre(sheet, index)
    elif defect == "monovacancy":
        site = sheet.positions[index].copy()
        del sheet[index]
    elif defect == "divacancy":
        partner = int(np.argsort(sheet.get_distances(index, range(len(sheet)), mic=True))[1])
        site = sheet.positions[index] + sheet.get_distance(index, partner, mic=True,
                                                           vector=True) / 2
        del sheet[sorted([index, partner], reverse=True)]
    else:
        raise InputError(f"unknown defect {defect}: use pristine, monovacancy or divacancy")
    return sheet, site


def _with_na(sheet: Atoms, site: np.ndarray, height: float) -> Atoms:
    return sheet + Atoms("Na", positions=[[site[0], site[1], sheet.positions[:, 2].mean()
                                           + height]])


# --------------------------------------------------------------------------------------------
# the checks


def physical_checks(energy_of: EnergyFunction,
                    kpts_of: Callable[[Atoms], tuple[int, int, int]] | None = None
                    ) -> dict[str, float | None]:
    """The physical checks of one method (see :func:`energy_function`); keys name the
    quantity and its unit.

    ``kpts_of`` gives a k-point method its mesh for a cell.  Each scan then uses one mesh,
    that of its smallest cell, for all its points: a mesh that changes along a scan of the
    lattice constant puts a step into the energy curve (bcc Na goes from 7³ to 6³ k-points
    between 4.1 and 4.2 Å at 0.25 Å⁻¹, right at the minimum).

    ``mu_Na_eV`` is the energy per atom of bcc Na at its scanned minimum; adsorption and
    formation energies are relative to it (eV per Na), graphite to AB graphite at its minimum.
    A quantity whose scan has no interior minimum, or whose energies a cached-only reference
    lacks, is None (the others are still computed).
    """
    out: dict[str, float | None] = {}

    def scan(keys: tuple[str, str], make: Callable[[float], Atoms], xs: np.ndarray
             ) -> tuple[float, float] | None:
        if kpts_of is not None:
            mesh = kpts_of(make(float(np.min(xs))))

            def make_fixed(x: float, make: Callable[[float], Atoms] = make) -> Atoms:
                atoms = make(x)
                if kpts_of(atoms) != mesh:  # cells on their own mesh keep their cache key
                    atoms.info["kpts"] = mesh
                return atoms
        else:
            make_fixed = make
        try:
            return scan_minimum(make_fixed, xs, energy_of)
        except InputError:
            out.update(dict.fromkeys(keys))
            return None

    bcc = scan(("bcc_Na_a0_A", "mu_Na_eV"), bcc_sodium, np.linspace(3.9, 4.5, 7))
    mu = bcc[1] / 2 if bcc else None
    if bcc:
        out.update(bcc_Na_a0_A=bcc[0], mu_Na_eV=mu)
    graphite = scan(("graphite_d002_A", "graphite_eV_per_C"), ab_graphite,
                    np.linspace(3.0, 3.9, 7))
    e_c = graphite[1] / 4 if graphite else None
    if graphite:
        out.update(graphite_d002_A=graphite[0], graphite_eV_per_C=e_c)
    for defect in ("pristine", "monovacancy", "divacancy"):
        sheet, site = graphene_sheet(defect)
        heights = np.linspace(1.2, 3.2, 6) if defect != "pristine" else np.linspace(1.8, 4.2, 9)
        keys = (f"Na_{defect}_height_A", f"Na_{defect}_vs_bcc_eV")
        found = scan(keys, lambda z, s=sheet, p=site: _with_na(s, p, z), heights)
        if found:
            out[keys[0]] = found[0]
            try:
                out[keys[1]] = found[1] - energy_of(sheet) - mu if mu is not None else None
            except InputError:  # a cached-only reference without the bare sheet
                out[keys[1]] = None
    for kind, n_c in (("NaC6", 6), ("NaC8", 8)):
        keys = (f"{kind}_spacing_A", f"{kind}_formation_eV_per_Na")
        found = scan(keys, lambda x, k=kind: intercalated_graphite(k, x),
                     np.linspace(3.7, 5.2, 6))
        if found:
            out[keys[0]] = found[0]
            out[keys[1]] = (found[1] - n_c * e_c - mu
                            if mu is not None and e_c is not None else None)
    return {k: None if v is None else round(float(v), 4) for k, v in out.items()}


def compare_checks(results: dict[str, dict[str, float]], model: str = "model",
                   reference: str = "reference") -> dict[str, dict[str, float]]:
    """Model minus reference for each check, with the acceptance tolerance of issue 3.

    Lengths must agree within 0.02 Å, adsorption and formation energies within 0.05 eV.
    """
    rows = {}
    for key, ref in results[reference].items():
        if (key in ("mu_Na_eV", "graphite_eV_per_C") or ref is None
                or results[model].get(key) is None):
            continue
        diff = results[model][key] - ref
        tol = 0.02 if key.endswith("_A") else 0.05
        rows[key] = {"difference": round(diff, 4), "tolerance": tol,
                     "ok": bool(abs(diff) <= tol)}
    return rows


def _rmsd(a: Atoms, b: Atoms) -> float:
    """Root-mean-square displacement (Å) between two relaxed copies, minimum image."""
    d = b.positions - a.positions
    frac = np.linalg.solve(a.cell.T, d.T).T if a.pbc.any() else None
    if frac is not None:
        frac -= np.round(frac) * a.pbc
        d = frac @ a.cell
    d -= d.mean(axis=0)  # remove a rigid drift
    return float(np.sqrt(np.mean(np.sum(d**2, axis=1))))


def relax(atoms: Atoms, factory: CalculatorFactory, fmax: float = 0.05,
          steps: int = 300, checkpoint: str | Path | None = None) -> tuple[Atoms, float, int]:
    """Relax positions with BFGS; the relaxed copy, its energy (eV) and the steps taken.

    With ``checkpoint`` (a JSON file) the positions and the step count are written atomically
    after every step, and BFGS keeps its Hessian beside them (ASE's restart file,
    ``*.bfgs.json``): a killed relaxation resumes from its last step on the same path
    instead of from the start, at the cost of one repeated force call.  A reference
    relaxation with plane-wave DFT takes hours, so this is what makes Table 1 survivable.
    """
    work = bare_structure(atoms)
    done, restart = 0, None
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        restart = checkpoint.with_suffix(".bfgs.json")
        try:
            saved = json.loads(checkpoint.read_text())
            work.positions = np.array(saved["positions"]).reshape(len(work), 3)
            done = int(saved["steps"])
            json.loads(restart.read_text())  # ASE's own dump is not atomic: drop a torn one
        except (OSError, ValueError, KeyError, TypeError):
            restart.unlink(missing_ok=True)  # start afresh, or keep the steps but not H
    work.calc = factory(work)
    opt = BFGS(work, logfile=None, restart=None if restart is None else str(restart))
    if checkpoint is not None:
        opt.attach(lambda: write_json(checkpoint, {"positions": work.positions,
                                                   "steps": done + opt.nsteps}))
    opt.run(fmax=fmax, steps=max(steps - done, 0))
    return work, _free_energy(work), done + opt.nsteps


def relax_comparison(structures: Sequence[Atoms], model: CalculatorFactory,
                     reference: CalculatorFactory | None, fmax: float = 0.05,
                     steps: int = 300,
                     reference_relaxed: Sequence[tuple[Atoms, float, int]] | None = None
                     ) -> list[dict[str, Any]]:
    """Table 1: each structure relaxed with the model and with the reference.

    Rows hold the name (``config_type``), atoms, energy per atom of each (eV/atom, each at
    its own minimum), the relative error (%), the positional RMSD between the two relaxed
    structures (Å) and the optimiser steps.  ``reference_relaxed`` gives the reference's
    results of :func:`relax` instead of recomputing them (``reference`` may then be None).
    """
    if reference_relaxed is None:
        if reference is None:
            raise InputError("give a reference calculator or its relaxed structures")
        reference_relaxed = [relax(a, reference, fmax, steps) for a in structures]
    rows = []
    for i, (atoms, (ref, e_ref, n_ref)) in enumerate(
            zip(structures, reference_relaxed, strict=True)):
        mod, e_mod, n_mod = relax(atoms, model, fmax, steps)
        n = len(atoms)
        rows.append({"structure": _name(atoms, i),
                     "atoms": n, "reference_eV_per_atom": round(e_ref / n, 5),
                     "model_eV_per_atom": round(e_mod / n, 5),
                     "relative_error_percent": round(100 * abs(e_mod - e_ref) / abs(e_ref), 4),
                     "rmsd_A": round(_rmsd(ref, mod), 4),
                     "steps": {"reference": n_ref, "model": n_mod}})
    return rows


def table1_structures(seed: int = 0, max_atoms: int = 40) -> list[Atoms]:
    """Starting structures of Table 1: four disordered C–Na cells (quenched and rattled, from
    the training-set generator), Na at a zigzag and at an armchair graphene edge.  Small
    cells (at most ``max_atoms``), so that the reference relaxes them affordably."""
    from hardcarbon.forcefield.families import DatasetConfig, generate_family

    rng = np.random.default_rng(seed)
    config = DatasetConfig(seed=seed, md_fraction=0.0, counts={"disordered": 1}, max_atoms=64)
    cells = [cell for cell in generate_family("disordered", 24, config, rng)
             if len(cell) <= max_atoms and "Na" in cell.get_chemical_symbols()]
    picked = cells[:: max(1, len(cells) // 4)][:4]
    if len(picked) < 4:
        raise InputError(f"too few disordered cells of at most {max_atoms} atoms: raise it")
    names = [cell.info["config_type"] for cell in picked]
    for i, cell in enumerate(picked):  # two frames of one recipe: tell them apart by name
        if (repeat := names[:i].count(names[i])):
            cell.info["config_type"] = f"{names[i]}_{repeat + 1}"
    return picked + [_edge_cell(kind) for kind in ("zigzag", "armchair")]


def _edge_cell(kind: str) -> Atoms:
    """A graphene nanoribbon with a Na atom in the plane next to an edge hexagon."""
    from ase.build import graphene_nanoribbon

    width = 3 if kind == "zigzag" else 4
    ribbon = graphene_nanoribbon(width, 3, type=kind, saturated=False, vacuum=6.0,
                                 C_C=GRAPHENE_A / 3**0.5)
    ribbon.pbc = True
    pos = ribbon.positions
    # ribbon periodic along z, width along x; put Na 2.3 Å out of the edge, 1.5 Å above plane
    edge = int(np.argmax(pos[:, 0]))
    na = pos[edge] + np.array([1.6, 1.5, 0.0])
    cell = ribbon + Atoms("Na", positions=[na])
    cell.info["config_type"] = f"{kind}_edge_Na"
    return cell


def _reference_relaxation(atoms: Atoms, reference: LabelConfig, log_dir: Path, fmax: float,
                          steps: int, checkpoint: Path) -> dict[str, Any]:
    """One Table 1 relaxation with the reference, in a worker (see :func:`relax`)."""
    pin_threads()
    relaxed, e, n = relax(atoms, reference_factory(reference, log_dir), fmax, steps, checkpoint)
    return {"positions": relaxed.positions.tolist(), "energy": e, "steps": n}


def _name(atoms: Atoms, index: int) -> str:
    """A Table 1 structure's name: its ``config_type``."""
    return str(atoms.info.get("config_type", f"structure_{index}"))


def _read_cache(cache_path: Path) -> dict[str, Any]:
    """The Table 1 reference cache (``reference.json``), or {} when absent or unreadable."""
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def _relaxed(cache: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    """The finished reference relaxations cached under ``key``, by structure index."""
    relaxed = cache.get(key, {}).get("relaxed", {})
    if isinstance(relaxed, list):  # caches written before session 11: a list, in order
        relaxed = {str(i): r for i, r in enumerate(relaxed)}
    return relaxed


def _store_relaxed(cache_path: Path, key: str, index: int, done: dict[str, Any]) -> None:
    """Cache one finished reference relaxation.  The file is read again just before the
    (atomic) write, so jobs sharing a work directory with different ``relax_only`` keep each
    other's rows."""
    cache = _read_cache(cache_path)
    cache.setdefault(key, {})["relaxed"] = {**_relaxed(cache, key), str(index): done}
    write_json(cache_path, cache)


def _checkpoint(workdir: Path, key: str, index: int) -> Path:
    """Checkpoint of Table 1's reference relaxation ``index`` (see :func:`relax`)."""
    return workdir / "reference-relax" / f"{key}-{index}.json"


def reference_relaxations(structures: Sequence[Atoms], indices: Sequence[int],
                          config: ValidateConfig, workdir: Path, key: str
                          ) -> Iterator[tuple[int, dict[str, Any]]]:
    """Relax ``structures[i]`` for each of ``indices`` with ``config.reference``, in parallel.

    They run where labelling runs: ``config.reference.workers`` local processes with one
    BLAS thread each, or the Dask cluster of ``config.reference.executor`` (``workdir`` on a
    shared file system).  Yields ``(i, {"positions", "energy", "steps"})`` as each finishes,
    or ``(i, {"error": reason})`` when it raised (an SCF failure, a lost worker): one failure
    does not stop the others.  Each relaxation checkpoints in ``workdir/reference-relax/`` and
    resumes from there.
    """
    jobs = {i: (structures[i], config.reference, workdir / "reference-logs" / f"table1-{i}",
                config.fmax, config.steps, _checkpoint(workdir, key, i))
            for i in indices}
    workers = min(config.reference.workers, len(jobs))
    with open_executor(config.reference.executor, workers) as where:
        for i, future in completed(_reference_relaxation, jobs, where):
            try:
                outcome = future.result()
            except Exception as exc:  # as labelling: one structure's failure is its own
                outcome = {"error": failure_reason(exc)}
            yield i, outcome


# --------------------------------------------------------------------------------------------
# the validation command


class ValidateConfig(Settings):
    """Settings of :func:`validate`.

    Attributes
    ----------
    reference
        The reference method (a ``LabelConfig``; GPAW PBE + D3(BJ) by default).
    checks, relax
        Run the physical checks, and the Table 1 relaxations.
    cached_reference
        Use only reference results already cached in the work directory (no reference
        calculation; checks without them are reported as missing).
    fmax, steps
        Force tolerance (eV/Å) and step limit of the relaxations.
    seed, max_atoms
        Seed and largest cell of the Table 1 structures.
    relax_only
        A regular expression: relax with the reference only the Table 1 structures whose
        name (``config_type``) it matches (``re.search``), e.g. ``edge`` for the two graphene
        edges.  The others are reported when an earlier run cached them.  Splits the six
        reference relaxations across jobs, or runs the cheap ones first.
    """

    reference: LabelConfig = Field(default_factory=LabelConfig)
    checks: bool = True
    relax: bool = True
    cached_reference: bool = False
    fmax: float = Field(0.05, gt=0)
    steps: int = Field(300, ge=1)
    seed: int = Field(0, ge=0)
    max_atoms: int = Field(40, ge=10)
    relax_only: str | None = Field(None, description="Table 1 names to relax (regex)")

    @field_validator("relax_only")
    @classmethod
    def _relax_only(cls, pattern: str | None) -> str | None:
        return None if pattern is None else check_pattern(pattern, "pattern")


def validate(model: str | Path, config: ValidateConfig | None = None,
             workdir: str | Path = "validation") -> dict[str, Any]:
    """Physical checks and Table 1 of ``model`` against ``config.reference``.

    The reference results are the expensive half, so each is stored as soon as it exists
    and reused by later runs (a killed run resumes; another model costs no reference work):
    energies of the checks in ``workdir/energies-<hash of the reference>.json``, relaxed
    structures in ``workdir/reference.json``, and a relaxation in progress after every step
    in ``workdir/reference-relax/``.  The whole result goes to
    ``workdir/validation.json`` and Markdown tables to ``validation.md``.
    """
    config = config or ValidateConfig()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    model_factory = nep_factory(model)
    reference_key = hashlib.sha256(json.dumps(  # what changes the energies, not workers
        config.reference.settings(), sort_keys=True).encode()).hexdigest()[:16]
    key = hashlib.sha256(json.dumps(
        [config.reference.settings(), config.fmax, config.steps, config.seed,
         config.max_atoms]).encode()).hexdigest()[:16]
    cache_path = workdir / "reference.json"
    ref_factory = reference_factory(config.reference, workdir / "reference-logs")

    result: dict[str, Any] = {"model": str(model), "reference": config.reference.settings()}
    if config.checks:
        reference_energy = energy_function(None if config.cached_reference else ref_factory,
                                           workdir / f"energies-{reference_key}.json")
        ref = config.reference
        kpts_of = ((lambda a: kpoint_mesh(a, ref.gpaw.kpoint_spacing, ref.gpaw.vacuum_gap))
                   if ref.calculator == "gpaw" else None)
        checks = {"model": physical_checks(energy_function(model_factory)),
                  "reference": physical_checks(reference_energy, kpts_of)}
        result["checks"] = {**checks, "comparison": compare_checks(checks)}
    if config.relax:
        structures = table1_structures(config.seed, config.max_atoms)
        names = [_name(a, i) for i, a in enumerate(structures)]
        if config.relax_only is not None and not any(
                re.search(config.relax_only, name) for name in names):
            raise InputError(f"relax_only {config.relax_only!r} matches none of the Table 1 "
                             f"structures ({', '.join(names)}): fix the pattern")
        finished = _relaxed(_read_cache(cache_path), key)
        todo = [i for i in range(len(structures)) if str(i) not in finished
                and (config.relax_only is None or re.search(config.relax_only, names[i]))]
        failed: dict[str, str] = {}
        if todo and not config.cached_reference:
            for i, done in reference_relaxations(structures, todo, config, workdir, key):
                if "error" in done:  # not cached: a rerun tries it again from its checkpoint
                    failed[names[i]] = done["error"]
                    continue
                _store_relaxed(cache_path, key, i, done)
                checkpoint = _checkpoint(workdir, key, i)  # dropped only once cached
                checkpoint.unlink(missing_ok=True)
                checkpoint.with_suffix(".bfgs.json").unlink(missing_ok=True)
            finished = _relaxed(_read_cache(cache_path), key)  # and other jobs' rows
        table = [i for i in range(len(structures)) if str(i) in finished]
        reference_relaxed = []
        for i in table:
            relaxed = structures[i].copy()
            relaxed.positions = np.array(finished[str(i)]["positions"])
            reference_relaxed.append((relaxed, finished[str(i)]["energy"],
                                      finished[str(i)]["steps"]))
        structures = [structures[i] for i in table]
        result["table1"] = relax_comparison(structures, model_factory, None, config.fmax,
                                            config.steps, reference_relaxed)
        if failed:
            result["table1_failed"] = failed
    write_json(workdir / "validation.json", result)
    atomic_write(workdir / "validation.md", lambda tmp: tmp.write_text(markdown(result)))
    return result


def markdown(result: dict[str, Any]) -> str:
    """The validation result as Markdown tables (physical checks, Table 1)."""
    lines = [f"Model `{result['model']}` against {result['reference']}", ""]
    if "checks" in result:
        lines += ["| quantity | model | reference | difference | within tolerance |",
                  "|---|---|---|---|---|"]
        checks = result["checks"]
        for name, ref in checks["reference"].items():
            value = checks["model"].get(name)
            row = checks["comparison"].get(name)
            cells = [f"{v:.3f}" if v is not None else "n/a" for v in (value, ref)]
            verdict = (f"{row['difference']:+.3f} | {'yes' if row['ok'] else 'no'} "
                       f"(±{row['tolerance']:g})" if row else "– | –")
            lines.append(f"| {name} | {cells[0]} | {cells[1]} | {verdict} |")
        lines.append("")
    if "table1" in result:
        lines += ["| structure | atoms | reference (eV/atom) | model (eV/atom) | "
                  "relative error (%) | RMSD (Å) |", "|---|---|---|---|---|---|"]
        for row in result["table1"]:
            lines.append(f"| {row['structure']} | {row['atoms']} | "
                         f"{row['reference_eV_per_atom']:.4f} | {row['model_eV_per_atom']:.4f}"
                         f" | {row['relative_error_percent']:.3f} | {row['rmsd_A']:.3f} |")
    for name, reason in result.get("table1_failed", {}).items():
        lines.append(f"\nNot in Table 1: the reference relaxation of {name} failed ({reason}); "
                     "a rerun tries it again.")
    return "\n".join(lines) + "\n"
