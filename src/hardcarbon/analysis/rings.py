"""Shortest-path ring statistics of the carbon network."""

from __future__ import annotations

from ase import Atoms
from matscipy.rings import ring_statistics as _matscipy_ring_statistics

from hardcarbon.analysis._checks import require_positive
from hardcarbon.analysis.structure import carbon_sublattice
from hardcarbon.errors import InputError


def ring_statistics(atoms: Atoms, cutoff: float = 1.85, max_ring: int = 12) -> dict[int, int]:
    """Count the shortest-path rings of the carbon network (Franzblau, PRB 44, 4925 (1991)).

    Parameters
    ----------
    atoms
        Structure containing carbon; only the C–C network is analysed.
    cutoff
        C–C bond cutoff in Å.
    max_ring
        Largest ring size (number of atoms) searched for; larger rings are not counted.

    Returns
    -------
    dict
        Ring size → number of rings, for every size from 3 to ``max_ring`` (zero counts included).

    Notes
    -----
    In a periodic cell shorter than about twice the ring diameter, paths that wrap around the
    cell can count as rings; use a supercell for small crystalline cells.
    """
    cutoff = require_positive(cutoff, "C–C cutoff")
    if int(max_ring) != max_ring or max_ring < 3:
        raise InputError(f"largest ring size must be an integer of at least 3, got {max_ring!r}")
    max_ring = int(max_ring)
    carbon = carbon_sublattice(atoms, "ring statistics")
    counts = _matscipy_ring_statistics(carbon, cutoff, maxlength=max_ring)
    return {size: int(counts[size]) if size < len(counts) else 0
            for size in range(3, max_ring + 1)}
