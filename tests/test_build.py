"""Hard-carbon builder: random placement, anneal engines, checkpoints, CLI errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.neighborlist import neighbor_list
from typer.testing import CliRunner

from hardcarbon import InputError
from hardcarbon.cli import app
from hardcarbon.forcefield import CARBON_POTENTIALS, carbon_potential, load_lammps
from hardcarbon.structures import AnnealStage, BuildConfig, build_hard_carbon, random_carbon
from hardcarbon.structures.anneal import AseEngine, LammpsEngine, Minimisation
from hardcarbon.structures.random_carbon import atoms_for_density

SHORT = [
    AnnealStage(name="heat", t_start=300, t_end=3000, duration_ps=0.2),
    AnnealStage(name="quench", t_start=3000, t_end=300, rate_k_per_ps=20000),
]


def test_random_placement_respects_distance_and_density():
    n = atoms_for_density(1.5, 20.0**3)
    atoms = random_carbon(n, (20.0, 20.0, 20.0), min_distance=1.4, seed=3)
    assert len(atoms) == n == 602  # 0.0752 atoms/Å³ × 8000 Å³
    assert neighbor_list("d", atoms, 1.4).size == 0
    again = random_carbon(n, (20.0, 20.0, 20.0), min_distance=1.4, seed=3)
    np.testing.assert_array_equal(atoms.positions, again.positions)


def test_placement_refuses_impossible_density():
    with pytest.raises(InputError, match="cannot be placed"):
        random_carbon(atoms_for_density(4.0, 1000.0), (10.0, 10.0, 10.0), min_distance=1.6)


def test_lammps_loads_without_environment():
    lmp = load_lammps()
    assert lmp.version() >= 20250722
    lmp.close()


@pytest.mark.parametrize("name", sorted(CARBON_POTENTIALS))
def test_potentials_give_graphite_like_energies(name):
    """Each potential binds diamond at a cohesive energy near experiment (7.3–7.4 eV/atom)."""
    atoms = bulk("C", "diamond", a=3.567, cubic=True).repeat(2)
    engine = LammpsEngine(atoms, CARBON_POTENTIALS[name])
    relaxed, energy = engine.minimise(Minimisation(fmax=1e-3))
    engine.close()
    assert -7.6 < energy / len(relaxed) < -7.0


def test_lammps_engine_follows_temperature_ramp():
    atoms = random_carbon(300, (15.0, 15.0, 15.0), seed=1)
    engine = LammpsEngine(atoms, CARBON_POTENTIALS["tersoff"])
    hot = engine.run_stage(AnnealStage(name="hold", t_start=2000, t_end=2000, duration_ps=0.5,
                                       thermostat="langevin"), seed=1)
    engine.close()
    assert 1500 < hot.get_temperature() < 2500


def test_ase_engine_runs_every_thermostat():
    """The ASE engine (used for NEP models) with a real calculator, NVT and NPT."""
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(3)
    for ensemble in ("nvt", "npt"):
        for thermostat in ("nose-hoover", "langevin", "berendsen"):
            engine = AseEngine(atoms, EMT())
            stage = AnnealStage(name="s", t_start=600, t_end=600, duration_ps=0.1,
                                timestep_fs=2, ensemble=ensemble, thermostat=thermostat)
            out = engine.run_stage(stage, seed=2)
            assert 100 < out.get_temperature() < 1500, (ensemble, thermostat)


def test_build_is_reproducible_and_resumes(tmp_path, monkeypatch):
    config = BuildConfig(density=1.5, box=12.0, potential="tersoff", stages=SHORT, seed=4,
                         threads=1)
    atoms, summary = build_hard_carbon(config)
    assert summary["n_atoms"] == len(atoms) == atoms_for_density(1.5, 12.0**3)
    assert neighbor_list("d", atoms, 1.15).size == 0
    assert summary["energy_per_atom"] < -6.0

    # A build killed during its second stage resumes from the first stage's checkpoint.
    run_stage = LammpsEngine.run_stage

    def killed_in_quench(self, stage, seed):
        if stage.name == "quench":
            raise KeyboardInterrupt
        return run_stage(self, stage, seed)

    monkeypatch.setattr(LammpsEngine, "run_stage", killed_in_quench)
    with pytest.raises(KeyboardInterrupt):
        build_hard_carbon(config, tmp_path)
    assert [p.name for p in tmp_path.glob("stage_*")] == ["stage_00_heat.xyz"]
    monkeypatch.setattr(LammpsEngine, "run_stage", run_stage)
    resumed, summary2 = build_hard_carbon(config, tmp_path)
    assert summary2["resumed_from_stage"] == "heat"
    assert "heat" not in summary2["timings_s"] and "quench" in summary2["timings_s"]
    assert len(resumed) == len(atoms)
    with pytest.raises(InputError, match="different build"):
        build_hard_carbon(config.model_copy(update={"seed": 5}), tmp_path)


def test_carbon_potential_names():
    assert carbon_potential("rebo").pair_style == "rebo"
    with pytest.raises(InputError, match="unknown potential 'reaxff'"):
        carbon_potential("reaxff")
    # A missing file is named as one whatever its suffix, as in the config settings.
    with pytest.raises(InputError, match=r"NEP model file nep-C\.model does not exist"):
        carbon_potential("nep-C.model")


runner = CliRunner()


def test_cli_build_writes_structure_and_summary(tmp_path):
    config = tmp_path / "build.yaml"
    config.write_text("stages:\n" + "".join(
        f"  - {{name: {s.name}, t_start: {s.t_start}, t_end: {s.t_end}, duration_ps: 0.1}}\n"
        for s in SHORT))
    out = tmp_path / "hc.xyz"
    result = runner.invoke(app, ["build", "--box", "10", "--potential", "tersoff", "--config",
                                 str(config), "-o", str(out), "--threads", "1"])
    assert result.exit_code == 0, result.output
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["n_atoms"] == atoms_for_density(1.5, 1000.0)
    assert summary["min_cc_distance"] > 1.15
    assert not (tmp_path / "hc.xyz.checkpoints").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--density", "5", "--box", "20"], "cannot be placed"),
        (["--box", "-5"], "box must be positive"),
        (["--box", "0"], "box must be positive"),
        (["--potential", "reaxff"], "unknown potential"),
        (["--potential", "missing/nep.txt"], "does not exist"),
        (["--start", "missing.xyz"], "does not exist"),
        (["--config", "missing.yaml"], "does not exist"),
    ],
)
def test_cli_bad_input_is_one_line_with_status_2(tmp_path, args, message):
    result = runner.invoke(app, ["build", "-o", str(tmp_path / "x.xyz"), *args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines


def test_cli_refuses_elements_the_potential_lacks(tmp_path):
    start = tmp_path / "nac.xyz"
    atoms = random_carbon(50, (10.0, 10.0, 10.0))
    atoms[0].symbol = "Na"
    atoms.write(start)
    result = runner.invoke(app, ["build", "--start", str(start), "--potential", "rebo",
                                 "-o", str(tmp_path / "x.xyz")])
    assert result.exit_code == 2
    assert "covers only carbon" in result.output and "Na" in result.output


def test_corrupt_nep_file_is_refused(tmp_path):
    bad = tmp_path / "nep.txt"
    bad.write_text("this is not a model\n")
    result = runner.invoke(app, ["build", "--box", "10", "--potential", str(bad),
                                 "-o", str(tmp_path / "x.xyz")])
    assert result.exit_code == 2 and "is not a NEP model" in result.output
