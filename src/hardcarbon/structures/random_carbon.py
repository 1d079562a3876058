"""Random placement of carbon atoms in a periodic box with a minimum interatomic distance."""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers
from ase.units import _Nav
from scipy.spatial import cKDTree

from hardcarbon.errors import InputError

#: Random sequential addition of hard spheres jams near a packing fraction of 0.38; beyond about
#: 0.30 placement becomes very slow, so we refuse it up front.
MAX_PACKING_FRACTION = 0.30


def number_density(density: float, element: str = "C") -> float:
    """Atoms per Å³ of ``element`` at mass density ``density`` (g/cm³)."""
    return density * 1e-24 * _Nav / atomic_masses[atomic_numbers[element]]


def atoms_for_density(density: float, volume: float, element: str = "C") -> int:
    """Number of atoms of ``element`` that give ``density`` (g/cm³) in ``volume`` (Å³)."""
    return round(number_density(density, element) * volume)


def density_of(n_atoms: int, volume: float, element: str = "C") -> float:
    """Density (g/cm³) of ``n_atoms`` of ``element`` in ``volume`` (Å³)."""
    mass = atomic_masses[atomic_numbers[element]]
    return n_atoms * mass / _Nav / (volume * 1e-24)


def random_carbon(
    n_atoms: int,
    box: tuple[float, float, float],
    min_distance: float = 1.4,
    seed: int = 0,
    batch: int = 4096,
    max_attempts: int = 200,
) -> Atoms:
    """Place ``n_atoms`` carbon atoms uniformly at random in an orthorhombic periodic box.

    Candidates are drawn in batches; a candidate is kept when it is at least ``min_distance``
    (Å) from every kept atom (periodic images included) and from the earlier candidates of
    its batch, so the result depends only on ``seed``.

    Raises
    ------
    InputError
        If the requested packing cannot be reached by random placement.
    """
    lengths = np.asarray(box, dtype=float)
    if n_atoms < 1:
        raise InputError(f"number of atoms must be positive, got {n_atoms}")
    if np.any(lengths <= 0):
        raise InputError(f"box lengths must be positive, got {tuple(lengths)} Å")
    if min_distance <= 0:
        raise InputError(f"minimum distance must be positive, got {min_distance} Å")
    volume = float(np.prod(lengths))
    packing = n_atoms * math.pi / 6 * min_distance**3 / volume
    if packing > MAX_PACKING_FRACTION:
        limit = density_of(round(MAX_PACKING_FRACTION * volume / (math.pi / 6 * min_distance**3)),
                           volume)
        raise InputError(
            f"{n_atoms} atoms ({density_of(n_atoms, volume):.2f} g/cm³) cannot be placed "
            f"{min_distance} Å apart at random (packing fraction {packing:.2f} > "
            f"{MAX_PACKING_FRACTION}): lower the density below {limit:.2f} g/cm³ "
            "or the minimum distance"
        )
    rng = np.random.default_rng(seed)
    kept = np.empty((0, 3))
    for _ in range(max_attempts):
        candidates = rng.random((batch, 3)) * lengths
        if len(kept):
            tree = cKDTree(kept, boxsize=lengths)
            clash = tree.query(candidates, distance_upper_bound=min_distance)[0]
            candidates = candidates[~np.isfinite(clash)]
        # Within the batch, keep a candidate only if no earlier kept candidate is too close.
        tree = cKDTree(candidates, boxsize=lengths)
        pairs = tree.query_pairs(min_distance, output_type="ndarray")
        ok = np.ones(len(candidates), dtype=bool)
        if len(pairs):
            pairs = np.sort(pairs, axis=1)
            order = np.argsort(pairs[:, 0], kind="stable")
            for i, j in pairs[order]:
                if ok[i]:
                    ok[j] = False
        kept = np.vstack([kept, candidates[ok]])
        if len(kept) >= n_atoms:
            positions = kept[:n_atoms]
            return Atoms(f"C{n_atoms}", positions=positions, cell=lengths, pbc=True)
    raise InputError(
        f"placed only {len(kept)} of {n_atoms} atoms {min_distance} Å apart after "
        f"{max_attempts} batches: lower the density or the minimum distance"
    )
