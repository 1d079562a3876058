"""Porosity and geometric pore-size distribution on a periodic grid."""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms
from scipy import ndimage
from scipy.optimize import minimize
from scipy.spatial import cKDTree

from hardcarbon.analysis._checks import require_atoms, require_periodic, require_positive
from hardcarbon.errors import InputError

#: Van der Waals radii in Å from A. Bondi, J. Phys. Chem. 68, 441 (1964).
VDW_RADII: dict[str, float] = {"H": 1.20, "Li": 1.82, "C": 1.70, "N": 1.55, "O": 1.52, "Na": 2.27}

#: Largest number of grid points accepted (memory and time stay bounded).
MAX_GRID_POINTS = 8_000_000


class _SurfaceDistance:
    """Distance from points to the nearest vdW surface in an orthorhombic periodic cell."""

    def __init__(self, atoms: Atoms, lengths: np.ndarray):
        self.lengths = lengths
        positions = _wrap(atoms.get_scaled_positions(wrap=True) * lengths, lengths)
        symbols = np.array(atoms.get_chemical_symbols())
        self.parts = []
        for symbol in dict.fromkeys(symbols):
            if symbol not in VDW_RADII:
                raise InputError(f"pore analysis has no van der Waals radius for element {symbol}: "
                                 f"supported elements are {', '.join(VDW_RADII)}")
            tree = cKDTree(positions[symbols == symbol], boxsize=lengths)
            self.parts.append((tree, VDW_RADII[symbol]))

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (Å) from each point to the nearest atomic vdW sphere (< 0 inside)."""
        best = np.full(len(points), np.inf)
        for tree, radius in self.parts:
            dist, _ = tree.query(points)
            np.minimum(best, dist - radius, out=best)
        return best


def _wrap(points: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Map points into [0, L) along each axis, as cKDTree with ``boxsize`` requires."""
    wrapped = np.mod(points, lengths)
    wrapped[wrapped >= lengths] = 0.0
    return wrapped


def _orthorhombic_lengths(atoms: Atoms) -> np.ndarray:
    cell = atoms.cell.array
    lengths = np.diag(cell).copy()
    skewed = np.any(np.abs(cell - np.diag(lengths)) > 1e-6 * np.abs(lengths).max())
    if skewed or np.any(lengths <= 0):
        raise InputError("pore analysis needs an orthorhombic cell (cell vectors along +x, +y, +z):"
                         " re-cell the structure, e.g. with a cubic box from the model builder")
    return lengths


def pore_analysis(
    atoms: Atoms, probe_radius: float = 1.0, grid_spacing: float = 0.5, psd_bin: float = 0.5
) -> dict[str, Any]:
    """Porosity and geometric pore-size distribution of a periodic orthorhombic model.

    The cell is divided into a grid of about ``grid_spacing``; at each grid point the distance
    s to the nearest van der Waals surface (:data:`VDW_RADII`) is found with a periodic
    k-d tree. Void points have s > 0 and probe-accessible points s ≥ ``probe_radius``.

    The pore-size distribution is the geometric one of Gelb and Gubbins (Langmuir 15, 305
    (1999)): the pore diameter at a void point is that of the largest atom-free sphere
    containing it. It is computed on the grid as a granulometry (as in porespy's
    ``local_thickness``): a sphere of radius ≥ r free of atoms is a union of free spheres of
    radius r, so the points in free spheres of radius ≥ r are those within r of a grid point
    with s ≥ r (the morphological opening of the void by a ball of radius r), found with one
    periodic Euclidean distance transform per radius r_k = k·psd_bin/2. A point's diameter is
    2·r_k for the largest such k. Approximations: sphere centres are restricted to grid points
    and radii to multiples of psd_bin/2, so diameters are resolved to ``psd_bin`` and
    underestimated by up to about one grid spacing. The time grows with the number of radii up
    to the largest pore.

    Parameters
    ----------
    atoms
        Structure periodic along all three axes with an orthorhombic cell.
    probe_radius
        Radius of the probe sphere in Å.
    grid_spacing
        Target grid spacing in Å (the actual one divides the cell edges evenly).
    psd_bin
        Width of the pore-diameter bins in Å.

    Returns
    -------
    dict
        ``porosity`` (geometric void fraction: points outside all vdW spheres),
        ``accessible_porosity`` (fraction of points where a probe sphere centred there overlaps
        no atom), ``probe_occupiable_porosity`` (fraction of the cell a rolling probe can reach,
        i.e. the opening of the void by the probe), ``largest_pore_diameter`` (Å; diameter of
        the largest atom-free sphere, refined off the grid by a Nelder–Mead search),
        ``psd`` (``diameter``: bin centres in Å, ``volume_fraction``: fraction of the cell
        volume per bin, summing to ``porosity``), ``probe_radius`` (Å), ``grid_shape`` and
        ``grid_spacing`` (Å, per axis).
    """
    # Geometric PSDs are written out here because no package we depend on (ASE, matscipy,
    # scipy) computes them; Zeo++/PoreBlazer are external programs.
    require_atoms(atoms, "pore analysis")
    require_periodic(atoms, "pore analysis")
    probe_radius = require_positive(probe_radius, "probe radius")
    grid_spacing = require_positive(grid_spacing, "pore grid spacing")
    psd_bin = require_positive(psd_bin, "pore-size bin width")
    lengths = _orthorhombic_lengths(atoms)
    shape = np.maximum(1, np.round(lengths / grid_spacing)).astype(int)
    if np.prod(shape) > MAX_GRID_POINTS:
        raise InputError(f"a pore grid of {grid_spacing} Å over this cell has {np.prod(shape)} "
                         f"points (more than {MAX_GRID_POINTS}): use a coarser grid spacing")
    surface = _SurfaceDistance(atoms, lengths)
    spacing = lengths / shape
    axes = [(np.arange(n) + 0.5) * h for n, h in zip(shape, spacing, strict=True)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    s = surface(points)
    n_points = len(points)
    largest = _largest_sphere_radius(surface, points, s)

    s = s.reshape(shape)
    void = s > 0
    half = 0.5 * psd_bin
    level = np.zeros(shape, dtype=np.int32)  # largest k with the point inside opening k
    for k in range(1, int(np.floor(max(float(s.max()), 0.0) / half)) + 1):
        covered = _opening(s, spacing, k * half)
        if not covered.any():
            break
        level[covered] = k
    fractions = np.bincount(level[void], minlength=1) / n_points
    return {
        "porosity": float(np.count_nonzero(void)) / n_points,
        "accessible_porosity": float(np.count_nonzero(s >= probe_radius)) / n_points,
        "probe_occupiable_porosity": float(np.count_nonzero(_opening(s, spacing, probe_radius)))
        / n_points,
        "largest_pore_diameter": 2.0 * largest,
        "psd": {"diameter": (np.arange(fractions.size) + 0.5) * psd_bin,
                "volume_fraction": fractions},
        "probe_radius": probe_radius,
        "grid_shape": [int(n) for n in shape],
        "grid_spacing": [float(h) for h in spacing],
    }


def _opening(s: np.ndarray, spacing: np.ndarray, radius: float) -> np.ndarray:
    """Grid points within ``radius`` of a grid point with s ≥ ``radius`` (periodic grid)."""
    centres = s >= radius
    if not centres.any():
        return centres
    # Euclidean distance transform of the periodic grid, padded by wrapping far enough that
    # every distance up to ``radius`` is exact.
    pad = [int(np.ceil(radius / h)) + 1 for h in spacing]
    padded = np.pad(~centres, [(p, p) for p in pad], mode="wrap")
    dist = ndimage.distance_transform_edt(padded, sampling=spacing)
    inner = tuple(slice(p, p + n) for p, n in zip(pad, s.shape, strict=True))
    return dist[inner] <= radius * (1 + 1e-9)


def _largest_sphere_radius(surface: _SurfaceDistance, points: np.ndarray, s: np.ndarray) -> float:
    """Radius (Å) of the largest atom-free sphere: the grid maximum of s, refined off the grid."""
    best = int(np.argmax(s))
    if s[best] <= 0:
        return 0.0
    start = points[best]
    step = float(np.min(surface.lengths)) * 1e-2
    simplex = np.vstack([start, start + step * np.eye(3)])

    def negative(x: np.ndarray) -> float:
        return -float(surface(_wrap(x[None, :], surface.lengths))[0])

    found = minimize(negative, start, method="Nelder-Mead",
                     options={"initial_simplex": simplex, "xatol": 1e-3, "fatol": 1e-4})
    return max(float(s[best]), -float(found.fun))
