"""Density, carbon coordination numbers and hybridisation."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.units import _amu
from matscipy.neighbours import neighbour_list

from hardcarbon.analysis._checks import (
    require_atoms,
    require_element,
    require_positive,
    require_volume,
    with_cell,
)

#: One atomic mass unit per Å³ in g/cm³ (1 Å³ = 1e-24 cm³, 1 amu = _amu kg = 1e3 * _amu g).
_AMU_PER_A3_IN_G_PER_CM3 = _amu * 1e3 / 1e-24


def density(atoms: Atoms) -> float:
    """Mass density of a structure.

    Parameters
    ----------
    atoms
        Structure with a cell of positive volume (Å³).

    Returns
    -------
    float
        Density in g/cm³ (total mass of the atoms over the cell volume).
    """
    require_atoms(atoms, "density")
    volume = require_volume(atoms, "density")
    return float(atoms.get_masses().sum() / volume * _AMU_PER_A3_IN_G_PER_CM3)


def carbon_sublattice(atoms: Atoms, what: str) -> Atoms:
    """The carbon atoms of ``atoms`` (same cell and pbc), ready for a neighbour list."""
    require_atoms(atoms, what)
    carbon = atoms[require_element(atoms, "C", what)]
    return with_cell(carbon, margin=10.0)


def coordination_numbers(atoms: Atoms, cutoff: float = 1.85) -> np.ndarray:
    """Number of carbon neighbours of each carbon atom.

    Parameters
    ----------
    atoms
        Structure containing carbon (other elements are ignored).
    cutoff
        C–C bond cutoff in Å.

    Returns
    -------
    numpy.ndarray
        Integer C–C coordination number of every carbon atom, in the order the carbon atoms
        appear in ``atoms``.
    """
    cutoff = require_positive(cutoff, "C–C cutoff")
    carbon = carbon_sublattice(atoms, "coordination analysis")
    first = neighbour_list("i", carbon, cutoff)
    return np.bincount(first, minlength=len(carbon))


def hybridisation(atoms: Atoms, cutoff: float = 1.85) -> dict[str, float]:
    """Fractions of sp, sp², sp³ and other carbon from the C–C coordination number.

    Parameters
    ----------
    atoms
        Structure containing carbon.
    cutoff
        C–C bond cutoff in Å.

    Returns
    -------
    dict
        ``sp`` (CN 2), ``sp2`` (CN 3), ``sp3`` (CN 4) and ``other`` (CN ≤ 1 or ≥ 5) as fractions
        of the carbon atoms (they sum to 1), and ``mean_cn``, the mean C–C coordination number.
    """
    cn = coordination_numbers(atoms, cutoff)
    n = cn.size
    fractions = {name: float(np.count_nonzero(cn == k)) / n
                 for name, k in (("sp", 2), ("sp2", 3), ("sp3", 4))}
    fractions["other"] = float(np.count_nonzero((cn <= 1) | (cn >= 5))) / n
    fractions["mean_cn"] = float(cn.mean())
    return fractions


def shortest_by_pair(atoms: Atoms, rmax: float = 4.0) -> dict[str, float]:
    """Shortest distance (Å, periodic images included) of each pair of elements with a pair
    within ``rmax``; keys name the pair alphabetically, ``"C-Na"``."""
    from ase.data import chemical_symbols

    i, j, d = neighbour_list("ijd", atoms, rmax)
    z = atoms.numbers
    codes = np.minimum(z[i], z[j]) * 1000 + np.maximum(z[i], z[j])  # one code per pair
    out = {}
    for code in np.unique(codes):
        pair = sorted((chemical_symbols[code // 1000], chemical_symbols[code % 1000]))
        out["-".join(pair)] = float(d[codes == code].min())
    return dict(sorted(out.items()))


def min_distance(atoms: Atoms, a: str = "C", b: str = "C", rmax: float = 4.0) -> float | None:
    """Shortest distance (Å) between an ``a`` and a ``b`` atom, or None if none within ``rmax``."""
    return shortest_by_pair(atoms, rmax).get("-".join(sorted((a, b))))
