"""The iterative sodiation run: tables, checkpoints, resume and bad input (random NEP)."""

from __future__ import annotations

import csv
import json

import ase.io
import numpy as np
import pytest
from ase import Atoms
from calorine.calculators import CPUNEP

from hardcarbon.electrochem import (
    capacity_at_zero_volt,
    formation_energy,
    na_fraction,
    specific_capacity,
    voltage_profile,
)
from hardcarbon.errors import InputError
from hardcarbon.sodiation import run as run_module
from hardcarbon.sodiation.figures import write_figures
from hardcarbon.sodiation.run import (
    TABLE_COLUMNS,
    SodiationConfig,
    resolve_model,
    sodiate,
    stop_reason,
    target_na_count,
)
from hardcarbon.structures import random_carbon
from nep_models import write_random_nep


@pytest.fixture(scope="module")
def host() -> Atoms:
    return random_carbon(150, (13.0, 13.0, 13.0), seed=1)


def _config(model, **changes) -> SodiationConfig:
    settings = {"model": model, "batch_size": 3, "max_steps": 15, "target_na": 9, "seed": 4}
    return SodiationConfig(**{**settings, **changes})


def _table(path) -> list[dict[str, str]]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_outputs_follow_the_electrochemistry(host, random_nep, tmp_path):
    summary = sodiate(host, _config(random_nep), tmp_path, progress=False)
    rows = _table(tmp_path / "sodiation.csv")
    assert tuple(rows[0]) == TABLE_COLUMNS
    n_na = np.array([int(r["n_na"]) for r in rows])
    assert n_na.tolist() == [0, 3, 6, 9]
    energy = np.array([float(r["energy_eV"]) for r in rows])
    e_f = np.array([float(r["formation_energy_eV"]) for r in rows])
    mu = summary["mu_na_eV"]
    n_c = 150
    np.testing.assert_allclose(e_f, formation_energy(energy, energy[0], n_na, mu), atol=1e-9)
    volts = [float(r["voltage_V"]) for r in rows[1:]]
    assert rows[0]["voltage_V"] == ""
    np.testing.assert_allclose(volts, voltage_profile(n_na, e_f).voltage, atol=1e-9)
    np.testing.assert_allclose([float(r["capacity_mAh_g"]) for r in rows],
                               specific_capacity(n_na, n_c))
    np.testing.assert_allclose([float(r["x"]) for r in rows], na_fraction(n_na, n_c))
    for r in rows:
        assert sum(int(r[f"n_{k}"]) for k in ("adsorption", "intercalation", "filling")) == \
            int(r["n_na"])

    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["stopped"] == summary["stopped"] == "target_reached"
    assert on_disk["capacity_at_zero_volt"] == capacity_at_zero_volt(n_na, e_f, n_c).as_dict()
    assert set(on_disk["site_counts"]) == {"adsorption", "intercalation", "filling"}
    for timing in on_disk["timings"][1:]:
        assert {"scoring_s", "insertion_s", "relaxation_s", "classification_s"} <= set(timing)

    # the last state: labels and each Na's voltage contribution, checked by full evaluations
    state = ase.io.read(tmp_path / "states" / "state_003.xyz")
    assert len(state) == 159
    na = np.flatnonzero(state.numbers == 11)
    assert set(state.arrays["site"][na]) <= {"adsorption", "intercalation", "filling"}
    assert np.all(np.isnan(state.arrays["voltage_contribution"][state.numbers == 6]))
    assert sorted(state.arrays["inserted_at"][na].tolist()) == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    exact = json.loads((tmp_path / "checkpoint.json").read_text())["atoms"]
    relaxed = Atoms(numbers=exact["numbers"], positions=exact["positions"], cell=exact["cell"],
                    pbc=True)
    calc = CPUNEP(str(random_nep))
    e_state = calc.get_potential_energy(relaxed)
    assert e_state == pytest.approx(energy[-1], abs=1e-9)
    for i in na[:3]:
        without = relaxed.copy()
        del without[int(i)]
        expected = -(e_state - calc.get_potential_energy(without) - mu)
        assert state.arrays["voltage_contribution"][i] == pytest.approx(expected, abs=1e-6)
    per_na = _table(tmp_path / "na_voltages.csv")
    assert len(per_na) == 3 + 6 + 9

    for path in write_figures(tmp_path).values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class _Killed(Exception):
    pass


def test_resume_gives_the_uninterrupted_table(host, random_nep, tmp_path, monkeypatch):
    config = _config(random_nep, target_na=12)
    sodiate(host, config, tmp_path / "whole", progress=False)

    relax = run_module._relax
    calls = {"n": 0}

    def dying_relax(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # host, iteration 1, then die inside iteration 2
            raise _Killed
        return relax(*args, **kwargs)

    monkeypatch.setattr(run_module, "_relax", dying_relax)
    with pytest.raises(_Killed):
        sodiate(host, config, tmp_path / "cut", progress=False)
    assert len(_table(tmp_path / "cut" / "sodiation.csv")) == 2
    monkeypatch.setattr(run_module, "_relax", relax)
    with pytest.raises(InputError, match="resume"):
        sodiate(host, config, tmp_path / "cut", progress=False)
    sodiate(host, config, tmp_path / "cut", resume=True, progress=False)
    for name in ("sodiation.csv", "na_voltages.csv"):
        assert (tmp_path / "cut" / name).read_text() == (tmp_path / "whole" / name).read_text()

    # a finished run resumed with a larger target goes on from where it stopped
    summary = sodiate(host, _config(random_nep, target_na=15), tmp_path / "cut", resume=True,
                      progress=False)
    assert summary["n_na"] == 15
    assert summary["states"][:5] == json.loads(
        (tmp_path / "whole" / "summary.json").read_text())["states"]


def test_resume_refuses_another_structure_model_or_setting(host, random_nep, tmp_path):
    config = _config(random_nep, target_na=3)
    sodiate(host, config, tmp_path, progress=False)
    other = host.copy()
    other.positions[0] += 0.1
    with pytest.raises(InputError, match="different structure"):
        sodiate(other, config, tmp_path, resume=True, progress=False)
    model = write_random_nep(tmp_path / "other.txt", seed=9)
    with pytest.raises(InputError, match="different model"):
        sodiate(host, _config(model, target_na=3), tmp_path, resume=True, progress=False)
    with pytest.raises(InputError, match="min_dist_c"):
        sodiate(host, _config(random_nep, target_na=3, min_dist_c=2.2), tmp_path, resume=True,
                progress=False)


def test_voltage_stop_rule(host, random_nep, tmp_path, capsys):
    summary = sodiate(host, _config(random_nep, target_na=None, max_iterations=4), tmp_path)
    progress = capsys.readouterr().err.splitlines()
    assert progress[0] == "sodiation: iteration   0  Na     0  voltage n/a"
    assert len(progress) == len(summary["states"])
    volts = [s["voltage_V"] for s in summary["states"][1:]]
    if summary["stopped"] == "zero_voltage":
        assert volts[-1] <= 0 and all(v > 0 for v in volts[:-1])
    else:
        assert summary["stopped"] == "max_iterations" and len(volts) == 4
        assert all(v > 0 for v in volts)

    config = SodiationConfig(model=None, max_iterations=5)
    row = {"iteration": 2, "n_na": 100, "voltage_V": 0.1}
    assert stop_reason(config, [row], 6000) is None
    assert stop_reason(config, [{**row, "voltage_V": 0.0}], 6000) == "zero_voltage"
    assert stop_reason(config, [{**row, "iteration": 5}], 6000) == "max_iterations"
    overcharge = SodiationConfig(target_na=700)
    assert stop_reason(overcharge, [{**row, "voltage_V": -0.2}], 6000) is None
    assert stop_reason(overcharge, [{**row, "n_na": 700}], 6000) == "target_reached"


def test_target_capacity_gives_a_na_count():
    # NaC6 holds 371.9 mAh/g: 1000 Na in 6000 C
    assert target_na_count(SodiationConfig(target_capacity=371.9), 6000) == 1000
    assert target_na_count(SodiationConfig(target_na=700), 6000) == 700
    assert target_na_count(SodiationConfig(), 6000) is None


def test_bad_input_is_one_line(host, random_nep, tmp_path, monkeypatch):
    def refused(atoms, config, match, **kwargs):
        with pytest.raises(InputError, match=match) as info:
            sodiate(atoms, config, tmp_path / "bad", progress=False, **kwargs)
        assert "\n" not in str(info.value)

    config = _config(random_nep)
    refused(Atoms("Na2", positions=[[0, 0, 0], [2, 2, 2]], cell=[8, 8, 8], pbc=True), config,
            "no carbon")
    refused(host + Atoms("Na", positions=[[1, 1, 1]]), config, "already holds 1 Na")
    carbon_only = write_random_nep(tmp_path / "c.txt", elements=("C",))
    refused(host, _config(carbon_only), "not Na")
    refused(host, _config(random_nep, batch_size=80, n_candidates=80, target_na=None),
            "no room|cannot hold")
    refused(host, _config(tmp_path / "missing.txt"), "does not exist")
    with pytest.raises(InputError, match="not both"):
        SodiationConfig(target_na=10, target_capacity=100.0)
    with pytest.raises(InputError, match="unknown setting"):
        SodiationConfig(batchsize=10)
    with pytest.raises(InputError, match="optimizer"):
        SodiationConfig(optimizer="BFGS")
    assert SodiationConfig(optimizer="lbfgs").optimizer == "LBFGS"
    monkeypatch.setattr(run_module, "bundled_model", lambda: None)
    with pytest.raises(InputError, match="no NEP model given"):
        resolve_model(None)


def test_cell_relaxation_with_lbfgs(host, random_nep, tmp_path):
    config = _config(random_nep, target_na=3, relax_cell=True, optimizer="LBFGS", max_steps=5,
                     selection="boltzmann")
    summary = sodiate(host, config, tmp_path, progress=False)
    assert [s["n_na"] for s in summary["states"]] == [0, 3]
    cell = json.loads((tmp_path / "checkpoint.json").read_text())["atoms"]["cell"]
    assert not np.allclose(cell, host.cell.array)
    assert summary["timings"][1]["relax_steps"] <= 5


def test_a_full_host_ends_the_run_with_its_states_kept(host, random_nep, tmp_path):
    # 150 C in a 13 Å box hold a few tens of Na at these distances: the run fills it and stops
    config = _config(random_nep, batch_size=12, n_candidates=40, target_na=600,
                     max_iterations=60, max_steps=5)
    summary = sodiate(host, config, tmp_path, progress=False)
    assert summary["stopped"] == "host_full"
    n_na = [s["n_na"] for s in summary["states"]]
    assert n_na[0] == 0 and n_na[1] == 12 and n_na[-1] < 600
    assert (tmp_path / "sodiation.csv").read_text().count("\n") == len(n_na) + 1


def test_a_pair_under_its_floor_ends_the_run_unrecorded(host, random_nep, tmp_path, caplog):
    # floors of the whole covalent sum (C-Na 2.42 Å) are above where this model puts Na
    summary = sodiate(host, _config(random_nep, pair_fraction=1.0), tmp_path, progress=False)
    assert summary["stopped"] == "collapse"
    assert [s["n_na"] for s in summary["states"]] == [0]
    assert "iteration 1 pulled C-Na" in caplog.text and "(floor 2.42 Å)" in caplog.text
    # the default floors (0.6 of the sum) let the same run go on
    assert sodiate(host, _config(random_nep), tmp_path / "default", progress=False)["stopped"] \
        != "collapse"
