"""MD stability check with the bundled model on small sodiated carbon."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import graphene

from hardcarbon.analysis import shortest_by_pair
from hardcarbon.cli import app
from hardcarbon.errors import InputError
from hardcarbon.forcefield.stability import StabilityConfig, md_stability, pair_floors


def _bilayer_with_na():
    """AB-free (AA) bilayer 4.5 Å apart with two intercalated Na; 58 atoms, thick enough."""
    sheet = graphene(a=2.46, size=(6, 6, 1), vacuum=0.0)
    sheet.cell[2, 2] = 9.0
    top = sheet.copy()
    top.positions[:, 2] += 4.5
    atoms = sheet + top
    atoms.pbc = True
    for x, y in ((0.25, 0.25), (0.75, 0.7)):
        site = x * atoms.cell[0] + y * atoms.cell[1] + [0, 0, 2.25]
        atoms += type(atoms)("Na", positions=[site])
    return atoms


def test_shortest_by_pair_sees_periodic_images():
    atoms = graphene(a=2.46, size=(2, 2, 1), vacuum=5.0)
    atoms.pbc = True
    assert shortest_by_pair(atoms, 2.0) == {"C-C": pytest.approx(2.46 / np.sqrt(3), abs=1e-6)}
    atoms += type(atoms)("Na", positions=[atoms.positions[0] + [0.0, 0.0, 2.2]])
    pairs = shortest_by_pair(atoms, 5.0)
    assert set(pairs) == {"C-C", "C-Na", "Na-Na"}
    assert pairs["C-Na"] == pytest.approx(2.2) and pairs["Na-Na"] == pytest.approx(2.46 * 2)


def test_pair_floors_follow_covalent_radii():
    floors = pair_floors({"Na", "C"}, 1.0, 0.6)
    assert floors == {"C-C": 1.0, "C-Na": pytest.approx(1.452),  # C-C: min_distance
                      "Na-Na": pytest.approx(1.992)}
    assert pair_floors({"C"}, 0.5, 0.6) == {"C-C": pytest.approx(0.912)}


def test_md_stability_runs_and_resumes(tmp_path):
    atoms = _bilayer_with_na()
    config = StabilityConfig(temperatures=[300.0, 1000.0], time_ps=0.02, check_every=5)
    summary = md_stability(atoms, config, tmp_path)
    assert [r["temperature_K"] for r in summary["runs"]] == [300.0, 1000.0]
    for run in summary["runs"]:
        assert run["steps"] == 20 and run["stable"]
        assert 1.2 < run["shortest_distance_A"] < 1.5  # C–C bonds
        assert np.isfinite(run["conserved_energy_drift_meV_atom_ps"])
        assert run["atom_steps_per_second"] > 0
    assert (tmp_path / "final_1000K.xyz").is_file()
    stored = json.loads((tmp_path / "stability.json").read_text())
    assert stored["runs"] == summary["runs"]
    # a rerun with the same settings reuses both finished temperatures
    again = md_stability(atoms, config, tmp_path)
    assert again["runs"] == summary["runs"]


def test_md_stability_flags_collapsed_sodium():
    # two Na 1.5 Å apart: far from 1.0 Å, but half the Na2 bond length
    atoms = _bilayer_with_na()
    na = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s == "Na"]
    atoms.positions[na[1]] = atoms.positions[na[0]] + [1.5, 0.0, 0.0]
    run = md_stability(atoms, StabilityConfig(temperatures=[300.0], time_ps=0.01))["runs"][0]
    assert not run["stable"] and run["steps"] == 0
    assert run["collapsed_pairs"] == ["Na-Na"]
    assert run["shortest_by_pair_A"]["Na-Na"] == pytest.approx(1.5, abs=1e-6)


def test_md_stability_flags_a_collapsed_pair():
    atoms = _bilayer_with_na()
    atoms.positions[-1] = atoms.positions[0] + [0.0, 0.0, 0.8]  # Na 0.8 Å above a C
    run = md_stability(atoms, StabilityConfig(temperatures=[300.0], time_ps=0.01))["runs"][0]
    assert not run["stable"]
    assert run["steps"] == 0 and run["shortest_distance_A"] == pytest.approx(0.8, abs=1e-6)


def test_md_stability_bad_input(tmp_path):
    atoms = _bilayer_with_na()
    atoms.pbc = False
    with pytest.raises(InputError, match="periodic"):
        md_stability(atoms, StabilityConfig(time_ps=0.01))
    with pytest.raises(InputError, match="does not exist"):
        md_stability(_bilayer_with_na(), StabilityConfig(model=tmp_path / "nope.txt"))


def test_cli_stability(tmp_path):
    from typer.testing import CliRunner

    from hardcarbon.storage import write_structure

    path = write_structure(tmp_path / "state.xyz", _bilayer_with_na())
    result = CliRunner().invoke(app, ["stability", str(path), "-w", str(tmp_path / "md"),
                                      "--temperature", "500", "--time-ps", "0.01"])
    assert result.exit_code == 0, result.output
    assert "500 K" in result.output and "stable" in result.output
    bad = CliRunner().invoke(app, ["stability", str(path), "--temperature", "-5"])
    assert bad.exit_code == 2 and "not positive" in bad.output

