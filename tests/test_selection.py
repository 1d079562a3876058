"""Choosing structures to label: farthest-point sampling and committee disagreement."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, graphene

from hardcarbon import InputError
from hardcarbon.forcefield.selection import (
    SelectConfig,
    committee_disagreement,
    farthest_point_sampling,
    mean_descriptors,
    select_structures,
)


def test_farthest_point_sampling_spreads_picks():
    # two tight clusters and one outlier: three picks take one point of each
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.01, (10, 2))
    b = rng.normal(0, 0.01, (10, 2)) + np.array([5.0, 0.0])
    features = np.vstack([a, b, [[0, 9]]])
    picked = farthest_point_sampling(features, 3)
    groups = sorted({0 if i < 10 else 1 if i < 20 else 2 for i in picked})
    assert groups == [0, 1, 2]
    # with cluster a already labelled, the first pick is never from it
    assert farthest_point_sampling(features, 1, reference=a)[0] >= 10
    # duplicates are not picked twice
    assert farthest_point_sampling(np.zeros((4, 3)), 3) == [0]
    with pytest.raises(InputError):
        farthest_point_sampling(np.zeros(3), 1)


def _cells():
    sheet = graphene(size=(3, 3, 1), vacuum=5.0)
    sheet.pbc = True
    with_na = sheet.copy()
    with_na.append("Na")
    with_na.positions[-1] = sheet.positions[:3].mean(axis=0) + np.array([0.0, 0.0, 2.3])
    na = bulk("Na", "bcc", a=4.23, cubic=True).repeat(2)
    return [sheet, with_na, na, na.copy()]


def test_descriptors_separate_species_and_selection_skips_duplicates(random_nep):
    cells = _cells()
    features = mean_descriptors(cells, random_nep)
    assert features.shape[0] == 4
    assert np.allclose(features[2], features[3])
    assert not np.allclose(features[0], features[1])
    picked = select_structures(cells, random_nep, SelectConfig(count=4))
    assert sorted(picked)[:2] == [0, 1] and len(picked) == 3
    # a size limit drops the 18-atom sheets; of the two identical Na cells one is kept
    assert select_structures(cells, random_nep, SelectConfig(count=4, max_atoms=17)) == [2]


def test_committee_of_identical_models_agrees(random_nep):
    cells = _cells()
    cells[0].rattle(0.05, seed=1)
    assert np.allclose(committee_disagreement(cells, [random_nep, random_nep]), 0.0)
    with pytest.raises(InputError, match="at least two"):
        committee_disagreement(cells, [random_nep])
