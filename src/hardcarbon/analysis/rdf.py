"""Partial radial distribution functions."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers
from matscipy.neighbours import neighbour_list
from scipy.signal import find_peaks

from hardcarbon.analysis._checks import (
    require_atoms,
    require_element,
    require_positive,
    require_volume,
)
from hardcarbon.errors import InputError

#: Element pairs reported by :func:`rdf_set`, where both elements are present.
RDF_PAIRS = (("C", "C"), ("Na", "C"), ("Na", "Na"))


def partial_rdf(
    atoms: Atoms, a: str = "C", b: str = "C", rmax: float = 8.0, dr: float = 0.02
) -> tuple[np.ndarray, np.ndarray]:
    """Partial radial distribution function g_ab(r) of a periodic structure.

    Parameters
    ----------
    atoms
        Structure with a cell of positive volume; periodic images are included.
    a, b
        Chemical symbols of the central and the neighbouring element.
    rmax
        Largest distance in Å.
    dr
        Bin width in Å.

    Returns
    -------
    r : numpy.ndarray
        Bin centres in Å.
    g : numpy.ndarray
        g_ab(r) = n_ab(r) / (N_a ρ_b 4πr² dr), where n_ab counts (a atom, b neighbour) pairs in
        the shell and ρ_b = N_b / V, so g → 1 at long range (ideal-gas normalisation). For
        a = b each pair is counted from both ends, as the normalisation N_a ρ_a expects.
    """
    require_atoms(atoms, "RDF")
    rmax = require_positive(rmax, "RDF range rmax")
    dr = require_positive(dr, "RDF bin width dr")
    if dr >= rmax:
        raise InputError(f"RDF bin width dr={dr} Å must be smaller than rmax={rmax} Å")
    volume = require_volume(atoms, "RDF")
    n_a = require_element(atoms, a, "RDF").size
    n_b = require_element(atoms, b, "RDF").size
    z_a, z_b = atomic_numbers[a], atomic_numbers[b]
    n_bins = int(np.floor(rmax / dr + 1e-9))
    edges = np.arange(n_bins + 1) * dr
    # Only a–b pairs are searched for: a per-pair cutoff of zero skips the other element pairs.
    first, dist = neighbour_list("id", atoms, {(z_a, z_b): edges[-1]})
    dist = dist[(atoms.numbers[first] == z_a) & (dist < edges[-1])]
    counts = np.bincount(np.minimum((dist / dr).astype(np.int64), n_bins - 1), minlength=n_bins)
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    g = counts / (n_a * (n_b / volume) * shell)
    return 0.5 * (edges[1:] + edges[:-1]), g


def first_peak(r: np.ndarray, g: np.ndarray, rmin: float = 0.5, rmax: float | None = None
               ) -> float | None:
    """Position of the first peak of an RDF.

    Parameters
    ----------
    r, g
        Bin centres (Å) and RDF values, as returned by :func:`partial_rdf`.
    rmin, rmax
        Search window in Å (``rmax=None``: to the end of ``r``).

    Returns
    -------
    float or None
        Position in Å of the first local maximum in the window that reaches at least a fifth of
        the window's highest value, refined by a parabola through the three top bins (the
        refinement moves it by at most half a bin). None if ``g`` is zero in the window.
    """
    r = np.asarray(r, dtype=float)
    g = np.asarray(g, dtype=float)
    keep = (r >= rmin) & (r <= (r[-1] if rmax is None else rmax))
    if not np.any(keep) or not np.any(g[keep] > 0):
        return None
    rw, gw = r[keep], g[keep]
    # Pad with zeros so a maximum on the window edge still counts as a peak.
    peaks, _ = find_peaks(np.concatenate(([0.0], gw, [0.0])), height=0.2 * gw.max())
    k = int(peaks[0]) - 1 if peaks.size else int(np.argmax(gw))
    position = rw[k]
    if 0 < k < gw.size - 1:
        lo, mid, hi = gw[k - 1], gw[k], gw[k + 1]
        curvature = lo - 2.0 * mid + hi
        if curvature < 0:
            shift = 0.5 * (lo - hi) / curvature
            position += float(np.clip(shift, -0.5, 0.5)) * (rw[k + 1] - rw[k])
    return float(position)


def rdf_set(atoms: Atoms, rmax: float = 8.0, dr: float = 0.02
            ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """C–C, Na–C and Na–Na partial RDFs, for those pairs whose elements are in ``atoms``.

    Parameters
    ----------
    atoms
        Structure with a cell of positive volume.
    rmax, dr
        Range and bin width in Å, as in :func:`partial_rdf`.

    Returns
    -------
    dict
        ``"C-C"``, ``"Na-C"``, ``"Na-Na"`` → ``(r, g)`` arrays (r in Å).
    """
    require_atoms(atoms, "RDF")
    present = set(atoms.get_chemical_symbols())
    return {f"{a}-{b}": partial_rdf(atoms, a, b, rmax, dr)
            for a, b in RDF_PAIRS if a in present and b in present}
