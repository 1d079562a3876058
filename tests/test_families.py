"""Training structures of the five families: counts, tags, sizes, distances, coverage, seeds."""

from __future__ import annotations

import re

import numpy as np
import pytest
from ase import Atoms
from ase.neighborlist import neighbor_list

from hardcarbon import InputError
from hardcarbon.forcefield import (
    DEFAULT_COUNTS,
    FAMILIES,
    DatasetConfig,
    check_structure,
    fullerene,
    generate_dataset,
    generate_family,
)
from hardcarbon.forcefield.families import _graph, _rings

# Small counts that still cover every sub-type cycle: 12 layered structures hold every
# spacing, defect and edge; 10 nanotubes every chirality; 6 fullerenes every cage.
COUNTS = {"disordered": 8, "layered": 12, "fullerene": 8, "nanotube": 10, "sodium": 6}
CARBON_FAMILIES = ("disordered", "layered", "fullerene", "nanotube")


@pytest.fixture(scope="module")
def config() -> DatasetConfig:
    return DatasetConfig(seed=7)


@pytest.fixture(scope="module")
def families(config) -> dict[str, list[Atoms]]:
    return {name: generate_family(name, COUNTS[name], config, np.random.default_rng(11))
            for name in FAMILIES}


def _n_na(atoms: Atoms) -> int:
    return int((atoms.numbers == 11).sum())


def _tag_na(atoms: Atoms) -> int:
    return int(re.search(r"_Na(\d+)$", atoms.info["config_type"]).group(1))


@pytest.mark.parametrize("name", FAMILIES)
def test_family_count_tags_and_size(families, name):
    structures = families[name]
    assert len(structures) == COUNTS[name]
    for atoms in structures:
        assert atoms.info["family"] == name
        assert re.fullmatch(rf"{name}/\S+", atoms.info["config_type"])
        assert atoms.info["vacuum_axes"] in ("none", "z", "xy", "xyz")
        assert len(atoms) <= 120
        assert atoms.pbc.all()
        assert check_structure(atoms) == []


@pytest.mark.parametrize("name", FAMILIES)
def test_minimum_distances(families, name):
    limits = {(6, 6): 0.9, (6, 11): 1.9, (11, 6): 1.9, (11, 11): 2.6}
    for atoms in families[name]:
        i, j, d = neighbor_list("ijd", atoms, 2.6)
        z = atoms.numbers
        assert all(dist >= limits[z[a], z[b]] for a, b, dist in zip(i, j, d, strict=True)), \
            atoms.info["config_type"]


@pytest.mark.parametrize("name", FAMILIES)
def test_vacuum_along_non_periodic_directions(families, name):
    for atoms in families[name]:
        axes = atoms.info["vacuum_axes"]
        for axis in "" if axes == "none" else axes:
            k = "xyz".index(axis)
            x = np.sort(atoms.positions[:, k] % atoms.cell[k, k])
            gaps = np.diff(np.append(x, x[0] + atoms.cell[k, k]))
            assert gaps.max() >= 10.0, atoms.info["config_type"]


@pytest.mark.parametrize("name", CARBON_FAMILIES)
def test_carbon_families_hold_sodium(families, name):
    """Every structure holds Na except the few Na-free host references, tagged ``_Na0``."""
    structures = families[name]
    for atoms in structures:
        assert set(atoms.get_chemical_symbols()) <= {"C", "Na"}
        assert _n_na(atoms) == _tag_na(atoms), atoms.info["config_type"]
        assert (atoms.numbers == 6).sum() >= 24
    references = sum(_n_na(a) == 0 for a in structures)
    assert references <= 0.2 * len(structures)


def test_sodium_family_is_pure_sodium_of_all_kinds(families):
    structures = families["sodium"]
    assert all(set(a.get_chemical_symbols()) == {"Na"} for a in structures)
    kinds = {a.info["config_type"].split("/")[1].split("_")[0] for a in structures}
    assert kinds == {"bcc", "fcc", "hcp", "liquid", "cluster"}
    for atoms in structures:
        if atoms.info["config_type"].startswith("sodium/cluster"):
            assert 2 <= len(atoms) <= 13
            assert atoms.info["vacuum_axes"] == "xyz"


def test_layered_covers_spacings_defects_and_edges(families):
    tags = [a.info["config_type"] for a in families["layered"]]
    spacings = {float(m.group(1)) for t in tags if (m := re.search(r"_d(\d\.\d)_", t))}
    assert spacings == {3.3, 3.5, 3.7, 3.9, 4.1, 4.3, 4.5}
    for variant in ("_MV", "_DV", "_SW", "ribbon_zigzag", "ribbon_armchair", "bilayer_AA",
                    "bilayer_AB", "graphite_AA", "_NaC6_", "_NaC8_"):
        assert any(variant in t for t in tags), variant


def test_layered_spacing_is_real(families):
    """In a bilayer built without MD the two carbon planes are d apart (± the 3 % strain)."""
    checked = 0
    for atoms in families["layered"]:
        tag = atoms.info["config_type"]
        if not tag.startswith("layered/bilayer") or "_md" in tag:
            continue
        z = atoms.positions[atoms.numbers == 6, 2]
        middle = (z.min() + z.max()) / 2
        gap = z[z > middle].mean() - z[z < middle].mean()
        spacing = float(re.search(r"_d(\d\.\d)_", tag).group(1))
        assert gap == pytest.approx(spacing, rel=0.05), tag
        checked += 1
    assert checked


def test_nanotubes_have_several_chiralities_and_na_inside(families):
    tags = [a.info["config_type"] for a in families["nanotube"]]
    chiralities = {re.search(r"cnt_(\d+-\d+)_", t).group(1) for t in tags}
    assert len(chiralities) >= 3
    inside = 0
    for atoms in families["nanotube"]:
        n_in = int(re.search(r"_in(\d+)_", atoms.info["config_type"] + "_in0_").group(1))
        if n_in == 0:
            continue
        carbon = atoms.positions[atoms.numbers == 6]
        axis = carbon[:, :2].mean(axis=0)
        radius = np.linalg.norm(carbon[:, :2] - axis, axis=1).mean()
        na_radii = np.sort(np.linalg.norm(atoms.positions[atoms.numbers == 11, :2] - axis,
                                          axis=1))
        assert (na_radii < radius).sum() >= n_in
        inside += 1
    assert inside


def test_fullerenes_with_endohedral_and_exohedral_sodium(families):
    cages = set()
    for atoms in families["fullerene"]:
        tag = atoms.info["config_type"]
        cages.add(tag.split("/")[1].split("_")[0])
        carbon = atoms.positions[atoms.numbers == 6]
        centre = carbon.mean(axis=0)
        r_cage = np.linalg.norm(carbon - centre, axis=1).min()
        r_na = np.linalg.norm(atoms.positions[atoms.numbers == 11] - centre, axis=1)
        if m := re.search(r"_endo(\d+)_exo(\d+)_", tag):
            assert (r_na < r_cage).sum() == int(m.group(1)), tag
            assert (r_na > r_cage).sum() == int(m.group(2)), tag
    assert {"C60", "C70", "C80", "C90"} <= cages


@pytest.mark.parametrize("n_carbon", [70, 80])
def test_built_fullerenes_are_closed_cages(n_carbon):
    """Every atom bonded to three others, 12 pentagons and n/2 − 10 hexagons (Euler)."""
    cage = fullerene(n_carbon)
    boxed = Atoms(cage.get_chemical_symbols(), positions=cage.positions + 15.0,
                  cell=np.eye(3) * 30.0, pbc=True)
    graph = _graph(boxed)
    assert len(cage) == n_carbon
    assert {len(bonds) for bonds in graph} == {3}
    sizes = [len(ring) for ring, _ in _rings(boxed, graph)]
    assert sizes.count(5) == 12
    assert sizes.count(6) == n_carbon // 2 - 10


def test_disordered_loadings_and_distances(families):
    loadings = set()
    for atoms in families["disordered"]:
        carbon = atoms[atoms.numbers == 6]
        assert 1.0 <= float(re.search(r"rho(\d\.\d+)", atoms.info["config_type"]).group(1)) <= 2.2
        loadings.add(_n_na(atoms) * 64 / len(carbon))
        i, j, d = neighbor_list("ijd", atoms, 2.0)
        z = atoms.numbers
        assert not np.any((z[i] != z[j]) & (d < 1.9))
    assert len(loadings) >= 3


def test_same_seed_same_structures(config):
    first = generate_family("layered", 5, config, np.random.default_rng(3))
    again = generate_family("layered", 5, config, np.random.default_rng(3))
    other = generate_family("layered", 5, config, np.random.default_rng(4))
    assert [a.info["config_type"] for a in first] == [a.info["config_type"] for a in again]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.positions, b.positions)
        np.testing.assert_array_equal(a.cell.array, b.cell.array)
    assert any(len(a) != len(b) or not np.allclose(a.positions, b.positions)
               for a, b in zip(first, other, strict=True))


def test_dataset_order_and_independent_families():
    both = generate_dataset(DatasetConfig(counts={"disordered": 2, "sodium": 3}, seed=5))
    alone = generate_dataset(DatasetConfig(counts={"sodium": 3}, seed=5))
    assert [a.info["family"] for a in both] == ["disordered"] * 2 + ["sodium"] * 3
    for a, b in zip(both[2:], alone, strict=True):
        assert a.info["config_type"] == b.info["config_type"]
        np.testing.assert_array_equal(a.positions, b.positions)


def test_perturbations_follow_the_config():
    exact = DatasetConfig(counts={"sodium": 1}, rattle_std=0.0, strain=0.0)
    perturbed = DatasetConfig(counts={"sodium": 1})
    bcc = generate_dataset(exact)[0]
    assert bcc.info["config_type"].startswith("sodium/bcc")
    d = neighbor_list("d", bcc, 3.9)
    assert np.ptp(d) < 1e-8  # an ideal lattice: all 8 nearest neighbours equally far
    d = neighbor_list("d", generate_dataset(perturbed)[0], 3.9)
    assert np.ptp(d) > 0.05


def test_unknown_family_and_bad_counts():
    with pytest.raises(InputError, match=r"unknown structure family 'graphene'.*disordered, "
                                         "layered, fullerene, nanotube, sodium"):
        generate_family("graphene", 1, DatasetConfig(), np.random.default_rng(0))
    with pytest.raises(InputError, match="negative"):
        generate_family("sodium", -1, DatasetConfig(), np.random.default_rng(0))
    with pytest.raises(InputError, match="unknown families"):
        DatasetConfig(counts={"graphite": 3})
    with pytest.raises(InputError, match="unknown carbon potential"):
        DatasetConfig(carbon_potential="no-such-potential")
    with pytest.raises(InputError, match="unknown setting 'temperature'"):
        DatasetConfig(temperature=300)


def test_default_counts_follow_the_study():
    counts = DatasetConfig().counts
    assert counts == DEFAULT_COUNTS
    total = sum(counts.values())
    assert 200 <= total <= 500
    study = {"disordered": 41, "layered": 12, "fullerene": 18, "nanotube": 25, "sodium": 4}
    for name, percent in study.items():
        assert 100 * counts[name] / total == pytest.approx(percent, abs=1.0)


def test_check_structure_reports_problems():
    good = Atoms("C2", positions=[[0, 0, 0], [1.42, 0, 0]], cell=[8, 8, 8], pbc=True)
    assert check_structure(good) == []
    clash = Atoms("CNa", positions=[[0, 0, 0], [1.5, 0, 0]], cell=[8, 8, 8], pbc=True)
    assert "Na" in check_structure(clash)[0]
    thin = Atoms("C", cell=[8, 8, 3], pbc=True)
    assert "thickness" in check_structure(thin)[0]
    big = Atoms("C125", positions=np.indices((5, 5, 5)).reshape(3, -1).T * 2.0,
                cell=[10, 10, 10], pbc=True)
    assert "max_atoms" in check_structure(big)[0]
    slab = Atoms("C2", positions=[[0, 0, 1], [1.42, 0, 1]], cell=[8, 8, 9], pbc=True,
                 info={"vacuum_axes": "z"})
    assert "vacuum along z" in check_structure(slab)[0]
    assert check_structure(Atoms("C", cell=[8, 8, 8], pbc=[True, True, False]))
    assert check_structure(Atoms("C2", positions=[[0, 0, 0], [1.4, 0, 0]])) == [
        "not periodic in all directions (pbc=[False, False, False])", "the cell has no volume"]


def test_small_max_atoms_is_respected():
    config = DatasetConfig(max_atoms=64, seed=1)
    for name, count in (("disordered", 2), ("layered", 6), ("fullerene", 4), ("nanotube", 4)):
        structures = generate_family(name, count, config, np.random.default_rng(2))
        assert len(structures) == count
        assert all(len(a) <= 64 for a in structures)
