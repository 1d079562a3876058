"""Classify each Na as adsorption, intercalation or filling (section 2.3 and Fig. 5 of the study).

The study sorts stored Na by its local coordination with carbon, looking at the carbon within
2.7 Å (the first Na–C peak of the radial distribution function) and within 3.5 Å.  This module
turns that into explicit, reproducible rules.  For every Na atom it computes, with periodic
images (:func:`matscipy.neighbours.neighbour_list`):

* ``n_c_contact``: C atoms within ``r_contact`` (2.7 Å), the Na–C first shell;
* ``n_c_shell``: C atoms within ``r_shell`` (3.5 Å), the wider carbon environment;
* ``n_na_neighbours``: Na atoms within ``r_na_na`` (3.9 Å; the bcc Na nearest-neighbour
  distance is 3.66 Å), and the Na *cluster* it belongs to: a connected component of the
  Na–Na graph with edges shorter than ``r_na_na``
  (:func:`scipy.sparse.csgraph.connected_components`);
* whether it is *sandwiched*: the C atoms within ``r_sheet`` (default ``r_shell``), taken as
  image positions around the Na, are split into fragments by C–C bonds shorter than ``r_cc``
  (1.85 Å); each fragment of at least ``sheet_min_atoms`` atoms that is not a straight chain
  gets a best-fit plane (SVD of its centred positions).  The Na is sandwiched when two such
  fragments have normals within ``max_sheet_angle`` of each other and the Na lies strictly
  between their two planes.

The labels then follow, in this order:

1. **intercalation**: the Na is sandwiched between two roughly parallel sheet fragments,
   i.e. it sits in an interlayer gallery or a wrinkle, whether or not other Na are close.
   Confinement between layers is what defines intercalation, so it is tested first: a dense
   Na layer inside a wide gallery stays intercalated rather than becoming filling.
2. **filling**: no C within ``r_contact`` and either (a) the Na belongs to a cluster of at
   least ``min_cluster`` Na, i.e. it is part of the Na aggregate that fills a pore, or (b) no
   C at all within ``r_shell``: a Na that far from every carbon wall is in pore space, not
   bound to the carbon, so it counts as pore filling even when alone.
3. **adsorption**: everything else.  These Na all have carbon within ``r_shell``: Na on
   surfaces, edges and defects, and, as the study redefines them, the surface Na of a pore
   cluster that touch the carbon (C within ``r_contact``).

Only atoms with symbol ``C`` count as carbon; other host elements (H, O, ...) are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms
from matscipy.neighbours import neighbour_list
from pydantic import ConfigDict, Field, model_validator
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial.distance import pdist, squareform

from hardcarbon.errors import InputError
from hardcarbon.settings import Settings

#: The three storage mechanisms, in the order used for counts.
SITE_CLASSES: tuple[str, ...] = ("adsorption", "intercalation", "filling")

#: A fragment whose second principal spread is below this (Å) is a straight chain:
#: its plane, and so its normal, is undefined.
_MIN_IN_PLANE_SPREAD = 0.2


class SiteRules(Settings):
    """Cut-offs and thresholds of the site classification (distances in Å, angles in degrees)."""

    model_config = ConfigDict(frozen=True)

    r_contact: float = Field(
        2.7, gt=0, description="Na–C first shell (Å): the first Na–C RDF peak region."
    )
    r_shell: float = Field(
        3.5, gt=0, description="Wider Na–C environment (Å): a Na with no C inside is in pore space."
    )
    r_na_na: float = Field(
        3.9, gt=0, description="Na–Na bond of the cluster graph (Å); bcc Na has 3.66 Å."
    )
    min_cluster: int = Field(
        4, ge=2, description="Smallest Na cluster (atoms) whose C-free members count as filling."
    )
    r_sheet: float | None = Field(
        None,
        gt=0,
        description="Radius (Å) of the carbon used to detect sandwiching sheets; None: r_shell.",
    )
    r_cc: float = Field(
        1.85, gt=0, description="C–C bond cut-off (Å) that joins carbon into sheet fragments."
    )
    sheet_min_atoms: int = Field(
        3, ge=3, description="Smallest C fragment (atoms) that counts as a sheet."
    )
    max_sheet_angle: float = Field(
        30.0, gt=0, le=90, description="Largest angle (degrees) between parallel sheet normals."
    )

    @model_validator(mode="after")
    def _ordered(self) -> SiteRules:
        if self.r_contact >= self.r_shell:
            raise ValueError(
                f"r_contact ({self.r_contact} Å) must be smaller than r_shell ({self.r_shell} Å)"
            )
        return self

    @property
    def sheet_radius(self) -> float:
        """Radius (Å) of the carbon used for sheet detection."""
        return self.r_shell if self.r_sheet is None else self.r_sheet


@dataclass(frozen=True)
class SiteClassification:
    """Per-Na site labels and the descriptors they were derived from.

    All arrays are aligned with ``na_indices`` (indices of the Na atoms in the structure).

    Attributes
    ----------
    na_indices : ndarray of int
        Indices of the Na atoms.
    labels : ndarray of str
        ``'adsorption'``, ``'intercalation'`` or ``'filling'``.
    n_c_contact, n_c_shell : ndarray of int
        Numbers of C within ``r_contact`` and ``r_shell`` (periodic images counted).
    n_na_neighbours : ndarray of int
        Numbers of Na within ``r_na_na``.
    cluster_id, cluster_size : ndarray of int
        Na cluster (connected component of the Na–Na graph) and its number of Na.
    sheet_angle : ndarray of float
        Angle (degrees) between the normals of the most parallel pair of sandwiching sheet
        fragments; NaN when the Na is not sandwiched.
    rules : SiteRules
        The rules used.
    """

    na_indices: np.ndarray
    labels: np.ndarray
    n_c_contact: np.ndarray
    n_c_shell: np.ndarray
    n_na_neighbours: np.ndarray
    cluster_id: np.ndarray
    cluster_size: np.ndarray
    sheet_angle: np.ndarray
    rules: SiteRules = field(default_factory=SiteRules)

    @property
    def counts(self) -> dict[str, int]:
        """Number of Na in each class (all three keys always present)."""
        return {name: int(np.count_nonzero(self.labels == name)) for name in SITE_CLASSES}

    def as_dict(self) -> dict[str, Any]:
        """Plain-type dictionary for JSON output."""
        return {
            "counts": self.counts,
            "rules": self.rules.model_dump(),
            "na_indices": self.na_indices.tolist(),
            "labels": self.labels.tolist(),
            "n_c_contact": self.n_c_contact.tolist(),
            "n_c_shell": self.n_c_shell.tolist(),
            "n_na_neighbours": self.n_na_neighbours.tolist(),
            "cluster_id": self.cluster_id.tolist(),
            "cluster_size": self.cluster_size.tolist(),
            "sheet_angle": [None if np.isnan(a) else float(a) for a in self.sheet_angle],
        }


def _pairs(atoms: Atoms, cutoff: dict[tuple[str, str], float]) -> tuple[np.ndarray, ...]:
    """``i, j, d, D`` of the pairs within the per-species ``cutoff``, with periodic images."""
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if not pbc.any():
        # a shrink-wrapped box: works also for molecules without a cell
        return neighbour_list(
            "ijdD",
            positions=atoms.positions,
            numbers=atoms.numbers.astype(np.int32),
            pbc=pbc,
            cutoff=cutoff,
        )
    if abs(np.linalg.det(atoms.cell.array)) < 1e-6:
        raise InputError(
            "the structure is periodic but its cell has no volume: give all three cell "
            "vectors (with vacuum along non-periodic directions)"
        )
    return neighbour_list("ijdD", atoms, cutoff)


def _fragment_planes(vectors: np.ndarray, rules: SiteRules) -> list[tuple[np.ndarray, np.ndarray]]:
    """Centroid and unit normal of each planar C fragment; positions relative to the Na (Å)."""
    if len(vectors) < 2 * rules.sheet_min_atoms:
        return []
    bonded = squareform(pdist(vectors) < rules.r_cc)
    n_frag, frag = connected_components(coo_matrix(bonded), directed=False)
    planes = []
    for k in range(n_frag):
        members = vectors[frag == k]
        if len(members) < rules.sheet_min_atoms:
            continue
        centroid = members.mean(axis=0)
        _, spread, vt = np.linalg.svd(members - centroid, full_matrices=False)
        if spread[1] / np.sqrt(len(members)) < _MIN_IN_PLANE_SPREAD:
            continue  # a straight chain has no plane
        planes.append((centroid, vt[2]))
    return planes


def _sandwich_angle(vectors: np.ndarray, rules: SiteRules) -> float:
    """Smallest angle (degrees) between two sheet fragments with the Na between them, or NaN."""
    planes = _fragment_planes(vectors, rules)
    best = np.nan
    cos_max = np.cos(np.radians(rules.max_sheet_angle))
    for a in range(len(planes)):
        c_a, n_a = planes[a]
        for b in range(a + 1, len(planes)):
            c_b, n_b = planes[b]
            cos_ab = float(np.dot(n_a, n_b))
            if abs(cos_ab) < cos_max:
                continue
            n_b_aligned = n_b if cos_ab > 0 else -n_b
            # signed heights of the Na (at the origin) above each plane, same orientation
            h_a = -float(np.dot(c_a, n_a))
            h_b = -float(np.dot(c_b, n_b_aligned))
            if h_a * h_b < 0:
                angle = float(np.degrees(np.arccos(min(1.0, abs(cos_ab)))))
                best = angle if np.isnan(best) else min(best, angle)
    return best


def classify_sites(atoms: Atoms, rules: SiteRules | None = None) -> SiteClassification:
    """Label every Na as ``'adsorption'``, ``'intercalation'`` or ``'filling'``.

    Parameters
    ----------
    atoms : ase.Atoms
        Sodiated carbon; periodic cells and images are handled.
    rules : SiteRules, optional
        Cut-offs and thresholds; the defaults follow the study (2.7 and 3.5 Å).

    Returns
    -------
    SiteClassification
        Labels, descriptors and counts per class; see the module docstring for the rules.
    """
    rules = SiteRules() if rules is None else rules
    symbols = np.asarray(atoms.get_chemical_symbols())
    na_indices = np.flatnonzero(symbols == "Na")
    if na_indices.size == 0:
        raise InputError("the structure holds no Na atoms: give a sodiated structure")
    if not np.any(symbols == "C"):
        raise InputError("the structure holds no C atoms: give Na in a carbon host")

    r_carbon = max(rules.r_shell, rules.sheet_radius)
    i, j, d, vec = _pairs(atoms, {("Na", "C"): r_carbon, ("Na", "Na"): rules.r_na_na})
    is_na_i = symbols[i] == "Na"
    n_atoms = len(atoms)
    na_c = is_na_i & (symbols[j] == "C")
    na_na = is_na_i & (symbols[j] == "Na")

    n_c_contact = np.bincount(i[na_c & (d < rules.r_contact)], minlength=n_atoms)[na_indices]
    n_c_shell = np.bincount(i[na_c & (d < rules.r_shell)], minlength=n_atoms)[na_indices]
    n_na_neighbours = np.bincount(i[na_na], minlength=n_atoms)[na_indices]

    local = np.full(n_atoms, -1)
    local[na_indices] = np.arange(na_indices.size)
    graph = coo_matrix(
        (np.ones(np.count_nonzero(na_na)), (local[i[na_na]], local[j[na_na]])),
        shape=(na_indices.size, na_indices.size),
    )
    _, cluster_id = connected_components(graph, directed=False)
    cluster_size = np.bincount(cluster_id)[cluster_id]

    sheet_pairs = na_c & (d < rules.sheet_radius)
    sheet_i, sheet_vec = i[sheet_pairs], vec[sheet_pairs]
    order = np.argsort(sheet_i, kind="stable")
    sheet_i, sheet_vec = sheet_i[order], sheet_vec[order]
    starts = np.searchsorted(sheet_i, na_indices, side="left")
    ends = np.searchsorted(sheet_i, na_indices, side="right")
    sheet_angle = np.array(
        [_sandwich_angle(sheet_vec[s:e], rules) for s, e in zip(starts, ends, strict=True)]
    )

    sandwiched = ~np.isnan(sheet_angle)
    no_contact = n_c_contact == 0
    filling = ~sandwiched & no_contact & ((cluster_size >= rules.min_cluster) | (n_c_shell == 0))
    labels = np.full(na_indices.size, "adsorption", dtype="<U13")
    labels[filling] = "filling"
    labels[sandwiched] = "intercalation"

    return SiteClassification(
        na_indices=na_indices,
        labels=labels,
        n_c_contact=n_c_contact,
        n_c_shell=n_c_shell,
        n_na_neighbours=n_na_neighbours,
        cluster_id=cluster_id,
        cluster_size=cluster_size,
        sheet_angle=sheet_angle,
        rules=rules,
    )


def site_sensitivity(
    atoms: Atoms, rules: SiteRules | None = None, delta: float = 0.1
) -> dict[str, Any]:
    """How the counts per class move when each distance cut-off moves by ``-delta`` and ``+delta``.

    Parameters
    ----------
    atoms : ase.Atoms
        Sodiated carbon.
    rules : SiteRules, optional
        Baseline rules.
    delta : float
        Shift of ``r_contact``, ``r_shell`` and ``r_na_na`` (Å), one at a time.

    Returns
    -------
    dict
        ``{"delta": delta, "baseline": counts, "shifts": {name: {"minus": {...},
        "plus": {...}}}}`` where each shifted entry holds the cut-off ``value`` (Å), the
        ``counts`` per class and their ``change`` from the baseline.  With ``r_sheet`` left at
        None, shifting ``r_shell`` also shifts the sheet-detection radius.
    """
    rules = SiteRules() if rules is None else rules
    if not (np.isfinite(delta) and delta > 0):
        raise InputError(f"sensitivity shift {delta} Å is not positive: give a delta > 0")
    baseline = classify_sites(atoms, rules).counts
    shifts: dict[str, dict[str, Any]] = {}
    for name in ("r_contact", "r_shell", "r_na_na"):
        shifts[name] = {}
        for side, sign in (("minus", -1.0), ("plus", 1.0)):
            value = round(getattr(rules, name) + sign * delta, 6)
            try:
                shifted = SiteRules(**{**rules.model_dump(), name: value})
            except InputError as exc:
                raise InputError(
                    f"shifting {name} by {sign * delta:+g} Å gives invalid rules ({exc}): "
                    "use a smaller delta"
                ) from None
            counts = classify_sites(atoms, shifted).counts
            shifts[name][side] = {
                "value": value,
                "counts": counts,
                "change": {k: counts[k] - baseline[k] for k in SITE_CLASSES},
            }
    return {"delta": delta, "baseline": baseline, "shifts": shifts}


def site_labels_array(atoms: Atoms, result: SiteClassification) -> np.ndarray:
    """Per-atom site labels for ``atoms.arrays['site']`` (extended XYZ).

    Na atoms get their class; every other atom gets its chemical symbol (``'C'`` for carbon),
    since extended XYZ cannot store empty strings.

    Parameters
    ----------
    atoms : ase.Atoms
        The structure that ``result`` was computed for.
    result : SiteClassification
        Output of :func:`classify_sites`.

    Returns
    -------
    ndarray of str, shape (len(atoms),)
    """
    symbols = np.asarray(atoms.get_chemical_symbols())
    na = result.na_indices
    matches = (
        np.count_nonzero(symbols == "Na") == na.size
        and (na.size == 0 or na.max() < len(atoms))
        and np.all(symbols[na] == "Na")
    )
    if not matches:
        raise InputError(
            "the site classification does not match this structure: classify it again"
        )
    labels = symbols.astype("<U13")
    labels[na] = result.labels
    return labels
