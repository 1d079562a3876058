"""Site classification on hand-built structures whose labels follow from the geometry."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import graphene

from hardcarbon.errors import InputError
from hardcarbon.sodiation import (
    SiteRules,
    classify_sites,
    site_labels_array,
    site_sensitivity,
)

A_GRAPHENE = 2.46  # Å, ase.build.graphene default; C–C bond 1.420 Å
A_BCC_NA = 4.23  # Å
# hexagon centre of ase.build.graphene's honeycomb: 1.420 Å from six C atoms
HOLLOW = np.array([0.0, A_GRAPHENE / np.sqrt(3), 0.0])


def _sheet(size: int, z: float) -> Atoms:
    sheet = graphene(size=(size, size, 1))
    sheet.positions[:, 2] = z
    return sheet


def _adsorbed() -> Atoms:
    """Na 2.3 Å above a hollow of a periodic graphene sheet, 20 Å vacuum."""
    atoms = _sheet(4, 0.0)
    atoms.cell[2] = [0, 0, 20.0]
    atoms.pbc = True
    atoms += Atoms("Na", positions=[HOLLOW + np.array([0, 0, 2.3])])
    return atoms


def _intercalated() -> Atoms:
    """AA-stacked graphite with 4 Å layer spacing and a Na at a hollow midway."""
    atoms = _sheet(4, 0.0)
    atoms.cell[2] = [0, 0, 4.0]
    atoms.pbc = True
    atoms += Atoms("Na", positions=[HOLLOW + np.array([0, 0, 2.0])])
    return atoms


def _pore_with_cluster() -> Atoms:
    """Slit pore between two graphene sheets 11.43 Å apart holding a 20-Na bcc cluster.

    Three bcc (001) layers: 9 Na (3x3) 2.2 Å above the lower sheet, 4 Na (2x2) at 4.315 Å
    and 7 Na (3x3 less two corners) at 6.43 Å, which is 5.0 Å below the upper sheet.
    """
    height = 2.2 + A_BCC_NA + 5.0
    atoms = _sheet(7, 0.0) + _sheet(7, height)
    atoms.cell[2] = [0, 0, height + 20.0]
    atoms.pbc = True
    offset = np.array([2.0, 2.0, 0.0])
    grid = A_BCC_NA * np.array([[i, j, 0.0] for i in range(3) for j in range(3)])
    up = np.array([0.0, 0.0, 1.0])
    bottom = grid + 2.2 * up
    middle = A_BCC_NA * np.array([[i + 0.5, j + 0.5, 0.5] for i in range(2) for j in range(2)])
    middle += 2.2 * up
    top = np.delete(grid, [0, 8], axis=0) + (2.2 + A_BCC_NA) * up
    na = np.vstack([bottom, middle, top]) + offset
    return atoms + Atoms(f"Na{len(na)}", positions=na)


def test_adsorbed_on_graphene_hollow() -> None:
    result = classify_sites(_adsorbed())
    assert result.labels.tolist() == ["adsorption"]
    # the six hexagon C are sqrt(2.3^2 + 1.42^2) = 2.703 Å away: just outside 2.7 Å
    assert result.n_c_contact.tolist() == [0]
    assert result.n_c_shell.tolist() == [6]
    assert result.cluster_size.tolist() == [1]
    assert result.counts == {"adsorption": 1, "intercalation": 0, "filling": 0}


def test_intercalated_between_aa_sheets() -> None:
    result = classify_sites(_intercalated())
    assert result.labels.tolist() == ["intercalation"]
    # 6 + 6 C at sqrt(2^2 + 1.42^2) = 2.45 Å, 6 + 6 more at sqrt(2^2 + 2.84^2) = 3.47 Å
    assert result.n_c_contact.tolist() == [12]
    assert result.n_c_shell.tolist() == [24]
    assert result.sheet_angle[0] == pytest.approx(0.0, abs=1e-6)


def test_cluster_in_pore_fills_and_touches_wall() -> None:
    atoms = _pore_with_cluster()
    result = classify_sites(atoms)
    expected = ["adsorption"] * 9 + ["filling"] * 4 + ["filling"] * 7
    assert result.labels.tolist() == expected
    assert result.cluster_size.tolist() == [20] * 20
    assert len(set(result.cluster_id.tolist())) == 1
    # a layer 2.2 Å above graphene has a C within 2.62 Å wherever it sits laterally
    assert np.all(result.n_c_contact[:9] >= 1)
    assert np.all(result.n_c_shell[9:] == 0)
    # middle Na: eight bcc neighbours at 3.66 Å, less the top corner removed above two of them
    assert result.n_na_neighbours[9:13].tolist() == [7, 8, 8, 7]
    assert result.counts == {"adsorption": 9, "intercalation": 0, "filling": 11}


@pytest.mark.parametrize(("min_cluster", "label"), [(4, "filling"), (5, "adsorption")])
def test_min_cluster_decides_na_near_but_not_touching_carbon(min_cluster: int, label: str) -> None:
    # a square of four Na (3.7 Å sides) 3.0 Å above graphene: C within 3.5 Å, none within 2.7 Å
    atoms = _sheet(6, 0.0)
    atoms.cell[2] = [0, 0, 20.0]
    atoms.pbc = True
    square = np.array([[0, 0, 0], [3.7, 0, 0], [0, 3.7, 0], [3.7, 3.7, 0]])
    square = square + np.array([1.0, 1.0, 3.0])
    atoms += Atoms("Na4", positions=square)
    result = classify_sites(atoms, SiteRules(min_cluster=min_cluster))
    assert result.labels.tolist() == [label] * 4
    assert result.n_c_contact.tolist() == [0] * 4


def _flake(angle: float = 0.0) -> Atoms:
    flake = graphene(size=(4, 4, 1))
    flake.pbc = False
    flake.positions -= flake.positions.mean(axis=0)
    flake.rotate(angle, "x", center=(0, 0, 0))
    return flake


def test_sheets_must_be_parallel_and_on_both_sides() -> None:
    na = Atoms("Na", positions=[[0.0, 0.0, 0.0]])
    parallel = _flake() + _flake() + na
    parallel.positions[: len(parallel) // 2, 2] -= 2.0
    parallel.positions[len(parallel) // 2 : -1, 2] += 2.0
    assert classify_sites(parallel).labels.tolist() == ["intercalation"]

    tilted = parallel.copy()
    upper = slice(len(parallel) // 2, -1)
    tilted.positions[upper] = _flake(45.0).positions + np.array([0, 0, 2.0])
    assert classify_sites(tilted).labels.tolist() == ["adsorption"]

    # a bilayer below the Na: both sheets are seen with r_sheet = 6 Å, but not on both sides
    below = parallel.copy()
    below.positions[upper, 2] -= 3.35 + 4.0
    rules = SiteRules(r_sheet=6.0)
    assert classify_sites(below, rules).labels.tolist() == ["adsorption"]
    below.positions[-1, 2] = -2.0 - 3.35 / 2
    assert classify_sites(below, rules).labels.tolist() == ["intercalation"]


def test_sensitivity_reports_each_cutoff_and_moves_counts() -> None:
    atoms = _pore_with_cluster()
    report = site_sensitivity(atoms, delta=0.6)
    assert report["delta"] == 0.6
    assert report["baseline"] == {"adsorption": 9, "intercalation": 0, "filling": 11}
    assert set(report["shifts"]) == {"r_contact", "r_shell", "r_na_na"}
    for name, default in (("r_contact", 2.7), ("r_shell", 3.5), ("r_na_na", 3.9)):
        entry = report["shifts"][name]
        assert entry["minus"]["value"] == pytest.approx(default - 0.6)
        assert entry["plus"]["value"] == pytest.approx(default + 0.6)
        for side in ("minus", "plus"):
            counts, change = entry[side]["counts"], entry[side]["change"]
            assert sum(counts.values()) == 20
            assert all(counts[k] - report["baseline"][k] == change[k] for k in counts)
    # at r_contact = 2.1 Å the wall layer (2.2 Å up) no longer touches carbon: it fills
    assert report["shifts"]["r_contact"]["minus"]["change"] == {
        "adsorption": -9,
        "intercalation": 0,
        "filling": 9,
    }
    with pytest.raises(InputError, match="delta"):
        site_sensitivity(atoms, delta=0.0)
    with pytest.raises(InputError, match="r_contact"):
        site_sensitivity(atoms, delta=3.0)


def test_labels_array_round_trips_through_extxyz(tmp_path) -> None:
    atoms = _pore_with_cluster()
    result = classify_sites(atoms)
    atoms.arrays["site"] = site_labels_array(atoms, result)
    assert set(atoms.arrays["site"][atoms.symbols == "C"]) == {"C"}
    path = tmp_path / "sites.xyz"
    ase.io.write(path, atoms, format="extxyz")
    back = ase.io.read(path, format="extxyz")
    assert back.arrays["site"].tolist() == atoms.arrays["site"].tolist()
    assert back.arrays["site"][back.symbols == "Na"].tolist() == result.labels.tolist()
    with pytest.raises(InputError, match="does not match"):
        site_labels_array(_adsorbed(), result)


def test_bad_input() -> None:
    with pytest.raises(InputError, match="no Na"):
        classify_sites(graphene(size=(2, 2, 1), vacuum=10))
    with pytest.raises(InputError, match="no C"):
        classify_sites(Atoms("Na2", positions=[[0, 0, 0], [0, 0, 3.7]]))
    with pytest.raises(InputError):
        SiteRules(r_contact=3.6)
    with pytest.raises(InputError):
        SiteRules(cutoff=3.0)
