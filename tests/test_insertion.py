"""Local NEP insertion energies, candidate positions and batch selection."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.geometry import get_distances
from calorine.calculators import CPUNEP

from hardcarbon.errors import InputError
from hardcarbon.sodiation.insertion import (
    LocalNEP,
    insertion_energies,
    nep_cutoff,
    propose_candidates,
    select_batch,
)
from hardcarbon.structures import random_carbon
from nep_models import write_random_nep


@pytest.fixture(scope="module")
def sodiated() -> Atoms:
    """150 C in a 13 Å cell (thicker than twice the 5 Å cut-off) with 4 Na."""
    atoms = random_carbon(150, (13.0, 13.5, 12.5), seed=1)
    na = propose_candidates(atoms, 4, rng=np.random.default_rng(0))
    return atoms + Atoms("Na4", positions=na)


def _full_insertion(atoms: Atoms, points: np.ndarray, model) -> np.ndarray:
    calc = CPUNEP(str(model))
    e0 = calc.get_potential_energy(atoms)
    out = []
    for r in points:
        trial = atoms + Atoms("Na", positions=[r])
        out.append(calc.get_potential_energy(trial) - e0)
    return np.array(out)


def _full_removal(atoms: Atoms, indices: np.ndarray, model) -> np.ndarray:
    calc = CPUNEP(str(model))
    e0 = calc.get_potential_energy(atoms)
    out = []
    for i in indices:
        trial = atoms.copy()
        del trial[int(i)]
        out.append(e0 - calc.get_potential_energy(trial))
    return np.array(out)


def test_nep_cutoff_is_the_largest_range(random_nep, tmp_path):
    assert nep_cutoff(random_nep) == 5.0
    other = write_random_nep(tmp_path / "nep.txt", radial_cutoff=3.0, angular_cutoff=2.5,
                             zbl=(1.0, 3.5))
    assert nep_cutoff(other) == 3.5


@pytest.mark.parametrize("method", ["cluster", "grouped", "auto"])
@pytest.mark.parametrize("fast", [True, False])
def test_local_insertion_equals_full_model_difference(sodiated, random_nep, method, fast):
    # candidates given as periodic images outside the cell, to exercise the wrapping
    points = propose_candidates(sodiated, 6, rng=np.random.default_rng(1)) + sodiated.cell[0]
    scorer = LocalNEP(sodiated, random_nep, method=method, fast=fast)
    assert scorer.local
    assert scorer.fast is fast
    local = scorer.insertion_energies(points)
    full = _full_insertion(sodiated, points, random_nep)
    np.testing.assert_allclose(local, full, rtol=0, atol=1e-6)


@pytest.mark.parametrize("method", ["cluster", "grouped"])
def test_local_removal_equals_full_model_difference(sodiated, random_nep, method):
    na = np.flatnonzero(sodiated.numbers == 11)
    indices = np.append(na, [0, 77])
    local = LocalNEP(sodiated, random_nep, method=method).removal_energies(indices)
    np.testing.assert_allclose(local, _full_removal(sodiated, indices, random_nep), atol=1e-6)


def test_grouped_evaluation_pads_small_groups(random_nep):
    atoms = random_carbon(500, (20.0, 20.0, 20.0), seed=2)
    rng = np.random.default_rng(5)
    atoms += Atoms("Na6", positions=propose_candidates(atoms, 6, rng=rng))
    points = propose_candidates(atoms, 8, rng=rng)
    scorer = LocalNEP(atoms, random_nep, method="grouped", group_size=4)
    groups, _ = scorer._groups(scorer.atoms.cell.scaled_positions(points) % 1 @ atoms.cell)
    assert min(len(g) for g in groups) < 4  # some groups are padded with other candidates
    local = scorer.insertion_energies(points)
    np.testing.assert_allclose(local, _full_insertion(atoms, points, random_nep), atol=1e-6)
    na = np.flatnonzero(atoms.numbers == 11)
    removal = scorer.removal_energies(na)
    np.testing.assert_allclose(removal, _full_removal(atoms, na, random_nep), atol=1e-6)


def test_triclinic_cell(sodiated, random_nep):
    atoms = sodiated.copy()
    atoms.set_cell([[13.0, 0, 0], [3.0, 13.5, 0], [1.0, 2.0, 12.5]], scale_atoms=True)
    points = propose_candidates(atoms, 4, rng=np.random.default_rng(2))
    for method in ("cluster", "grouped"):
        local = insertion_energies(atoms, points, random_nep, method=method)
        np.testing.assert_allclose(local, _full_insertion(atoms, points, random_nep), atol=1e-6)


def test_thin_cell_uses_the_full_model(random_nep):
    atoms = random_carbon(60, (9.0, 9.0, 9.0), seed=3)
    points = propose_candidates(atoms, 3, rng=np.random.default_rng(3))
    scorer = LocalNEP(atoms, random_nep)
    assert not scorer.local
    assert scorer.choose_method(3) == "full"
    full = _full_insertion(atoms, points, random_nep)
    np.testing.assert_allclose(scorer.insertion_energies(points), full, atol=1e-9)


def test_pure_nep_without_zbl_uses_descriptors(sodiated, tmp_path):
    model = write_random_nep(tmp_path / "nep.txt", zbl=None, seed=5)
    points = propose_candidates(sodiated, 3, rng=np.random.default_rng(4))
    scorer = LocalNEP(sodiated, model)
    assert scorer.fast
    full = _full_insertion(sodiated, points, model)
    np.testing.assert_allclose(scorer.insertion_energies(points), full, atol=1e-6)


def test_typewise_zbl_uses_descriptors(sodiated, tmp_path):
    # factor 0.8: C-C pairs within 1.6 Å, C-Na within 2.29 Å, Na-Na within the 2.5 Å cap
    model = write_random_nep(tmp_path / "nep.txt", zbl=(1.25, 2.5), zbl_typewise=0.8, seed=6)
    points = propose_candidates(sodiated, 4, rng=np.random.default_rng(5))
    scorer = LocalNEP(sodiated, model)
    assert scorer.fast
    full = _full_insertion(sodiated, points, model)
    np.testing.assert_allclose(scorer.insertion_energies(points), full, atol=1e-6)


def test_model_without_na_is_refused(sodiated, tmp_path):
    carbon_only = write_random_nep(tmp_path / "nep.txt", elements=("C",))
    with pytest.raises(InputError, match="not Na"):
        LocalNEP(sodiated[sodiated.numbers == 6], carbon_only)


def test_candidates_keep_their_distances(sodiated):
    rng = np.random.default_rng(7)
    points = propose_candidates(sodiated, 200, min_dist_c=2.2, min_dist_na=3.0, rng=rng)
    assert points.shape == (200, 3)
    frac = sodiated.cell.scaled_positions(points)
    assert np.all((frac >= 0) & (frac < 1))
    _, d = get_distances(points, sodiated.positions, cell=sodiated.cell, pbc=True)
    is_na = sodiated.numbers == 11
    assert d[:, ~is_na].min() >= 2.2
    assert d[:, is_na].min() >= 3.0
    again = propose_candidates(sodiated, 200, min_dist_c=2.2, min_dist_na=3.0,
                               rng=np.random.default_rng(7))
    np.testing.assert_array_equal(points, again)


def test_full_structure_has_no_room(sodiated):
    with pytest.raises(InputError, match="no room"):
        propose_candidates(sodiated, 10, min_dist_c=4.0, rng=np.random.default_rng(0),
                           max_draws=20000)


def test_greedy_batch_takes_lowest_compatible_energies():
    cell = np.eye(3) * 10.0
    positions = np.array([[1.0, 1, 1], [2.0, 1, 1], [9.5, 1, 1], [5.0, 5, 5], [5.0, 5, 8]])
    energies = np.array([-1.0, -3.0, -0.5, -2.0, 0.0])
    picked = select_batch(positions, energies, 3, cell, min_dist_na=2.8)
    # 1 (-3.0) first; 0 is 1 Å and 2 is 2.5 Å (through the boundary) from it; then 3, then 4
    assert picked.tolist() == [1, 3, 4]
    with pytest.raises(InputError, match="cannot hold the batch"):
        select_batch(positions, energies, 4, cell, min_dist_na=2.8)


def test_boltzmann_batch_respects_distances():
    rng = np.random.default_rng(0)
    cell = np.eye(3) * 20.0
    positions = rng.random((300, 3)) * 20.0
    energies = rng.normal(size=300)
    picked = select_batch(positions, energies, 20, cell, 3.0, method="boltzmann",
                          temperature=3000.0, rng=rng)
    assert len(set(picked.tolist())) == 20
    _, d = get_distances(positions[picked], cell=cell, pbc=True)
    assert d[np.triu_indices(20, 1)].min() >= 3.0
    cold = select_batch(positions, energies, 20, cell, 3.0, method="boltzmann",
                        temperature=1e-3, rng=rng)
    assert cold.tolist() == select_batch(positions, energies, 20, cell, 3.0).tolist()


def test_a_nearly_full_cell_gives_what_fits_down_to_at_least():
    # one C in a 5 Å cube: only points 2.0 Å away fit, a small share of the cell
    atoms = Atoms("C", positions=[[2.5, 2.5, 2.5]], cell=[5.0, 5.0, 5.0], pbc=True)
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="found only"):
        propose_candidates(atoms, 5000, min_dist_c=2.4, rng=rng, max_draws=2000)
    some = propose_candidates(atoms, 5000, min_dist_c=2.4, rng=rng, max_draws=2000,
                              at_least=10)
    assert 10 <= len(some) < 5000
    d = np.linalg.norm(get_distances(some, atoms.positions, cell=atoms.cell, pbc=True)[0],
                       axis=2)
    assert d.min() >= 2.4
