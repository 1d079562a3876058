"""Which structures to label next: descriptor diversity and committee disagreement.

Both halves of the active-learning choice of Figure 1a of the study live here:

* :func:`committee_disagreement`: for each structure, the largest standard deviation of an
  atomic force across a committee of NEP models (eV/Å), the usual uncertainty proxy;
* :func:`farthest_point_sampling`: a greedy max–min pick in the space of the per-structure
  mean NEP descriptors (:func:`mean_descriptors`), so that the labelled set is spread out and
  does not spend the reference calculator on near-duplicates.

:func:`select_structures` chains them: keep candidates whose disagreement lies in a window,
then thin them by farthest-point sampling.  Farthest-point sampling is written here because
it is a ten-line greedy loop over a distance array; no library offers it on a plain matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from hardcarbon.errors import InputError
from hardcarbon.settings import Settings
from hardcarbon.storage import bare_structure


def mean_descriptors(structures: Sequence[Atoms], model: str | Path) -> np.ndarray:
    """Per-structure descriptor vectors of the NEP ``model`` (one row per structure).

    Each row concatenates, per element of the model, the mean descriptor of that element's
    atoms (zeros when the structure has none), so a pure-carbon cell and the same cell with
    one Na stay apart even when the Na barely changes the carbon environments.
    """
    from calorine.nep import get_descriptors

    from hardcarbon.forcefield.nep import nep_elements

    elements = nep_elements(model)
    rows = []
    for atoms in structures:
        missing = sorted(set(atoms.get_chemical_symbols()) - set(elements))
        if missing:
            raise InputError(f"model {model} does not cover {', '.join(missing)}")
        descriptors = np.asarray(get_descriptors(bare_structure(atoms), str(model)))
        symbols = np.array(atoms.get_chemical_symbols())
        parts = [descriptors[symbols == e].mean(axis=0) if np.any(symbols == e)
                 else np.zeros(descriptors.shape[1]) for e in elements]
        rows.append(np.concatenate(parts))
    return np.array(rows)


def farthest_point_sampling(features: np.ndarray, n: int,
                            reference: np.ndarray | None = None) -> list[int]:
    """Indices of ``n`` rows of ``features`` picked greedily to be as far apart as possible.

    Components are standardised first.  Each pick is the row whose distance to everything
    picked so far (and to the rows of ``reference``, e.g. the already labelled set) is
    largest.  Without ``reference`` the first pick is the row farthest from the mean.
    """
    features = np.asarray(features, dtype=float)
    if features.ndim != 2:
        raise InputError("features must be a 2-D array (structures × components)")
    n = min(int(n), len(features))
    if n <= 0:
        return []
    pool = features if reference is None else np.vstack([features, reference])
    scale = pool.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    x = (features - pool.mean(axis=0)) / scale
    nearest = np.full(len(x), np.inf)
    if reference is not None and len(reference):
        r = (np.asarray(reference, dtype=float) - pool.mean(axis=0)) / scale
        for row in r:
            nearest = np.minimum(nearest, np.linalg.norm(x - row, axis=1))
    picked: list[int] = []
    if np.isinf(nearest).all():
        first = int(np.argmax(np.linalg.norm(x, axis=1)))
        picked.append(first)
        nearest = np.minimum(nearest, np.linalg.norm(x - x[first], axis=1))
    while len(picked) < n:
        nearest[picked] = -1.0
        nxt = int(np.argmax(nearest))
        if nearest[nxt] <= 0.0 and len(picked) > 0:
            break  # only duplicates left
        picked.append(nxt)
        nearest = np.minimum(nearest, np.linalg.norm(x - x[nxt], axis=1))
    return picked


def committee_disagreement(structures: Sequence[Atoms], models: Sequence[str | Path]
                           ) -> np.ndarray:
    """Largest atomic force standard deviation across the ``models`` (eV/Å), per structure."""
    from hardcarbon.forcefield.nep import nep_calculator

    if len(models) < 2:
        raise InputError("a committee needs at least two models")
    elements = {s for atoms in structures for s in atoms.get_chemical_symbols()}
    calcs = [nep_calculator(m, elements) for m in models]
    out = np.zeros(len(structures))
    for k, atoms in enumerate(structures):
        forces = []
        for calc in calcs:
            work = bare_structure(atoms)
            work.calc = calc
            forces.append(work.get_forces())
        out[k] = float(np.linalg.norm(np.std(forces, axis=0), axis=1).max())
    return out


class SelectConfig(Settings):
    """How :func:`select_structures` picks structures for labelling.

    Parameters
    ----------
    count
        Structures to pick.
    max_atoms
        Larger cells are not considered (labelling cost).
    min_disagreement, max_disagreement
        Committee force-disagreement window (eV/Å); candidates below are already learnt,
        above are usually unphysical.  Ignored without a committee.
    """

    count: int = 50
    max_atoms: int = 120
    min_disagreement: float = 0.05
    max_disagreement: float = 2.0


def select_structures(candidates: Sequence[Atoms], model: str | Path,
                      config: SelectConfig | None = None,
                      labelled: Sequence[Atoms] = (),
                      committee: Sequence[str | Path] = ()) -> list[int]:
    """Indices of the candidates to label next.

    Candidates larger than ``config.max_atoms`` are dropped; with a ``committee`` (two or more
    nep.txt) only those whose force disagreement lies in the configured window stay; the rest
    are thinned by farthest-point sampling in the descriptor space of ``model``, counting
    distances to the ``labelled`` structures too.
    """
    config = config or SelectConfig()
    keep = [i for i, a in enumerate(candidates) if len(a) <= config.max_atoms]
    if committee:
        spread = committee_disagreement([candidates[i] for i in keep], committee)
        keep = [i for i, s in zip(keep, spread, strict=True)
                if config.min_disagreement <= s <= config.max_disagreement]
    if not keep:
        return []
    features = mean_descriptors([candidates[i] for i in keep], model)
    reference = mean_descriptors(labelled, model) if len(labelled) else None
    return [keep[j] for j in farthest_point_sampling(features, config.count,
                                                     reference=reference)]
