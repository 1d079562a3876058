"""Local insertion and removal energies of Na with a NEP model, and candidate Na positions.

A NEP energy is a sum of site energies ``E = sum_i E_i``, and ``E_i`` depends only on the
neighbours of atom ``i`` within the model's cut-off ``rc`` (the angular cut-off and a ZBL
outer cut-off are not larger).  Adding one Na at ``r`` therefore changes only the site
energies of the atoms within ``rc`` of ``r`` (the *inner* atoms) and adds the Na's own site
energy::

    dE(r) = E(S + Na@r) - E(S) = E_Na + sum_{j inner} (E_j(S + Na@r) - E_j(S))

The environments of the inner atoms lie within ``2 rc`` of ``r``, so ``E_j(S + Na@r)`` comes
exactly from a *cluster*: the atoms (periodic images included) within ``2 rc`` of ``r`` plus
the Na, evaluated in a box wide enough that the engine sees no images.  ``E_j(S)`` comes from
one full periodic evaluation of ``S`` per state, shared by all candidates.  Removal energies
(``E(S) - E(S - atom i)``, the insertion energy of an atom already present) use the same
cluster without that atom.

The same identity lets many candidates share one evaluation: if any two are more than ``2 rc``
apart (periodic images included), no atom sees two of them, so inserting a whole group into
the periodic state at once and summing each candidate's own neighbourhood gives every
candidate's single-insertion energy.  :class:`LocalNEP` picks per call whichever of the two
(one cluster per candidate, or one full evaluation per group) evaluates fewer atoms.  Site
energies are taken from NEP descriptors where the model allows (no forces, network only for
the atoms needed, checked against the engine on every state).  Scoring 1000 candidates in the
study's 43.6 Å box (6233 C) on one core takes about 9 s with a 6 Å cut-off and 28 s with 8 Å
(random-weight NEP4 with GPUMD's default sizes; ``benchmarks/bench_insertion.py``).

The identities are exact when every cell thickness exceeds ``2 rc``: then an inner atom sees
only one periodic image of the new Na.  Thinner cells are evaluated with the full periodic
model per candidate instead (exact, and cheap for such small cells).

Clusters are evaluated in a cubic box of side ``2 R + rc + 1`` Å (``R`` the cluster radius),
well above the ``2.5 rc`` below which calorine's NEP engine falls back to a quadratic neighbour
search.  Building an engine re-reads the model and allocates per atom, so engines are cached
per system size and clusters are padded to a multiple of 64 atoms with isolated atoms.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from pathlib import Path
from typing import Literal

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols
from ase.units import kB
from matscipy.neighbours import neighbour_list
from scipy.spatial import cKDTree

from hardcarbon.errors import InputError
from hardcarbon.forcefield.nep import nep_calculator, nep_elements

#: Extra distance (Å) added to the inner radius and the cluster radius.
DEFAULT_MARGIN = 0.05

_NA = atomic_numbers["Na"]


def nep_cutoff(path: str | Path) -> float:
    """Largest interaction range (Å) of a nep.txt: radial, angular and ZBL outer cut-offs.

    Typewise cut-offs (one radial/angular pair per element) are read as well; the largest
    value is returned.
    """
    path = Path(path)
    nep_elements(path)  # one-line error for a file that is not a NEP model
    cutoffs: list[float] = []
    with path.open() as handle:
        for _, line in zip(range(8), handle, strict=False):
            fields = line.split()
            if fields and fields[0] == "cutoff" and len(fields) >= 5:
                cutoffs += [float(v) for v in fields[1:-2]]
            elif fields and fields[0] == "zbl" and len(fields) >= 3:
                cutoffs.append(float(fields[2]))
    if not cutoffs or not all(np.isfinite(cutoffs)) or max(cutoffs) <= 0:
        raise InputError(f"NEP model {path} has no valid 'cutoff' line: the file is corrupt")
    return max(cutoffs)


def _check_periodic(atoms: Atoms) -> None:
    if not np.all(atoms.pbc):
        raise InputError(
            "the structure must be periodic in all three directions (pbc=True): "
            "give a bulk hard-carbon cell"
        )
    if abs(atoms.cell.volume) < 1e-6:
        raise InputError("the structure's cell has no volume: give all three cell vectors")


def cell_thickness(cell: np.ndarray) -> np.ndarray:
    """Distances (Å) between opposite faces of the cell, one per cell vector."""
    cell = np.asarray(cell, dtype=float)
    volume = abs(np.linalg.det(cell))
    return np.array(
        [volume / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)]
    )


def _wrap(points: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Cartesian points (Å) mapped into the cell (fractional coordinates in [0, 1))."""
    frac = np.linalg.solve(cell.T, np.atleast_2d(points).T).T
    frac -= np.floor(frac)
    return frac @ cell


class PeriodicImages:
    """Periodic images of points that lie within ``pad`` of the cell, in a k-d tree.

    Any point inside the cell finds, with :meth:`query_ball`, every image of every atom within
    ``pad`` of it, for any cell shape (general triclinic cells included).

    Parameters
    ----------
    positions : ndarray, shape (n, 3)
        Cartesian positions (Å); wrapped into the cell.
    cell : ndarray, shape (3, 3)
        Cell vectors as rows (Å), periodic in all three directions.
    pad : float
        Largest query radius (Å).
    """

    def __init__(self, positions: np.ndarray, cell: np.ndarray, pad: float) -> None:
        self.cell = np.asarray(cell, dtype=float)
        frac = np.linalg.solve(self.cell.T, np.asarray(positions, dtype=float).T).T
        frac -= np.floor(frac)
        frac_pad = pad / cell_thickness(self.cell)
        reach = np.ceil(frac_pad).astype(int)
        chunks, owners = [], []
        for shift in itertools.product(*(range(-k, k + 1) for k in reach)):
            shifted = frac + np.asarray(shift, dtype=float)
            keep = np.all((shifted >= -frac_pad) & (shifted < 1.0 + frac_pad), axis=1)
            chunks.append(shifted[keep] @ self.cell)
            owners.append(np.flatnonzero(keep))
        self.positions = np.concatenate(chunks) if chunks else np.empty((0, 3))
        self.owner = np.concatenate(owners) if owners else np.empty(0, dtype=int)
        self.tree = cKDTree(self.positions) if len(self.positions) else None

    def query_ball(self, point: np.ndarray, radius: float) -> np.ndarray:
        """Indices of the images within ``radius`` (Å) of ``point`` (inside the cell), sorted."""
        if self.tree is None:
            return np.empty(0, dtype=int)
        return np.sort(np.asarray(self.tree.query_ball_point(point, radius), dtype=int))

    def nearest(self, points: np.ndarray, radius: float) -> np.ndarray:
        """Distance (Å) from each point (inside the cell) to the nearest image; inf past radius."""
        if self.tree is None:
            return np.full(len(points), np.inf)
        return self.tree.query(points, k=1, distance_upper_bound=radius)[0]


#: ZBL constants of GPUMD's NEP: Coulomb factor e^2/(4 pi eps0) (eV Å), the inverse of the
#: universal screening length factor 0.46848 (1/Å), and the universal screening function.
_ZBL_COULOMB = 14.399645
_ZBL_A_INV = 2.134563
_ZBL_SCREENING = ((0.18175, 3.1998), (0.50986, 0.94229), (0.28022, 0.4029), (0.02817, 0.20162))
#: GPUMD's covalent radii (Å) that set the typewise ZBL cut-offs, for the elements of the Na–C
#: models; a typewise model with other elements is evaluated by the engine instead.
_ZBL_COVALENT_RADII = {"C": 1.0, "Na": 1.86667}

#: Largest difference (eV) between descriptor-based and engine site energies accepted when a
#: state is checked; above it the engine's energies are used throughout.
_FAST_TOLERANCE = 1e-8


class DescriptorEnergies:
    """Site energies of chosen atoms from calorine's NEP descriptors, without forces.

    For a NEP4 potential the site energy of atom ``i`` of element ``t`` is
    ``w1_t . tanh(W0_t q_i - b0_t) - b1`` of its (scaled) descriptor ``q_i``, plus half the
    ZBL repulsion of its pairs within the ZBL outer cut-off when the model has one (for a
    typewise ZBL, a pair's outer cut-off is the factor times the sum of the covalent radii,
    capped at the model's outer cut-off, and its inner cut-off is 0).
    Computing descriptors costs about half of an energy-and-force evaluation, and the network
    runs only for the atoms asked for.  :meth:`load` returns None for models this does not
    cover (NEP3, two hidden layers, charges, dispersion, flexible ZBL, typewise ZBL beyond C
    and Na); callers compare the result with the engine's energies before relying on it.
    """

    def __init__(self, model) -> None:
        self.networks = {
            t: (
                np.asarray(model.ann_parameters[t]["w0"], dtype=float),
                np.asarray(model.ann_parameters[t]["b0"], dtype=float).ravel(),
                np.asarray(model.ann_parameters[t]["w1"], dtype=float).ravel(),
            )
            for t in model.types
        }
        self.bias = float(model.ann_parameters["b1"])
        self.zbl = None if model.zbl is None else (float(model.zbl[0]), float(model.zbl[1]))
        self.typewise = model.zbl_typewise_cutoff_factor
        # covalent radius by atomic number (NaN where unknown), for the typewise cut-offs
        self.radii = np.array([_ZBL_COVALENT_RADII.get(s, np.nan) for s in chemical_symbols])

    @classmethod
    def load(cls, path: str | Path) -> DescriptorEnergies | None:
        """The evaluator of the model in ``path``, or None when the model is not covered."""
        try:
            from calorine.nep import read_model

            model = read_model(str(path))
        except Exception:  # any model calorine cannot parse falls back to the engine
            return None
        zbl = model.zbl
        covered = (
            model.version == 4
            and model.model_type == "potential"
            and not model.n_neuron_second_layer
            and not getattr(model, "vdw", False)
            and (zbl is None or zbl[1] > 0)
            and (model.zbl_typewise_cutoff_factor is None
                 or set(model.types) <= set(_ZBL_COVALENT_RADII))
        )
        return cls(model) if covered else None

    def __call__(self, calc, atoms: Atoms, rows: np.ndarray) -> np.ndarray:
        """Site energies (eV) of ``atoms[rows]`` with the calorine engine ``calc``."""
        calc.calculate(atoms, ["descriptors"])
        descriptors = np.asarray(calc.results["descriptors"])[rows]
        symbols = np.asarray(atoms.get_chemical_symbols())[rows]
        out = np.empty(len(rows))
        for element, (w0, b0, w1) in self.networks.items():
            mine = symbols == element
            if mine.any():
                out[mine] = np.tanh(descriptors[mine] @ w0.T - b0) @ w1 - self.bias
        if self.zbl is not None:
            out += self._zbl(atoms, rows)
        return out

    def _zbl(self, atoms: Atoms, rows: np.ndarray) -> np.ndarray:
        inner, outer = self.zbl
        i, j, d = neighbour_list("ijd", atoms, outer)
        z = atoms.numbers.astype(float)
        zi, zj = z[i], z[j]
        if self.typewise is not None:
            radii = self.radii[atoms.numbers]
            outer = np.minimum(self.typewise * (radii[i] + radii[j]), outer)
            inner = 0.0
            i, j, d, zi, zj, outer = (v[d < outer] for v in (i, j, d, zi, zj, outer))
        x = d * (zi**0.23 + zj**0.23) * _ZBL_A_INV
        phi = sum(c * np.exp(-k * x) for c, k in _ZBL_SCREENING)
        switch = np.where(d < inner, 1.0, 0.5 * np.cos(np.pi * (d - inner) / (outer - inner)) + 0.5)
        pair = 0.5 * _ZBL_COULOMB * zi * zj * phi / d * switch
        return np.bincount(i, weights=pair, minlength=len(atoms))[rows]


Method = Literal["auto", "cluster", "grouped", "full"]


class LocalNEP:
    """Insertion and removal energies of single atoms in one state, evaluated locally.

    One full periodic evaluation of ``atoms`` gives the reference site energies ``E_j(S)``.
    The energy change of each insertion (removal) then comes from one of three evaluations,
    all exact (see the module docstring):

    ``"cluster"``
        one evaluation per candidate of the cluster within ``2 rc`` of it, in a vacuum box
        (padded with isolated atoms to a multiple of 64 atoms so that engines are reused);
    ``"grouped"``
        candidates are grouped so that any two in a group are more than ``2 rc`` apart
        (periodic images included), and each group is inserted (removed) at once in one full
        periodic evaluation: no atom sees two of them, so every candidate's energy change is
        still the sum over its own neighbourhood;
    ``"full"``
        one full periodic evaluation per candidate (used when a cell thickness is below
        ``2 rc``, where the local identity does not hold).

    ``"auto"`` takes ``"full"`` for thin cells and otherwise whichever of ``"cluster"`` and
    ``"grouped"`` evaluates fewer atoms in total.

    Parameters
    ----------
    atoms : ase.Atoms
        The state (periodic in all three directions).
    model : str or Path
        The nep.txt; it must cover the elements of ``atoms`` and Na.
    margin : float
        Extra distance (Å) added to the inner radius and to the cluster radius.
    method : {"auto", "cluster", "grouped", "full"}
        How energy changes are evaluated.
    group_size : int, optional
        Most candidates per group of ``"grouped"``; default: as many spheres of radius ``rc``
        as fill 25 % of the cell (22 in the study's box with ``rc`` = 6 Å, 9 with 8 Å).  A cap
        keeps the number of distinct system sizes, and so of engines to build, small.
    cache_atoms : int
        Atom budget of the cached engines (calorine allocates per atom and per neighbour, and
        building one re-reads the model, so engines are kept per system size).
    fast : bool
        Compute the needed site energies from descriptors (:class:`DescriptorEnergies`, about
        twice as fast: no forces, network only for the atoms needed) once they match the
        engine's energies of the state to 1e-8 eV; otherwise the engine's energies are used.

    Attributes
    ----------
    cutoff : float
        Interaction range of the model (Å).
    site_energies : ndarray, shape (len(atoms),)
        Per-atom energies of the state from the full periodic evaluation (eV).
    energy : float
        Total energy of the state (eV), the sum of ``site_energies``.
    local : bool
        Whether every cell thickness exceeds ``2 (rc + margin)``, so that the local methods
        apply.
    fast : bool
        Whether site energies come from descriptors (see ``fast`` above).
    """

    def __init__(
        self,
        atoms: Atoms,
        model: str | Path,
        margin: float = DEFAULT_MARGIN,
        method: Method = "auto",
        group_size: int | None = None,
        cache_atoms: int = 40_000,
        fast: bool = True,
    ) -> None:
        _check_periodic(atoms)
        if not (np.isfinite(margin) and margin >= 0):
            raise InputError(f"margin {margin} Å must be a non-negative number")
        if method not in ("auto", "cluster", "grouped", "full"):
            raise InputError(f"unknown method '{method}': use auto, cluster, grouped or full")
        self.model = Path(model)
        self.elements = sorted(set(atoms.get_chemical_symbols()) | {"Na"})
        nep_calculator(self.model, self.elements)  # one-line error when Na is not covered
        self.cutoff = nep_cutoff(self.model)
        self.margin = float(margin)
        self.method = method
        self.atoms = Atoms(
            numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True
        )
        self.cell = self.atoms.cell.array.copy()
        self._cache: OrderedDict[int, object] = OrderedDict()
        self._cache_atoms = int(cache_atoms)
        self.inner_radius = self.cutoff + self.margin
        self.cluster_radius = self.inner_radius + self.cutoff + self.margin
        self.local = bool(np.all(cell_thickness(self.cell) > 2.0 * self.inner_radius))
        if group_size is None:
            sphere = 4.0 / 3.0 * np.pi * self.inner_radius**3
            group_size = int(0.25 * self.atoms.cell.volume / sphere)
        self.group_size = max(1, int(group_size))
        self._fast = DescriptorEnergies.load(self.model) if fast else None
        self.site_energies = self._site_energies(self.atoms)
        self.energy = float(self.site_energies.sum())
        if self._fast is not None:
            check = self._site_energies(self.atoms, np.arange(len(self.atoms)))
            if not np.all(np.abs(check - self.site_energies) <= _FAST_TOLERANCE):
                self._fast = None
        self.box = 2.0 * self.cluster_radius + self.cutoff + 1.0
        self.images = (
            PeriodicImages(self.atoms.positions, self.cell, self.cluster_radius)
            if self.local
            else None
        )

    # -- engines -------------------------------------------------------------------------------
    def _engine(self, n_atoms: int):
        calc = self._cache.pop(n_atoms, None)
        if calc is None:
            calc = nep_calculator(self.model, self.elements)
        self._cache[n_atoms] = calc
        while len(self._cache) > 1 and sum(self._cache) > self._cache_atoms:
            self._cache.popitem(last=False)
        return calc

    @property
    def fast(self) -> bool:
        """Whether site energies come from descriptors."""
        return self._fast is not None

    def _site_energies(self, atoms: Atoms, rows: np.ndarray | None = None) -> np.ndarray:
        """Site energies (eV) of ``atoms[rows]`` (all atoms, from the engine, when None)."""
        calc = self._engine(len(atoms))
        if rows is not None and self._fast is not None:
            return self._fast(calc, atoms, np.asarray(rows, dtype=int))
        energies = np.asarray(calc.get_potential_energies(atoms), dtype=float).copy()
        return energies if rows is None else energies[rows]

    def _cluster_energies(
        self, numbers: np.ndarray, positions: np.ndarray, rows: np.ndarray
    ) -> np.ndarray:
        """Site energies (eV) of ``rows`` of a cluster (positions relative to its centre, Å).

        The cluster sits in a vacuum box and is padded to a multiple of 64 atoms with isolated
        atoms on a grid more than ``rc`` from everything (periodic images included), in slabs
        beside the cluster, so that clusters of similar size share one engine.
        """
        n = len(numbers)
        n_pad = -n % 64
        side = self.box
        spacing = self.cutoff + 1.0
        per_row = max(1, int(side // spacing))
        n_slabs = -(-n_pad // (per_row * per_row)) if n_pad else 0
        cell = np.diag([side + n_slabs * spacing, side, side])
        pos = np.asarray(positions, dtype=float) + 0.5 * side
        if n_pad:
            k = np.arange(n_pad)
            slab, rest = np.divmod(k, per_row * per_row)
            row, col = np.divmod(rest, per_row)
            parked = np.column_stack(
                [side + (slab + 0.5) * spacing, (row + 0.5) * spacing, (col + 0.5) * spacing]
            )
            pos = np.vstack([pos, parked])
            numbers = np.concatenate([numbers, np.full(n_pad, self.atoms.numbers[0])])
        atoms = Atoms(numbers=numbers, positions=pos, cell=cell, pbc=True)
        return self._site_energies(atoms, rows)

    # -- public ------------------------------------------------------------------------------
    def choose_method(self, n: int, groups: list[np.ndarray] | None = None) -> str:
        """The evaluation used for ``n`` candidates (see the class docstring)."""
        if not self.local:
            return "full"
        if self.method != "auto":
            return self.method
        density = len(self.atoms) / self.atoms.cell.volume
        per_cluster = density * 4.0 / 3.0 * np.pi * self.cluster_radius**3 + 1
        grouped = len(groups) * (len(self.atoms) + self.group_size) if groups else np.inf
        return "grouped" if grouped < n * per_cluster else "cluster"

    def insertion_energies(self, positions: np.ndarray, symbol: str = "Na") -> np.ndarray:
        """``E(S + atom at r) - E(S)`` (eV) for each position ``r`` (Å), one at a time.

        Parameters
        ----------
        positions : array_like, shape (m, 3)
            Cartesian positions of the inserted atom (Å); any periodic image is accepted.
        symbol : str
            Element inserted (covered by the model).

        Returns
        -------
        ndarray, shape (m,)
            Insertion energies (eV), without relaxation.
        """
        points = np.asarray(positions, dtype=float).reshape(-1, 3)
        if not np.all(np.isfinite(points)):
            raise InputError("candidate positions must be finite numbers (Å)")
        if symbol not in self.elements:
            covered = nep_elements(self.model)
            if symbol not in covered:
                raise InputError(f"cannot insert '{symbol}': the model covers "
                                 f"{', '.join(covered)}")
            self.elements = sorted({*self.elements, symbol})
            self._cache.clear()
        number = atomic_numbers[symbol]
        points = _wrap(points, self.cell) if len(points) else points
        out = np.empty(len(points))
        groups, images = self._groups(points) \
            if self.local and self.method in ("auto", "grouped") else (None, None)
        method = self.choose_method(len(points), groups)
        if method == "grouped":
            for group in groups:
                out[group] = self._insert_group(points, group, images, number)
        else:
            for k, r in enumerate(points):
                out[k] = self._insert_cluster(r, number) if method == "cluster" \
                    else self._insert_full(r, number)
        return out

    def removal_energies(self, indices: np.ndarray) -> np.ndarray:
        """``E(S) - E(S without atom i)`` (eV) for each index ``i``, one at a time.

        This is the insertion energy of atom ``i`` into the state without it, the other atoms
        kept where they are.

        Parameters
        ----------
        indices : array_like of int
            Atoms of the state.

        Returns
        -------
        ndarray
            Removal energies (eV), without relaxation.
        """
        idx = np.asarray(indices, dtype=int).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self.atoms)):
            raise InputError(f"atom indices must lie in 0..{len(self.atoms) - 1}")
        if idx.size != np.unique(idx).size:
            raise InputError("atom indices must not repeat")
        out = np.empty(idx.size)
        points = _wrap(self.atoms.positions[idx], self.cell) if idx.size else np.empty((0, 3))
        groups, _ = self._groups(points) \
            if self.local and self.method in ("auto", "grouped") else (None, None)
        method = self.choose_method(idx.size, groups)
        if method == "grouped":
            for group in groups:
                out[group] = self._remove_group(idx[group])
        else:
            for k, i in enumerate(idx):
                out[k] = self._remove_cluster(int(i)) if method == "cluster" \
                    else self._remove_full(int(i))
        return out

    # -- grouping ------------------------------------------------------------------------------
    def _groups(self, points: np.ndarray) -> tuple[list[np.ndarray], PeriodicImages]:
        """Split points (inside the cell) into groups more than ``2 rc`` apart, first fit.

        Returns the groups (indices into ``points``) and the periodic images of the points.
        """
        separation = 2.0 * self.inner_radius
        images = PeriodicImages(points, self.cell, separation)
        members: list[list[int]] = []
        group_of = np.full(len(points), -1)
        for i, r in enumerate(points):
            close = images.owner[images.query_ball(r, separation)]
            taken = set(group_of[close[close != i]].tolist())
            for g, group in enumerate(members):
                if len(group) < self.group_size and g not in taken:
                    group.append(i)
                    group_of[i] = g
                    break
            else:
                group_of[i] = len(members)
                members.append([i])
        return [np.asarray(g, dtype=int) for g in members], images

    def _inner(self, r: np.ndarray) -> np.ndarray:
        """Indices of the state's atoms within the inner radius of ``r`` (inside the cell)."""
        return self.images.owner[self.images.query_ball(r, self.inner_radius)]

    # -- evaluations ---------------------------------------------------------------------------
    def _insert_cluster(self, r: np.ndarray, number: int) -> float:
        members = self.images.query_ball(r, self.cluster_radius)
        pos = self.images.positions[members]
        owner = self.images.owner[members]
        inner = np.flatnonzero(np.linalg.norm(pos - r, axis=1) < self.inner_radius)
        numbers = np.append(self.atoms.numbers[owner], number)
        rows = np.append(inner, len(owner))
        energies = self._cluster_energies(numbers, np.vstack([pos, r]) - r, rows)
        change = energies[:-1] - self.site_energies[owner[inner]]
        return float(energies[-1] + change.sum())

    def _remove_cluster(self, i: int) -> float:
        r = _wrap(self.atoms.positions[i], self.cell)[0]
        members = self.images.query_ball(r, self.cluster_radius)
        pos = self.images.positions[members]
        owner = self.images.owner[members]
        dist = np.linalg.norm(pos - r, axis=1)
        keep = ~((owner == i) & (dist < 1e-6))
        pos, owner, dist = pos[keep], owner[keep], dist[keep]
        inner = np.flatnonzero(dist < self.inner_radius)
        energies = self._cluster_energies(self.atoms.numbers[owner], pos - r, inner)
        change = self.site_energies[owner[inner]] - energies
        return float(self.site_energies[i] + change.sum())

    def _insert_group(
        self, points: np.ndarray, group: np.ndarray, images: PeriodicImages, number: int
    ) -> np.ndarray:
        """Insertion energies of ``points[group]``, inserted together in one evaluation.

        A group smaller than ``group_size`` is padded with other points more than ``2 rc``
        from all its members (and 1 Å from each other): they change no energy that the
        members' sums use, and every evaluation then has the same number of atoms, so one
        engine serves them all.
        """
        separation = 2.0 * self.inner_radius
        blocked = np.zeros(len(points), dtype=bool)
        for r in points[group]:
            blocked[images.owner[images.query_ball(r, separation)]] = True
        padding: list[int] = []
        taken = np.zeros(len(points), dtype=bool)
        for c in np.flatnonzero(~blocked):
            if len(group) + len(padding) >= self.group_size:
                break
            if not taken[images.owner[images.query_ball(points[c], 1.0)]].any():
                padding.append(int(c))
                taken[c] = True
        inserted = points[np.concatenate([group, np.asarray(padding, dtype=int)])]
        trial = self.atoms.copy()
        trial += Atoms(numbers=np.full(len(inserted), number), positions=inserted)
        n = len(self.atoms)
        inners = [self._inner(r) for r in points[group]]
        rows = np.concatenate([*inners, n + np.arange(len(group))])
        energies = np.zeros(len(trial))
        energies[rows] = self._site_energies(trial, rows)
        out = np.empty(len(group))
        for k, inner in enumerate(inners):
            change = energies[inner] - self.site_energies[inner]
            out[k] = energies[n + k] + change.sum()
        return out

    def _remove_group(self, indices: np.ndarray) -> np.ndarray:
        """Removal energies of ``indices``, removed together in one evaluation.

        A group smaller than ``group_size`` also loses other atoms more than ``2 rc`` from
        all its members (they change no energy the members' sums use), so that every
        evaluation has the same number of atoms.
        """
        separation = 2.0 * self.inner_radius
        keep = np.ones(len(self.atoms), dtype=bool)
        keep[indices] = False
        near = np.zeros(len(self.atoms), dtype=bool)
        inners = []
        for i in indices:
            r = _wrap(self.atoms.positions[i], self.cell)[0]
            near[self.images.owner[self.images.query_ball(r, separation)]] = True
            inner = self._inner(r)
            inners.append(inner[inner != i])
        n_extra = self.group_size - len(indices)
        if n_extra > 0:
            keep[np.flatnonzero(~near & keep)[:n_extra]] = False
        trial = self.atoms[keep]
        new_index = np.cumsum(keep) - 1
        rows = np.concatenate(inners) if inners else np.empty(0, dtype=int)
        energies = np.zeros(len(self.atoms))
        energies[rows] = self._site_energies(trial, new_index[rows])
        out = np.empty(len(indices))
        for k, (i, inner) in enumerate(zip(indices, inners, strict=True)):
            change = self.site_energies[inner] - energies[inner]
            out[k] = self.site_energies[i] + change.sum()
        return out

    def _insert_full(self, r: np.ndarray, number: int) -> float:
        trial = self.atoms.copy()
        trial += Atoms(numbers=[number], positions=[r])
        return float(self._site_energies(trial).sum()) - self.energy

    def _remove_full(self, i: int) -> float:
        trial = self.atoms.copy()
        del trial[i]
        return self.energy - float(self._site_energies(trial).sum())


def insertion_energies(
    atoms: Atoms,
    positions: np.ndarray,
    model: str | Path,
    symbol: str = "Na",
    margin: float = DEFAULT_MARGIN,
    method: Method = "auto",
) -> np.ndarray:
    """Energy change (eV) when one atom is added to ``atoms`` at each position, one at a time.

    The state is evaluated once; each candidate then costs one NEP evaluation of a cluster of
    radius ``2 rc`` around it, or a share of one full evaluation in which many candidates
    more than ``2 rc`` apart are inserted together (see :class:`LocalNEP`).  To score several
    batches of candidates in the same state, build one :class:`LocalNEP` and call its
    :meth:`LocalNEP.insertion_energies`.

    Parameters
    ----------
    atoms : ase.Atoms
        Periodic structure.
    positions : array_like, shape (m, 3)
        Cartesian candidate positions (Å).
    model : str or Path
        nep.txt covering the elements of ``atoms`` and ``symbol``.
    symbol : str
        Element inserted, Na by default.
    margin : float
        Extra distance (Å) on the inner and cluster radii.
    method : {"auto", "cluster", "grouped", "full"}
        Evaluation of the energy changes, see :class:`LocalNEP`.

    Returns
    -------
    ndarray, shape (m,)
        ``E(atoms + X at r) - E(atoms)`` in eV, without relaxation.
    """
    scorer = LocalNEP(atoms, model, margin=margin, method=method)
    return scorer.insertion_energies(positions, symbol=symbol)


class HostFull(InputError):
    """The free volume of the structure cannot hold the requested Na at the set distances."""


def propose_candidates(
    atoms: Atoms,
    n: int,
    min_dist_c: float = 2.0,
    min_dist_na: float = 2.8,
    rng: np.random.Generator | None = None,
    max_draws: int | None = None,
    at_least: int | None = None,
) -> np.ndarray:
    """Uniform random positions in the cell at least the given distances from the atoms.

    Points are drawn uniformly in fractional coordinates (so any cell shape works) and kept
    when no host atom (every element but Na) lies within ``min_dist_c`` and no Na within
    ``min_dist_na``, periodic images included.  Candidates are not checked against each other:
    they are alternatives, and :func:`select_batch` keeps the picked ones apart.

    Parameters
    ----------
    atoms : ase.Atoms
        Periodic structure.
    n : int
        Number of positions wanted.
    min_dist_c, min_dist_na : float
        Smallest distances (Å) to host atoms and to Na.
    rng : numpy.random.Generator, optional
        Random source; a fresh unseeded one if None.
    max_draws : int, optional
        Give up after this many random points; default ``1000 n + 100000`` (so an accepted
        fraction of the cell below about 0.1 % counts as full).
    at_least : int, optional
        Accept fewer than ``n`` positions, down to this many, when the free volume is nearly
        full (default: ``n``).

    Returns
    -------
    ndarray, shape (m, 3)
        Cartesian positions (Å) inside the cell, ``at_least <= m <= n``.

    Raises
    ------
    HostFull
        If fewer than ``at_least`` positions are found within ``max_draws`` points: the free
        volume cannot hold them at these distances.
    """
    _check_periodic(atoms)
    if n < 1:
        raise InputError(f"number of candidates must be positive, got {n}")
    if not (min_dist_c > 0 and min_dist_na > 0):
        raise InputError("minimum distances to C and Na must be positive (Å)")
    rng = np.random.default_rng() if rng is None else rng
    max_draws = 1000 * n + 100_000 if max_draws is None else int(max_draws)
    cell = atoms.cell.array
    is_na = atoms.numbers == _NA
    host = PeriodicImages(atoms.positions[~is_na], cell, min_dist_c)
    sodium = PeriodicImages(atoms.positions[is_na], cell, min_dist_na)
    kept: list[np.ndarray] = []
    n_kept = draws = 0
    chunk = max(1024, 4 * n)
    while n_kept < n and draws < max_draws:
        size = min(chunk, max_draws - draws)
        points = rng.random((size, 3)) @ cell
        draws += size
        free = (host.nearest(points, min_dist_c) >= min_dist_c) & (
            sodium.nearest(points, min_dist_na) >= min_dist_na
        )
        kept.append(points[free])
        n_kept += int(free.sum())
    if n_kept < (n if at_least is None else min(at_least, n)):
        raise HostFull(
            f"found only {n_kept} of {n} Na positions at least {min_dist_c} Å from the host and "
            f"{min_dist_na} Å from Na in {draws} random tries (free volume about "
            f"{n_kept / draws:.2%} of the cell): the structure has no room for this many more Na; "
            "use a smaller batch or fewer candidates, or lower the minimum distances"
        )
    return np.concatenate(kept)[:n]


def select_batch(
    positions: np.ndarray,
    energies: np.ndarray,
    n: int,
    cell: np.ndarray,
    min_dist_na: float = 2.8,
    method: Literal["greedy", "boltzmann"] = "greedy",
    temperature: float = 300.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Pick ``n`` scored candidates favouring low insertion energies, kept ``min_dist_na`` apart.

    ``"greedy"`` walks the candidates from the lowest insertion energy up and takes each one
    that lies at least ``min_dist_na`` from those already taken (periodic images included):
    the batch is the set of the lowest-energy, mutually compatible sites.  ``"boltzmann"``
    instead draws the next site among the compatible ones with probability proportional to
    ``exp(-dE / kT)``, so higher-energy sites are sometimes taken (``temperature`` in K; low
    temperatures approach the greedy choice).  Energies are single-Na, unrelaxed values: the
    interaction of the new Na with each other is left to the relaxation that follows.

    Parameters
    ----------
    positions : ndarray, shape (m, 3)
        Candidate positions (Å).
    energies : ndarray, shape (m,)
        Their insertion energies (eV).
    n : int
        Batch size.
    cell : ndarray, shape (3, 3)
        Periodic cell (Å).
    min_dist_na : float
        Smallest Na–Na distance within the batch (Å).
    method : {"greedy", "boltzmann"}
        Selection rule.
    temperature : float
        Temperature of the Boltzmann weights (K).
    rng : numpy.random.Generator, optional
        Random source for ``"boltzmann"``.

    Returns
    -------
    ndarray of int, shape (n,)
        Indices of the picked candidates, in the order they were picked.

    Raises
    ------
    InputError
        If fewer than ``n`` candidates can be kept ``min_dist_na`` apart.
    """
    positions = np.asarray(positions, dtype=float).reshape(-1, 3)
    energies = np.asarray(energies, dtype=float).reshape(-1)
    if len(positions) != len(energies):
        raise InputError(f"got {len(positions)} candidates but {len(energies)} energies")
    if not np.all(np.isfinite(energies)):
        raise InputError("candidate insertion energies must be finite")
    if method not in ("greedy", "boltzmann"):
        raise InputError(f"unknown selection '{method}': use greedy or boltzmann")
    if method == "boltzmann" and not temperature > 0:
        raise InputError(f"temperature {temperature} K must be positive")
    rng = np.random.default_rng() if rng is None else rng
    wrapped = _wrap(positions, np.asarray(cell, dtype=float)) if len(positions) else positions
    images = PeriodicImages(wrapped, cell, min_dist_na)
    blocked = np.zeros(len(positions), dtype=bool)
    picked: list[int] = []
    order = np.argsort(energies, kind="stable")
    kt = kB * temperature
    while len(picked) < n:
        free = order[~blocked[order]]
        if free.size == 0:
            break
        if method == "greedy":
            choice = int(free[0])
        else:
            weights = np.exp(-(energies[free] - energies[free].min()) / kt)
            choice = int(rng.choice(free, p=weights / weights.sum()))
        picked.append(choice)
        close = images.owner[images.query_ball(wrapped[choice], min_dist_na * (1 - 1e-12))]
        blocked[close] = True
        blocked[choice] = True
    if len(picked) < n:
        raise HostFull(
            f"only {len(picked)} of the {len(positions)} candidates are {min_dist_na} Å apart, "
            f"fewer than the batch of {n}: the free volume cannot hold the batch; use a smaller "
            "batch, more candidates or a smaller Na–Na distance"
        )
    return np.asarray(picked, dtype=int)
