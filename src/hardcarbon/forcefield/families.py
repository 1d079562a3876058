"""Initial NEP training structures from the study's five Na–C families (section 2.1).

The study labelled with DFT an initial data set of five kinds of sodium–carbon structures:
disordered (hard) carbon, layered carbon (graphene, graphite), spherical carbon (fullerenes),
carbon nanotubes and pure metallic sodium, in proportions 41/12/18/25/4 %. This module builds
such structures as small periodic cells (at most ``max_atoms``, mostly 20–70 atoms) so that
DFT labelling stays affordable. Every cell is fully periodic (``pbc=True``) so it works with
NEP and with plane-wave or LCAO DFT; directions that are non-periodic in nature (slab
normals, nanotube radii, molecules and clusters) hold at least ``vacuum`` Å of empty space and
are listed in ``atoms.info['vacuum_axes']`` (``"z"``, ``"xy"``, ``"xyz"``, or ``"none"`` for
bulk) so the DFT set-up can use a single k-point along them.

Families and sub-types (``atoms.info['config_type']`` is ``"<family>/<sub-type>"``):

``disordered``
    Random carbon placement (:func:`hardcarbon.structures.random_carbon`) at 1.0–2.2 g/cm³,
    either filling the cell (``bulk``) or as a slab with a slit pore (``slit``), held briefly
    at 3500 K and quenched to 300 K in LAMMPS, then minimised; Na inserted at random positions
    at 1–10 Na per 64 C (the study's Monte Carlo insertion with a minimum Na–C distance).
``layered``
    Graphene (pristine, monovacancy ``MV``, divacancy ``DV``, Stone–Wales ``SW``) with Na on
    hollow/top/bridge sites; AB/AA bilayers at interlayer spacings 3.3–4.5 Å with Na
    intercalated and/or adsorbed; AA/AB graphite with NaC6-like (√3×√3), NaC8-like (2×2) and
    dilute intercalation; zigzag and armchair nanoribbons (unsaturated edges: the study's data
    hold only Na and C) with Na at in-plane edge sites or on the ribbon surface.
``fullerene``
    C60 (:func:`ase.build.molecule`), C70, C80 (D5d) and C90 (D5h), C59 (vacancy) and a
    Stone–Wales C60 isomer, with Na inside (endohedral) and/or outside (exohedral).
    ASE ships only C60; C70/C80/C90 are built here by the classic construction of these
    fullerenes as (5,5) armchair tubes capped by the two C60 halves: C60 is cut across a
    five-fold axis and one, two or three 10-atom armchair belts are inserted, then the cage is
    minimised with the carbon potential. The construction is checked topologically (every atom
    3-coordinated, exactly 12 pentagons). C60 pairs or clusters are not built: two cages are
    already 120 atoms, leaving no room for Na within ``max_atoms``.
``nanotube``
    :func:`ase.build.nanotube` tubes (5,5), (6,6), (7,7), (8,0), (9,0), (10,0), (12,0) and the
    chiral (8,2), (6,3), (7,1) (pristine, ``MV`` or ``SW``), tube axis periodic along z, with
    Na inside and/or outside. Chiral tubes such as (6,4) (152 atoms per translational unit
    cell) cannot be made periodic within ``max_atoms`` and are left out.
``sodium``
    bcc, fcc and hcp Na at lattice constants scaled by 0.92–1.06, liquid-like cells (bcc Na
    expanded by 1–4 % and rattled by 0.25–0.45 Å) and Na2–Na13 clusters cut from an
    icosahedron (Na has no classical potential here, so no MD: labels come from DFT).

A minority of Na-free carbon references (sub-type ending in ``_Na0``: quenched disordered
frameworks, expanded AB graphite, bare cages and tubes) is included on purpose: formation
energies need the energy of the host without Na. All other carbon structures contain Na.

Diversity: before Na is added, a fraction ``md_fraction`` of carbon frameworks is taken from a
short NVT run (``md_ps``) at a temperature drawn from ``md_temperatures`` with the LAMMPS
carbon potential (sub-type contains ``md<T>K``); stacked layers are run one layer at a time so
that their spacing and registry stay as named. Every structure is then strained (random
symmetric strain, each component within ±``strain``; components that would tilt a vacuum
direction are left out) and rattled (Gaussian, ``rattle_std`` Å). Spacings and lattice
constants in sub-type names are therefore nominal, i.e. before the strain.

Every structure is checked (:func:`check_structure`) before it is returned; structures that
fail are logged and dropped, and the next candidate is taken, so the result depends only on
the seed. The same minimum distances hold for all families (no family needs an exception):
C–C 0.9 Å, Na–C 1.9 Å, Na–Na 2.6 Å. Placement itself uses stricter limits
(``na_c_min`` = 2.0 Å, ``na_na_min`` = 2.8 Å); rattling never moves an atom into a clash
(an atom whose displacement would create one keeps its unrattled position).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.build import bulk, graphene, graphene_nanoribbon, make_supercell, molecule, nanotube
from ase.cluster import Icosahedron
from ase.data import atomic_numbers
from ase.neighborlist import neighbor_list
from pydantic import Field, field_validator

from hardcarbon.errors import InputError
from hardcarbon.forcefield.carbon import CARBON_POTENTIALS, CarbonPotential
from hardcarbon.settings import Settings

# hardcarbon.structures is imported inside the functions that use it: it imports
# hardcarbon.forcefield.carbon, and this package's __init__ imports this module.

log = logging.getLogger(__name__)

#: The five structure families, in the order :func:`generate_dataset` returns them.
FAMILIES: tuple[str, ...] = ("disordered", "layered", "fullerene", "nanotube", "sodium")

#: Default number of structures per family: 300 in all, in the study's proportions
#: (41/12/18/25/4 % of 6156 structures).
DEFAULT_COUNTS: dict[str, int] = {
    "disordered": 123,
    "layered": 36,
    "fullerene": 54,
    "nanotube": 75,
    "sodium": 12,
}

#: Smallest allowed distance (Å) for each pair of elements, in every family.
MIN_DISTANCES: dict[tuple[str, str], float] = {
    ("C", "C"): 0.9,
    ("C", "Na"): 1.9,
    ("Na", "Na"): 2.6,
}

#: Smallest allowed cell thickness (distance between opposite faces, Å).
MIN_CELL_THICKNESS = 4.0

#: Interlayer spacings (Å) cycled through by bilayers and graphite.
SPACINGS: tuple[float, ...] = (3.3, 3.5, 3.7, 3.9, 4.1, 4.3, 4.5)

#: Nanotube chiralities, all with a translational cell of at most 84 atoms.
CHIRALITIES: tuple[tuple[int, int], ...] = (
    (5, 5), (8, 0), (8, 2), (6, 6), (10, 0), (6, 3), (7, 7), (9, 0), (7, 1), (12, 0),
)

_GRAPHENE_A = 2.46  # graphene lattice constant (Å)
_CC_BOND = 1.42  # graphene C–C bond (Å)
_BOND_CUTOFF = 1.85  # C–C bond cutoff for rings and sites (Å)
_NA_BCC_A = 4.23  # bcc Na lattice constant (Å), experiment at low temperature
_NA_FCC_A = 5.33  # fcc Na with the bcc volume per atom (Å)
_NA_HCP_A = 3.77  # hcp Na with the bcc volume per atom and ideal c/a (Å)
_MELT_K = 3500.0  # hold temperature before the quench of disordered carbon (K)
_QUENCH_K_PER_PS = 10_000.0  # quench rate (K/ps)
_VACUUM_MARGIN = 1.0  # extra vacuum so that strain and rattle keep at least `vacuum` (Å)
_BUILD_VACUUM = 14.0  # vacuum of framework boxes during LAMMPS runs (Å)
#: Height ranges (Å) of adsorbed Na above a site (along the surface normal).
_HEIGHTS: dict[str, tuple[float, float]] = {
    "hollow": (2.0, 2.5),
    "bridge": (2.2, 2.7),
    "top": (2.3, 2.8),
    "edge": (2.2, 2.6),
}
_DEFECTS = ("pristine", "MV", "DV", "SW")


class DatasetConfig(Settings):
    """Settings of the initial training set.

    Attributes
    ----------
    counts
        Number of structures per family; families not listed get none.
    max_atoms
        Largest number of atoms in a cell.
    rattle_std
        Standard deviation of the Gaussian displacement of every atom (Å).
    strain
        Largest magnitude of each component of the random symmetric strain (fraction).
    md_temperatures
        Temperatures (K) of the short NVT runs of carbon frameworks.
    md_fraction
        Fraction of carbon frameworks taken from such a run rather than from the minimum.
    md_ps
        Length of each run (ps).
    vacuum
        Smallest vacuum gap (Å) along directions that are non-periodic in nature.
    na_c_min, na_na_min
        Smallest Na–C and Na–Na distances (Å) at which Na is placed.
    seed
        Seed of :func:`numpy.random.default_rng`; everything follows from it.
    carbon_potential
        LAMMPS carbon potential for quenches, MD and defect relaxation.
    """

    counts: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_COUNTS))
    max_atoms: int = Field(120, ge=64, description="largest number of atoms in a cell")
    rattle_std: float = Field(0.05, ge=0, le=0.2, description="rattle standard deviation (Å)")
    strain: float = Field(0.03, ge=0, le=0.1, description="largest strain component")
    md_temperatures: list[float] = Field(default_factory=lambda: [300.0, 1000.0, 3000.0])
    md_fraction: float = Field(0.5, ge=0, le=1)
    md_ps: float = Field(0.3, gt=0, le=5, description="length of each MD run (ps)")
    vacuum: float = Field(10.0, ge=4, le=20, description="smallest vacuum gap (Å)")
    na_c_min: float = Field(2.0, ge=MIN_DISTANCES["C", "Na"], le=3.0)
    na_na_min: float = Field(2.8, ge=MIN_DISTANCES["Na", "Na"], le=3.6)
    seed: int = Field(0, ge=0)
    carbon_potential: str = Field("tersoff", description="one of CARBON_POTENTIALS")

    @field_validator("counts")
    @classmethod
    def _known_families(cls, counts: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(counts) - set(FAMILIES))
        if unknown:
            raise ValueError(f"unknown families {unknown}: choose from {', '.join(FAMILIES)}")
        negative = {k: v for k, v in counts.items() if v < 0}
        if negative:
            raise ValueError(f"counts must not be negative, got {negative}")
        return counts

    @field_validator("md_temperatures")
    @classmethod
    def _temperatures(cls, temperatures: list[float]) -> list[float]:
        if not temperatures or any(not 0 < t <= 5000 for t in temperatures):
            raise ValueError(f"give MD temperatures in (0, 5000] K, got {temperatures}")
        return temperatures

    @field_validator("carbon_potential")
    @classmethod
    def _potential(cls, name: str) -> str:
        if name not in CARBON_POTENTIALS:
            raise ValueError(f"unknown carbon potential '{name}': choose from "
                             f"{', '.join(CARBON_POTENTIALS)}")
        return name


def generate_dataset(config: DatasetConfig | None = None) -> list[Atoms]:
    """Build the structures of every family, in the order of :data:`FAMILIES`.

    Family number ``i`` draws from ``numpy.random.default_rng([config.seed, i])``, so a
    family's structures do not depend on the counts of the others.

    Parameters
    ----------
    config
        Counts and settings; the defaults when None.

    Returns
    -------
    list of ase.Atoms
        Each with ``info['config_type']``, ``info['family']`` and ``info['vacuum_axes']``.
    """
    config = config or DatasetConfig()
    structures: list[Atoms] = []
    for i, name in enumerate(FAMILIES):
        rng = np.random.default_rng([config.seed, i])
        structures += generate_family(name, config.counts.get(name, 0), config, rng)
    return structures


def generate_family(name: str, count: int, config: DatasetConfig,
                    rng: np.random.Generator) -> list[Atoms]:
    """Build ``count`` checked structures of one family.

    Parameters
    ----------
    name
        One of :data:`FAMILIES`.
    count
        Number of structures.
    config
        Sizes, perturbations, MD settings and the carbon potential.
    rng
        Source of all randomness (LAMMPS seeds included).

    Returns
    -------
    list of ase.Atoms
        Periodic cells tagged ``info['config_type'] = '<name>/<sub-type>'``,
        ``info['family'] = name`` and ``info['vacuum_axes']``.

    Raises
    ------
    InputError
        If ``name`` is not a family or ``count`` is negative.
    """
    if name not in FAMILIES:
        raise InputError(f"unknown structure family '{name}': choose one of {', '.join(FAMILIES)}")
    if count < 0:
        raise InputError(f"number of structures must not be negative, got {count}")
    structures: list[Atoms] = []
    candidates = _GENERATORS[name](config, rng)
    attempts = 0
    while len(structures) < count:
        attempts += 1
        if attempts > 3 * count + 20:
            raise RuntimeError(
                f"only {len(structures)} of {count} {name} structures passed the checks "
                f"after {attempts - 1} attempts (see the log for why)"
            )
        subtype, atoms, vacuum_axes = next(candidates)
        atoms = _finish(atoms, vacuum_axes, config, rng)
        atoms.info.update(config_type=f"{name}/{subtype}", family=name,
                          vacuum_axes=vacuum_axes or "none")
        problems = check_structure(atoms, max_atoms=config.max_atoms, vacuum=config.vacuum)
        if problems:
            log.warning("dropping %s/%s: %s", name, subtype, "; ".join(problems))
            continue
        structures.append(atoms)
    candidates.close()
    return structures


def check_structure(atoms: Atoms, max_atoms: int = 120, vacuum: float = 10.0) -> list[str]:
    """Problems that make a structure unfit for training; an empty list when it is fine.

    Checks: at most ``max_atoms`` atoms; periodic in all directions; every cell thickness at
    least :data:`MIN_CELL_THICKNESS`; no pair (periodic images included) closer than
    :data:`MIN_DISTANCES`; a vacuum gap of at least ``vacuum`` Å along each axis listed in
    ``atoms.info['vacuum_axes']``.

    Parameters
    ----------
    atoms
        The structure.
    max_atoms
        Largest number of atoms.
    vacuum
        Smallest vacuum gap (Å).
    """
    problems = []
    if len(atoms) > max_atoms:
        problems.append(f"{len(atoms)} atoms > max_atoms {max_atoms}")
    if not atoms.pbc.all():
        problems.append(f"not periodic in all directions (pbc={atoms.pbc.tolist()})")
    if abs(np.linalg.det(atoms.cell.array)) < 1e-6:
        problems.append("the cell has no volume")
        return problems
    thickness = _thickness(atoms.cell.array)
    if thickness.min() < MIN_CELL_THICKNESS:
        problems.append(f"cell thickness {thickness.min():.2f} Å < {MIN_CELL_THICKNESS} Å")
        return problems  # distances are meaningless in a degenerate cell
    i, j, d = _clashes(atoms, MIN_DISTANCES)
    if len(d):
        symbols = atoms.get_chemical_symbols()
        k = int(np.argmin(d))
        pair = "–".join(sorted((symbols[i[k]], symbols[j[k]])))
        limit = MIN_DISTANCES[tuple(sorted((symbols[i[k]], symbols[j[k]])))]
        problems.append(f"{len(d) // 2} pairs too close, e.g. {pair} {d[k]:.2f} Å < {limit} Å")
    for axis in _vacuum_axes(atoms):
        gap = _largest_gap(atoms, "xyz".index(axis))
        if gap < vacuum - 1e-6:
            problems.append(f"vacuum along {axis} is {gap:.2f} Å < {vacuum} Å")
    return problems


def _vacuum_axes(atoms: Atoms) -> str:
    """The axes in ``info['vacuum_axes']``; ``"none"`` (bulk) or missing gives ``""``."""
    axes = str(atoms.info.get("vacuum_axes", "none"))
    return "" if axes == "none" else axes


# --------------------------------------------------------------------------------------------
# Finishing: vacuum, strain, rattle


def _finish(atoms: Atoms, vacuum_axes: str, config: DatasetConfig,
            rng: np.random.Generator) -> Atoms:
    """Give the vacuum axes their gap, then strain and rattle; a clean periodic Atoms."""
    atoms = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell,
                  pbc=True)
    _rebox(atoms, vacuum_axes, config.vacuum + _VACUUM_MARGIN)
    _strain(atoms, vacuum_axes, config.strain, rng)
    _rattle(atoms, config.rattle_std, rng)
    atoms.wrap()
    return atoms


def _rebox(atoms: Atoms, axes: str, gap: float) -> None:
    """Set the cell length along each vacuum axis to the atoms' extent plus ``gap``, centred.

    The cell vector of a vacuum axis must be along that Cartesian axis and the other cell
    vectors perpendicular to it (true for every framework built here).
    """
    cell = atoms.cell.array.copy()
    positions = atoms.positions.copy()
    for axis in axes:
        i = "xyz".index(axis)
        others = [k for k in range(3) if k != i]
        if np.abs(cell[i, others]).max() > 1e-8 or np.abs(cell[others, i]).max() > 1e-8:
            raise ValueError(f"vacuum axis {axis} is not perpendicular to the other cell vectors")
        length = cell[i, i]
        x = np.mod(positions[:, i], length)
        s = np.sort(x)
        gaps = np.diff(np.append(s, s[0] + length))
        start = s[(int(np.argmax(gaps)) + 1) % len(s)]
        x = np.mod(x - start, length)  # contiguous: the largest gap is now at the boundary
        positions[:, i] = x - x.min() + gap / 2
        cell[i, i] = x.max() - x.min() + gap
    atoms.set_cell(cell, scale_atoms=False)
    atoms.positions = positions


def _strain(atoms: Atoms, vacuum_axes: str, amount: float, rng: np.random.Generator) -> None:
    """Apply a random symmetric strain, each component uniform in ±``amount``.

    Periodic cell vectors are strained with the atoms. Components that couple a vacuum axis
    to a periodic one are dropped (they would tilt the vacuum); along vacuum axes only the
    atoms are strained (about their centre), so the vacuum gap barely changes. A molecule or
    cluster (three vacuum axes) is deformed inside its unchanged box.
    """
    if amount == 0:
        return
    eps = rng.uniform(-amount, amount, (3, 3))
    eps = (eps + eps.T) / 2
    vacuum = ["xyz".index(a) for a in vacuum_axes]
    periodic = [k for k in range(3) if k not in vacuum]
    for i in vacuum:
        for j in periodic:
            eps[i, j] = eps[j, i] = 0.0
    deformation = np.eye(3) + eps
    centre = atoms.positions.mean(axis=0)
    cell = atoms.cell.array.copy()
    cell[periodic] = cell[periodic] @ deformation.T
    atoms.set_cell(cell, scale_atoms=False)
    atoms.positions = centre + (atoms.positions - centre) @ deformation.T


def _rattle(atoms: Atoms, std: float, rng: np.random.Generator,
            limits: dict[tuple[str, str], float] = MIN_DISTANCES) -> None:
    """Add Gaussian displacements (``std`` Å); an atom in a resulting clash stays put.

    Atoms of pairs closer than ``limits`` get their old position back, repeatedly, until no
    clash is left; at worst every atom is back where it was, so this always terminates and
    never creates a clash.
    """
    if std == 0:
        return
    start = atoms.positions.copy()
    trial = start + rng.normal(0.0, std, start.shape)
    for _ in range(len(atoms) + 1):
        atoms.positions = trial
        i, j, _d = _clashes(atoms, limits)
        moved = np.unique(np.concatenate([i, j]))
        moved = moved[np.any(trial[moved] != start[moved], axis=1)]
        if len(moved) == 0:
            break
        trial[moved] = start[moved]
    atoms.positions = trial


def _clashes(atoms: Atoms, limits: dict[tuple[str, str], float]
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i, j, distance) closer than ``limits``; each pair appears twice."""
    table = np.zeros((119, 119))
    for (a, b), value in limits.items():
        za, zb = atomic_numbers[a], atomic_numbers[b]
        table[za, zb] = table[zb, za] = value
    i, j, d = neighbor_list("ijd", atoms, max(limits.values()))
    z = atoms.numbers
    bad = d < table[z[i], z[j]]
    return i[bad], j[bad], d[bad]


def _thickness(cell: np.ndarray) -> np.ndarray:
    """Distance between opposite faces of the cell along each cell vector (Å)."""
    volume = abs(np.linalg.det(cell))
    return np.array([volume / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3]))
                     for k in range(3)])


def _largest_gap(atoms: Atoms, axis: int) -> float:
    """Largest empty slab (Å) between atoms along cell vector ``axis`` (periodic)."""
    s = np.sort(np.mod(atoms.get_scaled_positions(wrap=False)[:, axis], 1.0))
    gaps = np.diff(np.append(s, s[0] + 1.0))
    return float(gaps.max() * _thickness(atoms.cell.array)[axis])


# --------------------------------------------------------------------------------------------
# LAMMPS: quench, NVT snapshot, minimisation (carbon only)


def _potential(config: DatasetConfig) -> CarbonPotential:
    return CARBON_POTENTIALS[config.carbon_potential]


def _lammps_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(1, 2**31 - 1))


def _carbon(atoms: Atoms) -> Atoms:
    """A clean copy (no velocities, no info) in the same orthorhombic periodic cell."""
    return Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell,
                 pbc=True)


def _quench(atoms: Atoms, config: DatasetConfig, rng: np.random.Generator) -> Atoms:
    """Hold at 3500 K for 0.3 ps, quench to 300 K at 10⁴ K/ps, minimise (LAMMPS)."""
    from hardcarbon.structures.anneal import AnnealStage, LammpsEngine, Minimisation

    engine = LammpsEngine(_carbon(atoms), _potential(config))
    try:
        engine.run_stage(AnnealStage(name="hold", t_start=_MELT_K, t_end=_MELT_K,
                                     duration_ps=0.3), seed=_lammps_seed(rng))
        engine.run_stage(AnnealStage(name="quench", t_start=_MELT_K, t_end=300.0,
                                     rate_k_per_ps=_QUENCH_K_PER_PS), seed=_lammps_seed(rng))
        quenched, _ = engine.minimise(Minimisation(fmax=0.1, max_steps=300))
    finally:
        engine.close()
    return _carbon(quenched)


def _thermalise(atoms: Atoms, temperature: float, config: DatasetConfig,
                rng: np.random.Generator) -> Atoms:
    """Final frame of an NVT run of ``md_ps`` at ``temperature`` (LAMMPS), drift removed."""
    from hardcarbon.structures.anneal import AnnealStage, LammpsEngine

    start = _carbon(atoms)
    engine = LammpsEngine(start, _potential(config))
    try:
        stage = AnnealStage(name=f"md{temperature:.0f}", t_start=temperature,
                            t_end=temperature, duration_ps=config.md_ps)
        frame = _carbon(engine.run_stage(stage, seed=_lammps_seed(rng)))
    finally:
        engine.close()
    lengths = np.diag(start.cell.array)
    drift = _mic(frame.positions - start.positions, lengths).mean(axis=0)
    frame.positions = frame.positions - drift
    frame.wrap()
    return frame


def _minimise(atoms: Atoms, config: DatasetConfig, fmax: float = 0.1,
              steps: int = 300) -> Atoms:
    """Minimise positions with the carbon potential (LAMMPS, fixed cell)."""
    from hardcarbon.structures.anneal import LammpsEngine, Minimisation

    engine = LammpsEngine(_carbon(atoms), _potential(config))
    try:
        relaxed, _ = engine.minimise(Minimisation(fmax=fmax, max_steps=steps))
    finally:
        engine.close()
    return _carbon(relaxed)


def _maybe_md(atoms: Atoms, config: DatasetConfig, rng: np.random.Generator
              ) -> tuple[Atoms, str]:
    """With probability ``md_fraction``, an NVT snapshot and its tag ``_md<T>K``."""
    if rng.random() >= config.md_fraction:
        return atoms, ""
    temperature = float(rng.choice(config.md_temperatures))
    return _thermalise(atoms, temperature, config, rng), f"_md{temperature:.0f}K"


# --------------------------------------------------------------------------------------------
# Geometry helpers: periodic distances, bonds, rings, adsorption sites


def _mic(d: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Minimum-image vectors in an orthorhombic cell with edge ``lengths``."""
    return d - lengths * np.round(d / lengths)


def _nearest(points: np.ndarray, reference: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Distance from each point to the nearest reference point (orthorhombic MIC)."""
    if len(reference) == 0:
        return np.full(len(points), np.inf)
    d = _mic(points[:, None, :] - reference[None, :, :], lengths)
    return np.sqrt((d**2).sum(axis=2)).min(axis=1)


def _lengths(atoms: Atoms) -> np.ndarray:
    if not atoms.cell.orthorhombic:
        raise ValueError("Na placement needs an orthorhombic cell")
    return atoms.cell.lengths()


def _graph(atoms: Atoms) -> list[list[tuple[int, np.ndarray]]]:
    """C–C bonds: for each atom, its bonded neighbours and the bond vectors (images included)."""
    graph: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(len(atoms))]
    carbon = atoms.numbers == 6
    for a, b, vector in zip(*neighbor_list("ijD", atoms, _BOND_CUTOFF), strict=True):
        if carbon[a] and carbon[b]:
            graph[a].append((int(b), vector))
    return graph


def _rings(atoms: Atoms, graph: list[list[tuple[int, np.ndarray]]], max_size: int = 8
           ) -> list[tuple[frozenset[int], np.ndarray]]:
    """Rings of 3 to ``max_size`` bonded atoms: their atoms and centroid (Å).

    A depth-first search from each atom over higher-numbered atoms; a closed path counts only
    if its bond vectors sum to zero, so paths that wind around a periodic direction of a small
    cell are not rings.
    """
    found: dict[frozenset[int], np.ndarray] = {}
    positions = atoms.positions
    for s in range(len(atoms)):
        stack = [(s, (s,), np.zeros(3), np.zeros(3))]
        while stack:
            node, path, offset, total = stack.pop()
            for neighbour, vector in graph[node]:
                reach = offset + vector
                if neighbour == s:
                    if len(path) >= 3 and np.linalg.norm(reach) < 0.5:
                        found.setdefault(frozenset(path), positions[s] + total / len(path))
                    continue
                if neighbour < s or neighbour in path or len(path) >= max_size:
                    continue
                stack.append((neighbour, (*path, neighbour), reach, total + reach))
    return list(found.items())


@dataclass(frozen=True)
class _Site:
    """An adsorption site: kind, position (Å) and, for in-plane edge sites, the direction."""

    kind: str
    position: np.ndarray
    direction: np.ndarray | None = None
    defect: bool = False


def _sites(atoms: Atoms) -> list[_Site]:
    """Top (atoms), bridge (bond centres), hollow (ring centroids) and edge sites of carbon.

    Edge sites belong to 2-coordinated atoms and point away from their two bonds, in-plane.
    Defect sites (``defect=True``, adsorbed like hollows) are the centroids of non-hexagonal
    rings and of vacancies: groups of two to four 2-coordinated atoms within 3 Å of each
    other (rings around a vacancy are too large for the ring search).
    """
    graph = _graph(atoms)
    sites = []
    under = [a for a, bonds in enumerate(graph) if atoms.numbers[a] == 6 and len(bonds) == 2]
    if under:
        i, j, vectors = neighbor_list("ijD", atoms[under], 3.0)
        offsets: dict[int, np.ndarray] = {}
        for seed in range(len(under)):  # connected groups, unwrapped by breadth-first search
            if seed in offsets:
                continue
            offsets[seed], group, queue = np.zeros(3), [seed], [seed]
            while queue:
                a = queue.pop(0)
                for b, vector in zip(j[i == a], vectors[i == a], strict=True):
                    if b not in offsets:
                        offsets[b] = offsets[a] + vector
                        group.append(int(b))
                        queue.append(int(b))
            if 2 <= len(group) <= 4:
                centre = atoms.positions[under[seed]] + np.mean([offsets[g] for g in group], 0)
                sites.append(_Site("hollow", centre, defect=True))
    for a, bonds in enumerate(graph):
        if atoms.numbers[a] != 6:
            continue
        sites.append(_Site("top", atoms.positions[a]))
        for b, vector in bonds:
            if a < b:
                sites.append(_Site("bridge", atoms.positions[a] + vector / 2))
        if len(bonds) == 2:
            outward = -(bonds[0][1] + bonds[1][1])
            if np.linalg.norm(outward) > 0.1:
                sites.append(_Site("edge", atoms.positions[a],
                                   outward / np.linalg.norm(outward)))
    sites += [_Site("hollow", centre, defect=len(ring) != 6)
              for ring, centre in _rings(atoms, graph) if len(ring) >= 5]
    return sites


def _add_na(atoms: Atoms, points: list[np.ndarray]) -> Atoms:
    out = atoms.copy()
    if points:
        out += Atoms(f"Na{len(points)}", positions=np.array(points))
    return out


def _adsorb(atoms: Atoms, sites: list[_Site], count: int, rng: np.random.Generator,
            config: DatasetConfig, normal: Callable[[np.ndarray], np.ndarray],
            kinds: tuple[str, ...] = ("hollow", "top", "bridge"), defects_first: bool = False
            ) -> tuple[Atoms, int]:
    """Put up to ``count`` Na above random sites of ``kinds``, at the heights of ``_HEIGHTS``.

    ``normal(position)`` gives the outward unit normal at a site (edge sites use their own
    in-plane direction). A Na is kept when it is at least ``na_c_min`` from every C and
    ``na_na_min`` from every Na, periodic images included. With ``defects_first``, defect
    sites (whatever ``kinds``) are tried before the others, as Na binds there first.
    """
    lengths = _lengths(atoms)
    carbon = atoms.positions[atoms.numbers == 6]
    sodium = list(atoms.positions[atoms.numbers == 11])
    first = [s for s in sites if defects_first and s.defect]
    rest = [s for s in sites if s.kind in kinds and not (defects_first and s.defect)]
    order = [first[k] for k in rng.permutation(len(first))]
    order += [rest[k] for k in rng.permutation(len(rest))]
    placed: list[np.ndarray] = []
    for site in order:
        if len(placed) == count:
            break
        direction = site.direction if site.direction is not None else normal(site.position)
        point = site.position + rng.uniform(*_HEIGHTS[site.kind]) * direction
        if (_nearest(point[None], carbon, lengths)[0] >= config.na_c_min
                and _nearest(point[None], np.array(sodium + placed).reshape(-1, 3),
                             lengths)[0] >= config.na_na_min):
            placed.append(point)
    return _add_na(atoms, placed), len(placed)


def _insert(atoms: Atoms, count: int, sampler: Callable[[int], np.ndarray],
            config: DatasetConfig, tries: int = 3000) -> tuple[Atoms, int]:
    """Insert up to ``count`` Na at random points drawn by ``sampler(n)`` (Monte Carlo).

    As in the study, a point is accepted when it is at least ``na_c_min`` from every C (and
    ``na_na_min`` from every Na); candidates are taken in the order drawn.
    """
    lengths = _lengths(atoms)
    candidates = sampler(tries)
    free = _nearest(candidates, atoms.positions[atoms.numbers == 6], lengths) >= config.na_c_min
    sodium = list(atoms.positions[atoms.numbers == 11])
    placed: list[np.ndarray] = []
    for point in candidates[free]:
        if len(placed) == count:
            break
        if _nearest(point[None], np.array(sodium + placed).reshape(-1, 3),
                    lengths)[0] >= config.na_na_min:
            placed.append(point)
    return _add_na(atoms, placed), len(placed)


def _uniform_box(rng: np.random.Generator, lengths: np.ndarray) -> Callable[[int], np.ndarray]:
    return lambda n: rng.random((n, 3)) * lengths


def _rotate(vectors: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotate row vectors by ``angle`` (rad) about the unit ``axis`` (Rodrigues)."""
    axis = axis / np.linalg.norm(axis)
    cos, sin = math.cos(angle), math.sin(angle)
    return (vectors * cos + np.cross(axis, vectors) * sin
            + np.outer(vectors @ axis, axis) * (1 - cos))


def _defect(atoms: Atoms, kind: str, rng: np.random.Generator, config: DatasetConfig,
            normal: Callable[[np.ndarray], np.ndarray]) -> Atoms:
    """Monovacancy, divacancy or Stone–Wales defect in an sp² framework, then minimised.

    ``MV`` removes a random atom, ``DV`` a random bonded pair; ``SW`` rotates a random bond
    shared by two hexagons by 90° about the surface normal at its centre (the 5-7-7-5
    transformation; on a 5-6 bond of a fullerene it would make a 4-ring, hence the rule).
    """
    if kind == "pristine":
        return atoms
    atoms = atoms.copy()
    graph = _graph(atoms)
    if kind == "MV":
        del atoms[int(rng.integers(len(atoms)))]
    elif kind == "DV":
        a = int(rng.integers(len(atoms)))
        b = graph[a][int(rng.integers(len(graph[a])))][0]
        del atoms[[a, b]]
    elif kind == "SW":
        rings = _rings(atoms, graph)
        bonds = [(a, b, v) for a in range(len(atoms)) for b, v in graph[a] if a < b
                 and [len(r) for r, _ in rings if a in r and b in r] == [6, 6]]
        a, b, vector = bonds[int(rng.integers(len(bonds)))]
        centre = atoms.positions[a] + vector / 2
        half = _rotate(vector[None] / 2, normal(centre), math.pi / 2)[0]
        positions = atoms.positions
        positions[a], positions[b] = centre - half, centre + half
        atoms.positions = positions
    else:
        raise ValueError(f"unknown defect {kind}")
    return _minimise(atoms, config)


# --------------------------------------------------------------------------------------------
# disordered


#: Na loadings per 64 C, cycled through.
_LOADINGS = (1, 2, 4, 6, 8, 10)


def _disordered(config: DatasetConfig, rng: np.random.Generator
                ) -> Iterator[tuple[str, Atoms, str]]:
    """Quenched random carbon (bulk or with a slit pore), each framework with 4 Na loadings."""
    from hardcarbon.structures.random_carbon import number_density, random_carbon

    sizes = [n for n in (64, 48, 32, 56, 40) if n * (1 + max(_LOADINGS) / 64) <= config.max_atoms]
    slot = 0
    for framework in itertools.count():
        n_c = sizes[framework % len(sizes)]
        density = float(rng.uniform(1.0, 2.2))
        edge = (n_c / number_density(density)) ** (1 / 3)
        atoms = random_carbon(n_c, (edge, edge, edge), min_distance=1.4,
                              seed=int(rng.integers(2**31)))
        if framework % 3 == 2:  # a slab at that density with a slit pore of width w (Å) in z
            width = float(rng.uniform(4.0, 8.0))
            atoms.set_cell([edge, edge, edge + width])
            kind = f"slit_w{width:.1f}_rho{density:.2f}_C{n_c}"
        else:
            kind = f"bulk_rho{density:.2f}_C{n_c}"
        quenched = _quench(atoms, config, rng)
        for k in range(4):
            frame, md = _maybe_md(quenched, config, rng)
            if framework % 6 == 0 and k == 0:  # the host without Na, as a reference
                yield f"{kind}{md}_Na0", frame, ""
                continue
            n_na = max(1, round(_LOADINGS[slot % len(_LOADINGS)] * n_c / 64))
            slot += 1
            loaded, placed = _insert(frame, n_na, _uniform_box(rng, _lengths(frame)), config)
            if placed:
                yield f"{kind}{md}_Na{placed}", loaded, ""


# --------------------------------------------------------------------------------------------
# layered


def _rect_graphene(nx: int, ny: int, height: float = 2 * _BUILD_VACUUM) -> Atoms:
    """Graphene in an orthogonal nx×ny supercell of the 4-atom (a × a√3) cell, mid-height.

    The rectangular cell (LAMMPS needs an orthorhombic one) is the supercell of ASE's
    hexagonal graphene cell with vectors a₁ and a₁ + 2a₂.
    """
    layer = make_supercell(graphene(a=_GRAPHENE_A, vacuum=height / 2),
                           [[1, 0, 0], [1, 2, 0], [0, 0, 1]])
    layer.set_cell(np.diag(np.diag(layer.cell.array)), scale_atoms=False)
    layer = layer.repeat((nx, ny, 1))
    layer.positions[:, 2] = height / 2
    layer.pbc = True
    layer.wrap()
    return layer


def _stack(layers: list[Atoms], spacing: float, stacking: str, periodic: bool) -> Atoms:
    """Stack layers ``spacing`` Å apart, AA or AB (every other layer shifted by one bond).

    Periodic: the cell height is n·spacing (graphite); otherwise layers sit in vacuum.
    """
    shift = np.array([_GRAPHENE_A / 2, _GRAPHENE_A / (2 * math.sqrt(3)), 0.0])  # one C–C bond
    height = len(layers) * spacing if periodic else (len(layers) - 1) * spacing + 2 * _BUILD_VACUUM
    z0 = spacing / 2 if periodic else _BUILD_VACUUM
    stacked = Atoms(cell=np.diag([*layers[0].cell.lengths()[:2], height]), pbc=True)
    for k, layer in enumerate(layers):
        layer = layer.copy()
        z = layer.positions[:, 2]
        height_k = layer.cell[2, 2]
        z = z[0] + (z - z[0]) - height_k * np.round((z - z[0]) / height_k)  # unwrap across z
        layer.positions[:, 2] = z + z0 + k * spacing - z.mean()
        if stacking == "AB" and k % 2:
            layer.positions += shift
        stacked += layer
    stacked.wrap()
    return stacked


def _layer_frames(layers: list[Atoms], config: DatasetConfig, rng: np.random.Generator,
                  coolest: bool = False) -> tuple[list[Atoms], str]:
    """NVT snapshots of each layer on its own (same temperature), or the layers as they are.

    Layers are run separately because the carbon potential has no interlayer term: run
    together, they would drift apart and lose their spacing and registry. ``coolest`` uses
    the lowest of ``md_temperatures``: independently rippled hot layers leave no room for a
    full NaC6/NaC8 Na layer in a 3.3–3.7 Å gap.
    """
    if rng.random() >= config.md_fraction:
        return layers, ""
    temperature = float(rng.choice(config.md_temperatures))
    if coolest:
        temperature = float(min(config.md_temperatures))
    frames = [_thermalise(layer, temperature, config, rng) for layer in layers]
    return frames, f"_md{temperature:.0f}K"


def _hollow_lattice(sites: list[_Site], pattern: str) -> list[_Site]:
    """Hollow sites of one superlattice: ``"sqrt3"`` (√3×√3, NaC6) or ``"2x2"`` (NaC8).

    The in-plane displacement from the first hollow to each other one is written in the
    graphene basis a₁ = a(1, 0), a₂ = a(1/2, √3/2); the √3×√3 sublattice holds the integer
    (u, v) with v − u divisible by 3, the 2×2 one those with u and v even.
    """
    hollows = [s for s in sites if s.kind == "hollow"]
    basis = np.array([[_GRAPHENE_A, 0.0], [_GRAPHENE_A / 2, _GRAPHENE_A * math.sqrt(3) / 2]])
    chosen = []
    for site in hollows:
        u, v = np.rint(np.linalg.solve(basis.T, (site.position - hollows[0].position)[:2]))
        if (pattern == "sqrt3" and (v - u) % 3 == 0) or (pattern == "2x2" and u % 2 == v % 2 == 0):
            chosen.append(site)
    return chosen


def _gap_na(atoms: Atoms, z_mid: float, sites: list[_Site], count: int,
            rng: np.random.Generator, config: DatasetConfig) -> tuple[Atoms, int]:
    """Put up to ``count`` Na in the interlayer gap near height ``z_mid`` over hollow ``sites``.

    Each Na sits half-way between the carbon below and above it (the mean heights of the C
    within 1.8 Å in-plane on either side of ``z_mid``), so rippled layers from MD keep it
    centred in the gap.
    """
    lengths = _lengths(atoms)
    carbon = atoms.positions[atoms.numbers == 6]
    sodium = list(atoms.positions[atoms.numbers == 11])
    placed: list[np.ndarray] = []
    for k in rng.permutation(len(sites)):
        if len(placed) == count:
            break
        point = np.array([*sites[k].position[:2], z_mid])
        d = _mic(carbon - point, lengths)
        near = np.hypot(d[:, 0], d[:, 1]) < 1.8
        below, above = d[near & (d[:, 2] < 0), 2], d[near & (d[:, 2] > 0), 2]
        if len(below) and len(above):
            point[2] += (below.mean() + above.mean()) / 2
        if (_nearest(point[None], carbon, lengths)[0] >= config.na_c_min
                and _nearest(point[None], np.array(sodium + placed).reshape(-1, 3),
                             lengths)[0] >= config.na_na_min):
            placed.append(point)
    return _add_na(atoms, placed), len(placed)


def _gap_sampler(rng: np.random.Generator, lengths: np.ndarray, z_mid: float
                 ) -> Callable[[int], np.ndarray]:
    """Random points in the mid-plane (±0.2 Å) of an interlayer gap."""
    def sample(n: int) -> np.ndarray:
        points = rng.random((n, 3)) * lengths
        points[:, 2] = z_mid + rng.uniform(-0.2, 0.2, n)
        return points
    return sample


def _layered(config: DatasetConfig, rng: np.random.Generator
             ) -> Iterator[tuple[str, Atoms, str]]:
    """Cycle of 12: 3 graphene, 4 bilayers, 3 graphite, 2 nanoribbons.

    Spacings cycle through :data:`SPACINGS` for bilayers and for graphite, defects (pristine,
    MV, DV, SW) over graphene and bilayers, so every 12 structures cover all spacings,
    defects and both edge types.
    """
    cycle = ("graphene", "bilayer", "graphite", "ribbon", "bilayer", "graphene", "ribbon",
             "graphite", "bilayer", "graphene", "graphite", "bilayer")
    counters = dict.fromkeys(("defect", "bilayer", "graphite", "ribbon"), 0)
    up, down = np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, -1.0])
    for k in itertools.count():
        kind = cycle[k % len(cycle)]
        if kind in ("bilayer", "graphite"):
            # Bilayers take the even, graphite the odd steps through SPACINGS (mod 7), so both
            # see every spacing and the first 12 structures already cover 3.3–4.5 Å.
            step = 2 * counters[kind] + (kind == "graphite")
            spacing = SPACINGS[step % len(SPACINGS)]
        if kind in ("graphene", "bilayer"):
            defect = _DEFECTS[counters["defect"] % len(_DEFECTS)]
            counters["defect"] += 1
        if kind == "graphene":
            sizes = [(nx, ny) for nx, ny in ((3, 2), (4, 2), (4, 3), (5, 3))
                     if 4 * nx * ny + 4 <= config.max_atoms]  # 4 C per cell, up to 4 Na
            nx, ny = sizes[int(rng.integers(len(sizes)))]
            layer = _defect(_rect_graphene(nx, ny), defect, rng, config, lambda p: up)
            layer, md = _maybe_md(layer, config, rng)
            site_kind = ["hollow", "top", "bridge", "mixed"][int(rng.integers(4))]
            kinds = ("hollow", "top", "bridge") if site_kind == "mixed" else (site_kind,)
            loaded, n_na = _adsorb(layer, _sites(layer), int(rng.integers(1, 5)), rng, config,
                                   lambda p: up if rng.random() < 0.5 else down, kinds,
                                   defects_first=defect != "pristine")
            yield f"graphene_{nx}x{ny}_{defect}{md}_{site_kind}_Na{n_na}", loaded, "z"
        elif kind == "bilayer":
            stacking = ("AB", "AA")[counters["bilayer"] % 2]
            counters["bilayer"] += 1
            sizes = [(nx, ny) for nx, ny in ((3, 2), (4, 2)) if 8 * nx * ny + 6 <= config.max_atoms]
            nx, ny = sizes[int(rng.integers(len(sizes)))]
            top = _defect(_rect_graphene(nx, ny), defect, rng, config, lambda p: up)
            layers, md = _layer_frames([_rect_graphene(nx, ny), top], config, rng)
            atoms = _stack(layers, spacing, stacking, periodic=False)
            lower = atoms[: len(layers[0])]
            upper = atoms[len(layers[0]):]
            z_mid = _BUILD_VACUUM + spacing / 2
            mode = "ads" if stacking == "AB" and spacing < 3.9 else \
                ("int", "ads", "int+ads")[int(rng.integers(3))]
            n_na = 0
            if "int" in mode:
                count = int(rng.integers(1, 4))
                if stacking == "AA":
                    atoms, n_na = _gap_na(atoms, z_mid, _sites(lower), count, rng, config)
                else:
                    atoms, n_na = _insert(atoms, count,
                                          _gap_sampler(rng, _lengths(atoms), z_mid), config)
            if "ads" in mode:
                outer = _sites(upper) + _sites(lower)
                normal = lambda p, zm=z_mid: up if p[2] > zm else down  # noqa: E731
                atoms, placed = _adsorb(atoms, outer, int(rng.integers(1, 4)), rng, config,
                                        normal, defects_first=defect != "pristine")
                n_na += placed
            yield (f"bilayer_{stacking}_d{spacing:.1f}_{defect}{md}_{mode}_Na{n_na}",
                   atoms, "z")
        elif kind == "graphite":
            variant = ("NaC6", "NaC8", "dilute", "AB")[counters["graphite"] % 4]
            counters["graphite"] += 1
            nx, ny = (2, 2) if variant == "NaC8" else (3, 2)
            layers, md = _layer_frames([_rect_graphene(nx, ny) for _ in range(2)], config, rng,
                                       coolest=variant in ("NaC6", "NaC8"))
            stacking = "AB" if variant == "AB" else "AA"
            atoms = _stack(layers, spacing, stacking, periodic=True)
            gaps = [spacing, 2 * spacing]  # mid-planes of the two gaps (one across the boundary)
            lower = atoms[: len(layers[0])]
            n_na = 0
            if variant in ("NaC6", "NaC8"):
                pattern = _hollow_lattice(_sites(lower), "sqrt3" if variant == "NaC6" else "2x2")
                for z_mid in gaps:
                    atoms, placed = _gap_na(atoms, z_mid % atoms.cell[2, 2], pattern,
                                            len(pattern), rng, config)
                    n_na += placed
                name = f"graphite_AA_d{spacing:.1f}{md}_{variant}_Na{n_na}"
            elif variant == "dilute":
                for z_mid in gaps:
                    atoms, placed = _gap_na(atoms, z_mid % atoms.cell[2, 2],
                                            [s for s in _sites(lower) if s.kind == "hollow"],
                                            int(rng.integers(1, 4)), rng, config)
                    n_na += placed
                name = f"graphite_AA_d{spacing:.1f}{md}_dilute_Na{n_na}"
            elif spacing >= 3.9:  # AB: only wide gaps leave room for Na (d/2 ≳ na_c_min)
                for z_mid in gaps:
                    atoms, placed = _insert(
                        atoms, int(rng.integers(1, 3)),
                        _gap_sampler(rng, _lengths(atoms), z_mid % atoms.cell[2, 2]), config)
                    n_na += placed
                name = f"graphite_AB_d{spacing:.1f}{md}_dilute_Na{n_na}"
            else:  # narrow AB graphite: the Na-free host reference
                name = f"graphite_AB_d{spacing:.1f}{md}_Na0"
            yield name, atoms, ""
        else:  # nanoribbon in the xz plane, periodic along z, normal along y
            edge = ("zigzag", "armchair")[counters["ribbon"] % 2]
            counters["ribbon"] += 1
            width = int(rng.integers(4, 7))
            length = int(rng.integers(2, 4)) if edge == "zigzag" else 2
            ribbon = graphene_nanoribbon(width, length, type=edge, saturated=False,
                                         C_C=_CC_BOND, vacuum=_BUILD_VACUUM)
            ribbon.pbc = True
            ribbon, md = _maybe_md(ribbon, config, rng)
            where = ("edge", "surface")[int(rng.integers(2))]
            kinds = ("edge",) if where == "edge" else ("hollow", "top", "bridge")
            side = np.array([0.0, 1.0, 0.0])
            loaded, n_na = _adsorb(ribbon, _sites(ribbon), int(rng.integers(1, 4)), rng, config,
                                   lambda p, s=side: s if rng.random() < 0.5 else -s, kinds)
            yield f"ribbon_{edge}_w{width}{md}_{where}_Na{n_na}", loaded, "xy"


# --------------------------------------------------------------------------------------------
# fullerene


def fullerene(n_carbon: int, potential: str = "tersoff") -> Atoms:
    """C60, C70, C80 (D5d) or C90 (D5h), centred at the origin, minimised if built here.

    C60 comes from :func:`ase.build.molecule`. The larger cages are (5,5) armchair tubes capped
    by the two halves of C60: C60 is cut across the five-fold axis through a pentagon centre,
    between its two equatorial 10-atom layers (which form an armchair belt: each is the other
    rotated by 36° and shifted 1.18 Å along the axis), and ``(n − 60)/10`` further belts are
    inserted by continuing that screw, the top half moving with the last belt. The cage is
    then minimised with the carbon potential.

    Parameters
    ----------
    n_carbon
        60, 70, 80 or 90.
    potential
        Carbon potential for the minimisation (a name in ``CARBON_POTENTIALS``).
    """
    if n_carbon not in (60, 70, 80, 90):
        raise InputError(f"fullerene size must be 60, 70, 80 or 90, got {n_carbon}")
    cage = molecule("C60")
    cage.positions -= cage.positions.mean(axis=0)
    if n_carbon == 60:
        return cage
    belts = (n_carbon - 60) // 10
    box = Atoms(cage.get_chemical_symbols(), positions=cage.positions + 15.0,
                cell=np.eye(3) * 30.0, pbc=True)
    pentagon = next(ring for ring, _ in _rings(box, _graph(box)) if len(ring) == 5)
    axis = cage.positions[sorted(pentagon)].mean(axis=0)
    axis /= np.linalg.norm(axis)
    e1 = np.cross(axis, [1.0, 0.0, 0.0] if abs(axis[0]) < 0.9 else [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    frame = np.array([e1, np.cross(axis, e1), axis])
    q = cage.positions @ frame.T  # axis along z
    order = np.argsort(q[:, 2])
    bottom_belt, top_belt = q[order[20:30]], q[order[30:40]]
    rise = top_belt[:, 2].mean() - bottom_belt[:, 2].mean()
    z_axis = np.array([0.0, 0.0, 1.0])
    twist = min((math.radians(s * 36.0) for s in (1, -1)),
                key=lambda t: _nearest(_rotate(bottom_belt, z_axis, t) + rise * z_axis,
                                       top_belt, np.full(3, 1e9)).max())
    upper = q[order[30:]]
    parts = [q[order[:30]]]
    parts += [_rotate(bottom_belt, z_axis, twist * j) + rise * j * z_axis
              for j in range(1, belts + 1)]
    parts.append(_rotate(upper, z_axis, twist * belts) + rise * belts * z_axis)
    positions = np.vstack(parts)
    positions -= positions.mean(axis=0)
    built = Atoms(f"C{n_carbon}", positions=positions + 15.0, cell=np.eye(3) * 30.0, pbc=True)
    relaxed = _minimise(built, DatasetConfig(carbon_potential=potential), fmax=0.01, steps=3000)
    relaxed.positions -= relaxed.positions.mean(axis=0)
    return Atoms(f"C{n_carbon}", positions=relaxed.positions)


def _in_box(atoms: Atoms, margin: float) -> Atoms:
    """Centre a molecule in a cubic periodic box ``margin`` Å wider than it on each side."""
    edge = float(np.ptp(atoms.positions, axis=0).max() + 2 * margin)
    boxed = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, pbc=True,
                  cell=np.eye(3) * edge)
    boxed.center()
    return boxed


def _ball_sampler(rng: np.random.Generator, centre: np.ndarray, radius: float
                  ) -> Callable[[int], np.ndarray]:
    """Uniform random points in a ball."""
    def sample(n: int) -> np.ndarray:
        direction = rng.normal(size=(n, 3))
        direction /= np.linalg.norm(direction, axis=1)[:, None]
        return centre + direction * radius * rng.random(n)[:, None] ** (1 / 3)
    return sample


def _fullerene(config: DatasetConfig, rng: np.random.Generator
               ) -> Iterator[tuple[str, Atoms, str]]:
    """Cages C60, C70, C80, C60 Stone–Wales, C90, C59 with Na inside, outside or both."""
    sizes = {"C60": 60, "C70": 70, "C80": 80, "C60-SW": 60, "C90": 90, "C59": 59}
    cages = [name for name, n in sizes.items() if n + 2 <= config.max_atoms]  # room for Na
    built: dict[str, Atoms] = {}
    for k in itertools.count():
        name = cages[k % len(cages)]
        mode = ("endo", "exo", "endo+exo")[(k // len(cages)) % 3]
        if name not in built:
            base = fullerene(max(60, sizes[name]), config.carbon_potential)
            cage = _in_box(base, _BUILD_VACUUM / 2)
            if name in ("C60-SW", "C59"):
                centre = cage.positions.mean(axis=0)
                cage = _defect(cage, "SW" if name == "C60-SW" else "MV", rng, config,
                               lambda p, c=centre: (p - c) / np.linalg.norm(p - c))
            built[name] = cage
        cage, md = _maybe_md(built[name], config, rng)
        if k % 15 == 14:  # a bare cage as a Na-free reference
            yield f"{name}{md}_Na0", cage, "xyz"
            continue
        centre = cage.positions.mean(axis=0)
        room = config.max_atoms - len(cage)
        atoms, n_in, n_out = cage, 0, 0
        if "endo" in mode:
            radius = np.linalg.norm(cage.positions - centre, axis=1).min() - 1.0
            most = {"C60": 1, "C60-SW": 1, "C59": 1, "C70": 2}.get(name, 3)
            atoms, n_in = _insert(atoms, int(rng.integers(1, most + 1)),
                                  _ball_sampler(rng, centre, radius), config)
        if "exo" in mode:
            atoms, n_out = _adsorb(atoms, _sites(cage), min(room - n_in, int(rng.integers(1, 7))),
                                   rng, config,
                                   lambda p, c=centre: (p - c) / np.linalg.norm(p - c))
        if n_in + n_out:
            yield f"{name}{md}_endo{n_in}_exo{n_out}_Na{n_in + n_out}", atoms, "xyz"


# --------------------------------------------------------------------------------------------
# nanotube


def _tube(n: int, m: int, max_carbon: int) -> tuple[Atoms, int, float]:
    """An (n, m) tube along z, centred in a square periodic box; cells and radius (Å).

    Enough translational cells for a period of at least 4.9 Å (two Na fit along the axis),
    fewer if ``max_carbon`` demands.
    """
    unit = nanotube(n, m, length=1, bond=_CC_BOND)
    period = unit.cell[2, 2]
    cells = max(1, math.ceil(4.9 / period))
    while cells > 1 and cells * len(unit) > max_carbon:
        cells -= 1
    tube = nanotube(n, m, length=cells, bond=_CC_BOND)
    radius = float(np.linalg.norm(tube.positions[:, :2], axis=1).mean())
    side = 2 * radius + 2 * _BUILD_VACUUM
    tube.positions[:, :2] += side / 2
    tube.set_cell([side, side, cells * period])
    tube.pbc = True
    return tube, cells, radius


def _cylinder_sampler(rng: np.random.Generator, axis: np.ndarray, radius: float, length: float
                      ) -> Callable[[int], np.ndarray]:
    """Uniform random points in a cylinder along z through ``axis`` (x, y)."""
    def sample(n: int) -> np.ndarray:
        r = radius * np.sqrt(rng.random(n))
        phi = rng.uniform(0, 2 * math.pi, n)
        return np.column_stack([axis[0] + r * np.cos(phi), axis[1] + r * np.sin(phi),
                                rng.random(n) * length])
    return sample


def _nanotube(config: DatasetConfig, rng: np.random.Generator
              ) -> Iterator[tuple[str, Atoms, str]]:
    """Tubes of :data:`CHIRALITIES` (pristine, MV, SW), Na inside, outside or both."""
    for k in itertools.count():
        n, m = CHIRALITIES[k % len(CHIRALITIES)]
        mode = ("in", "out", "in+out")[(k // len(CHIRALITIES)) % 3]
        defect = ("pristine", "MV", "pristine", "SW")[k % 4]
        tube, cells, radius = _tube(n, m, config.max_atoms - 12)
        if len(tube) + 1 > config.max_atoms:
            continue
        axis = tube.positions[:, :2].mean(axis=0)

        def radial(p: np.ndarray, axis: np.ndarray = axis) -> np.ndarray:
            d = np.array([p[0] - axis[0], p[1] - axis[1], 0.0])
            return d / np.linalg.norm(d)

        tube = _defect(tube, defect, rng, config, radial)
        tube, md = _maybe_md(tube, config, rng)
        name = f"cnt_{n}-{m}_L{cells}_{defect}{md}"
        if k % 15 == 14:  # a bare tube as a Na-free reference
            yield f"{name}_Na0", tube, "xy"
            continue
        room = config.max_atoms - len(tube)
        atoms, n_in, n_out = tube, 0, 0
        if "in" in mode.split("+"):
            atoms, n_in = _insert(atoms, min(room, int(rng.integers(1, 5))),
                                  _cylinder_sampler(rng, axis, radius - 1.0, tube.cell[2, 2]),
                                  config)
        if "out" in mode.split("+"):
            atoms, n_out = _adsorb(atoms, _sites(tube), min(room - n_in, int(rng.integers(1, 7))),
                                   rng, config, radial, defects_first=defect != "pristine")
        if n_in + n_out:
            yield f"{name}_in{n_in}_out{n_out}_Na{n_in + n_out}", atoms, "xy"


# --------------------------------------------------------------------------------------------
# sodium


def _sodium(config: DatasetConfig, rng: np.random.Generator
            ) -> Iterator[tuple[str, Atoms, str]]:
    """bcc, fcc, hcp at scaled lattice constants, liquid-like cells and Na2–Na13 clusters."""
    cycle = ("bcc", "cluster", "fcc", "liquid", "hcp", "cluster")
    for k in itertools.count():
        kind = cycle[k % len(cycle)]
        scale = float(rng.uniform(0.92, 1.06))
        if kind == "bcc":
            repeat = 3 if rng.random() < 0.5 else 2  # 54 or 16 atoms
            atoms = bulk("Na", "bcc", a=_NA_BCC_A * scale, cubic=True).repeat(repeat)
            yield f"bcc_a{_NA_BCC_A * scale:.2f}_Na{len(atoms)}", atoms, ""
        elif kind == "fcc":
            atoms = bulk("Na", "fcc", a=_NA_FCC_A * scale, cubic=True).repeat(2)
            yield f"fcc_a{_NA_FCC_A * scale:.2f}_Na{len(atoms)}", atoms, ""
        elif kind == "hcp":
            a = _NA_HCP_A * scale
            atoms = bulk("Na", "hcp", a=a, c=a * math.sqrt(8 / 3), orthorhombic=True)
            atoms = atoms.repeat((2, 2, 2))
            yield f"hcp_a{a:.2f}_Na{len(atoms)}", atoms, ""
        elif kind == "liquid":
            # A liquid-like snapshot without a Na potential: bcc expanded by 1–4 % (Na melts
            # with ~2.5 % volume expansion) and rattled far beyond the Lindemann ratio; atoms
            # that would come closer than 2.9 Å keep their lattice site.
            a = _NA_BCC_A * float(rng.uniform(1.01, 1.04))
            std = float(rng.uniform(0.25, 0.45))
            atoms = bulk("Na", "bcc", a=a, cubic=True).repeat(3)
            _rattle(atoms, std, rng, {("Na", "Na"): 2.9})
            yield f"liquid_s{std:.2f}_Na{len(atoms)}", atoms, ""
        else:
            # Na_n for n = 2…13: the n atoms of a 13-atom icosahedron nearest to a random
            # point near its surface, a compact starting point for DFT relaxation.
            size = int(rng.integers(2, 14))
            neighbour = float(rng.uniform(3.3, 3.8))  # centre–vertex distance (Å)
            ico = Icosahedron("Na", noshells=2, latticeconstant=neighbour * math.sqrt(2))
            ico.positions -= ico.positions.mean(axis=0)
            anchor = rng.normal(size=3)
            anchor *= 1.5 * neighbour / np.linalg.norm(anchor)
            keep = np.argsort(np.linalg.norm(ico.positions - anchor, axis=1))[:size]
            cluster = Atoms(f"Na{size}", positions=ico.positions[np.sort(keep)])
            yield f"cluster_Na{size}", _in_box(cluster, _BUILD_VACUUM / 2), "xyz"


_GENERATORS: dict[str, Callable[[DatasetConfig, np.random.Generator],
                                Iterator[tuple[str, Atoms, str]]]] = {
    "disordered": _disordered,
    "layered": _layered,
    "fullerene": _fullerene,
    "nanotube": _nanotube,
    "sodium": _sodium,
}
