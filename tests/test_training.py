"""NEP training (neppo, GPUMD's nep), evaluation, parity plots and the descriptor map."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, graphene

from hardcarbon import InputError
from hardcarbon.forcefield.evaluation import (
    dataset_map,
    evaluate_calculator,
    evaluate_labels,
    evaluate_model,
    parity_plots,
    summary,
)
from hardcarbon.forcefield.nep import nep_calculator
from hardcarbon.forcefield.training import (
    STATE_FILE,
    TrainConfig,
    apply_weights,
    load_training_data,
    nep_in_text,
    read_loss,
    split_train_test,
    train_nep,
    training_rmse,
)

HAVE_NEPPO = all(importlib.util.find_spec(m) is not None for m in ("torch", "neppo"))
HAVE_LABELS = all(importlib.util.find_spec(m) is not None for m in ("sevenn", "dftd3"))
NEEDS_TRAINING = pytest.mark.skipif(
    not (HAVE_NEPPO and HAVE_LABELS),
    reason="torch, neppo or SevenNet (labels) is not installed: pip install torch==2.13.0, "
           "then pip install '.[train,dft]' (see docs/training.md)")

#: A small NEP (16 neurons): 600 steps of 8 structures take about 10 s on one core.
TINY = dict(engine="neppo", neuron=16, steps=600, batch=8, output_interval=100,
            learning_rate=(2e-2, 1e-3), test_fraction=0.2, seed=1, threads=1)
PNG = b"\x89PNG\r\n\x1a\n"


def tiny_cells(per_family: int = 10, seed: int = 0) -> list[Atoms]:
    """Cells of 4-9 atoms in three families: sodium, Na on graphene, diamond carbon."""
    rng = np.random.default_rng(seed)
    cells = []
    for i in range(per_family):
        lattice = "bcc" if i % 2 else "fcc"
        na = bulk("Na", lattice, a=(4.23 if i % 2 else 5.3) * rng.uniform(0.95, 1.05),
                  cubic=True).repeat((2, 1, 1))
        na.rattle(0.08, seed=int(rng.integers(1 << 30)))
        na.info.update(family="sodium", config_type=f"sodium/{lattice}")
        cells.append(na)
    for _ in range(per_family):
        sheet = graphene(a=2.46 * rng.uniform(0.98, 1.02), size=(2, 2, 1), vacuum=5.0)
        sheet.pbc = True
        hollow = sheet.positions[:6].mean(axis=0) * (1, 1, 0)
        sheet.append("Na")
        sheet.positions[-1] = hollow + rng.uniform(-0.7, 0.7, 3) * (1, 1, 0) + (
            0, 0, 5.0 + rng.uniform(2.2, 3.2))
        sheet.rattle(0.03, seed=int(rng.integers(1 << 30)))
        sheet.info.update(family="layered", config_type="layered/graphene_Na")
        cells.append(sheet)
    for _ in range(per_family):
        diamond = bulk("C", "diamond", a=3.57 * rng.uniform(0.98, 1.03), cubic=True)
        diamond.rattle(0.03, seed=int(rng.integers(1 << 30)))
        diamond.info.update(family="diamond", config_type="diamond/bulk")
        cells.append(diamond)
    return cells


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> list[Atoms]:
    """30 tiny cells labelled with SevenNet-0 + D3(BJ) (about 10 s)."""
    if not (HAVE_NEPPO and HAVE_LABELS):
        pytest.skip("torch, neppo or SevenNet is not installed")
    from hardcarbon.forcefield.labelling import LabelConfig, label_structures

    folder = tmp_path_factory.mktemp("labels")
    structures = label_structures(tiny_cells(), LabelConfig(calculator="sevenn", workers=1),
                                  folder)
    assert len(structures) == 30
    return structures


@pytest.fixture(scope="module")
def trained(labelled, tmp_path_factory) -> Path:
    """A tiny NEP trained with neppo on the CPU; the run directory."""
    workdir = tmp_path_factory.mktemp("nep")
    model = train_nep(labelled, TrainConfig(**TINY), workdir)
    assert model == workdir / "nep.txt"
    return workdir


# --------------------------------------------------------------------------------------------
# real training run


@pytest.mark.slow
@NEEDS_TRAINING
def test_tiny_neppo_run_learns_and_loads_in_calorine(trained, labelled):
    workdir = trained
    for name in ("nep.in", "train.xyz", "test.xyz", "loss.out", "nep.txt", STATE_FILE):
        assert (workdir / name).is_file(), name
    assert (workdir / "nep.txt").read_text().startswith("nep4 2 C Na\n")

    # GPUMD formats: 24 training and 6 test structures, two of each family held out
    train = ase.io.read(workdir / "train.xyz", index=":")
    test = ase.io.read(workdir / "test.xyz", index=":")
    assert (len(train), len(test)) == (24, 6)
    assert sorted(a.info["config_type"].split("/")[0] for a in test) == [
        "diamond", "diamond", "layered", "layered", "sodium", "sodium"]
    header = (workdir / "train.xyz").read_text().splitlines()[1]
    assert "energy=" in header and "stress=" in header and ":forces:R:3" in header
    nep_in = (workdir / "nep.in").read_text()
    assert "type 2 C Na\n" in nep_in and "generation 600\n" in nep_in

    # the model loads in calorine and gives energies for every structure
    calc = nep_calculator(workdir / "nep.txt", ["C", "Na"])
    for atoms in labelled:
        probe = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)
        probe.calc = calc
        assert np.isfinite(probe.get_potential_energy())

    # training reduced the error well below that of the best constant energy per atom
    rows = read_loss(workdir / "loss.out")
    assert [int(r["step"]) for r in rows] == [100, 200, 300, 400, 500, 600]
    assert rows[-1]["total"] < 0.5 * rows[0]["total"]
    per_atom = np.array([a.get_potential_energy() / len(a) for a in train])
    rmse = training_rmse(workdir)
    assert rmse["energy_train"] < 0.05 * 1000 * per_atom.std()  # std: 3.5 eV/atom
    forces = np.concatenate([a.get_forces() for a in train])
    assert rmse["force_train"] < 0.8 * 1000 * np.sqrt(np.mean(forces**2))  # RMS: 1.2 eV/Å

    # a rerun with the same inputs returns the finished model without training
    stamps = {name: (workdir / name).stat().st_mtime_ns for name in ("nep.txt", "loss.out")}
    assert train_nep(labelled, TrainConfig(**TINY), workdir) == workdir / "nep.txt"
    assert {name: (workdir / name).stat().st_mtime_ns for name in stamps} == stamps


@pytest.mark.slow
@NEEDS_TRAINING
def test_evaluation_per_family_plots_and_map(trained, labelled, tmp_path):
    workdir = trained
    results = evaluate_model(workdir / "nep.txt", workdir / "test.xyz")
    overall = results["overall"]
    assert results["model"] == f"NEP ({workdir / 'nep.txt'})"
    assert overall["n_structures"] == 6 and overall["n_stress"] == 6
    assert set(results["families"]) == {"sodium", "layered", "diamond"}
    assert sum(f["n_structures"] for f in results["families"].values()) == 6
    assert sum(f["n_atoms"] for f in results["families"].values()) == overall["n_atoms"]
    for metrics in results["families"].values():
        assert metrics["energy_rmse_meV_atom"] >= 0 and metrics["stress_rmse_GPa"] >= 0
    # the same numbers as neppo's own report on the test set
    last = read_loss(workdir / "loss.out")[-1]
    assert overall["energy_rmse_meV_atom"] == pytest.approx(
        1000 * last["rmse_energy_test"], rel=2e-3, abs=0.02)
    assert overall["force_rmse_meV_A"] == pytest.approx(
        1000 * last["rmse_force_test"], rel=2e-3, abs=0.02)
    assert "forces" not in summary(results) and "overall" in summary(results)

    written = parity_plots(results, tmp_path / "plots")
    assert [p.name for p in written] == ["energy_parity.png", "force_parity.png",
                                         "stress_parity.png"]
    map_png = dataset_map(workdir / "nep.txt", labelled, tmp_path / "plots" / "map.png")
    for path in [*written, map_png]:
        assert path.read_bytes()[:8] == PNG and path.stat().st_size > 10_000
    assert not list((tmp_path / "plots").glob(".*.tmp"))


@pytest.mark.slow
@NEEDS_TRAINING
def test_calculator_and_label_comparison_share_one_implementation(labelled):
    from ase.calculators.calculator import Calculator, all_changes
    from ase.stress import full_3x3_to_voigt_6_stress

    by_positions = {a.positions.tobytes(): a for a in labelled}

    class Stored(Calculator):
        """Returns the stored labels plus 0.1 eV/atom, i.e. a shifted energy zero."""

        implemented_properties = ("energy", "forces", "stress")

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            ref = by_positions[self.atoms.positions.tobytes()]
            self.results = {"energy": ref.info["REF_energy"] + 0.1 * len(ref),
                            "forces": ref.arrays["REF_forces"],
                            "stress": full_3x3_to_voigt_6_stress(
                                ref.info["REF_stress"].reshape(3, 3))}

    results = evaluate_calculator(Stored(), labelled, name="shifted")
    assert results["overall"]["energy_rmse_meV_atom"] == pytest.approx(100.0)
    assert results["overall"]["force_rmse_meV_A"] == pytest.approx(0.0, abs=1e-9)
    aligned = evaluate_calculator(Stored(), labelled, align_energies=True)
    assert aligned["overall"]["energy_rmse_meV_atom"] == pytest.approx(0.0, abs=1e-6)
    assert aligned["energy_offsets_eV"] == pytest.approx({"C": 0.1, "Na": 0.1})

    same = evaluate_labels(labelled, labelled)
    assert same["model"].startswith("SevenNet ")
    assert same["overall"]["energy_rmse_meV_atom"] == 0.0
    with pytest.raises(InputError, match="1 predicted and 30 reference"):
        evaluate_labels(labelled[:1], labelled)


@pytest.mark.slow
@NEEDS_TRAINING
def test_interrupted_neppo_run_resumes(labelled, tmp_path, monkeypatch):
    import neppo.trainer

    real = neppo.trainer.write_loss_row

    def killed_after_step_100(directory, row):
        real(directory, row)
        if row["generation"] == 100:
            raise KeyboardInterrupt

    config = TrainConfig(**{**TINY, "steps": 200, "output_interval": 50})
    monkeypatch.setattr(neppo.trainer, "write_loss_row", killed_after_step_100)
    with pytest.raises(KeyboardInterrupt):
        train_nep(labelled, config, tmp_path)
    assert '"status": "running"' in (tmp_path / STATE_FILE).read_text()
    monkeypatch.setattr(neppo.trainer, "write_loss_row", real)

    model = train_nep(labelled, config, tmp_path)
    rows = read_loss(tmp_path / "loss.out")
    assert [int(r["step"]) for r in rows] == [50, 100, 150, 200]
    assert (tmp_path / "loss.out").read_text().count("# columns") == 2
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["status"] == "done" and state["resumed_at"] == [100]
    assert state["steps_done"] == 200
    nep_calculator(model, ["C", "Na"])

    # new inputs start a new run in the same folder
    train_nep(labelled[:20], config, tmp_path)
    assert [int(r["step"]) for r in read_loss(tmp_path / "loss.out")] == [50, 100, 150, 200]


FAKE_NEP = """#!{python}
import os, shutil, sys
text = open("nep.in").read()
for keyword in ("seed", "learning_rate", "output_interval", "loss_form"):
    assert keyword not in text, keyword
generation = int(text.split("generation")[1].split()[0])
open("calls.txt", "a").write(f"{{generation}}\\n")
crash_at = int(os.environ.get("FAKE_NEP_CRASH_AT", "0"))
with open("loss.out", "a") as out:
    for g in range(100, generation + 1, 100):
        out.write(f"{{g}} 1 0.1 0.1 0.05 0.5 0.1 0.06 0.6 0.1\\n")
        open("nep.restart", "w").write("0.1 0.01\\n")
        if g == crash_at:
            sys.exit(137)
shutil.copy(os.environ["FAKE_NEP_MODEL"], "nep.txt")
"""


@pytest.mark.slow
@NEEDS_TRAINING
def test_gpumd_engine_runs_nep_and_resumes_from_restart(trained, labelled, tmp_path,
                                                        monkeypatch):
    """GPUMD's nep, replaced by a script that writes what nep writes."""
    fake = tmp_path / "bin" / "nep"
    fake.parent.mkdir()
    fake.write_text(FAKE_NEP.format(python=sys.executable))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_NEP_MODEL", str(trained / "nep.txt"))
    monkeypatch.setenv("FAKE_NEP_CRASH_AT", "200")
    config = TrainConfig(**{**TINY, "engine": "auto", "generation": 300, "population": 10})
    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="exit status 137"):
        train_nep(labelled, config, run)
    monkeypatch.delenv("FAKE_NEP_CRASH_AT")
    model = train_nep(labelled, config, run)

    assert (run / "calls.txt").read_text().split() == ["300", "100"]  # 200 of 300 were done
    nep_in = (run / "nep.in").read_text()
    assert "population 10\n" in nep_in and "generation 300\n" in nep_in
    assert "batch 1000\n" not in nep_in and "batch 8\n" in nep_in
    assert [int(r["step"]) for r in read_loss(run / "loss.out")] == [100, 200, 300]
    assert training_rmse(run) == {"energy_train": 50.0, "force_train": 500.0,
                                  "energy_test": 60.0, "force_test": 600.0}
    assert model.read_bytes() == (trained / "nep.txt").read_bytes()


# --------------------------------------------------------------------------------------------
# inputs, split, nep.in, loss.out and bad input


def _with_labels(atoms: Atoms, energy: float = -1.0) -> Atoms:
    atoms = atoms.copy()
    atoms.info["REF_energy"] = energy
    atoms.arrays["REF_forces"] = np.zeros((len(atoms), 3))
    return atoms


def test_split_is_stratified_deterministic_and_stable():
    cells = []
    for family, count in (("disordered", 20), ("layered", 10), ("sodium", 3), ("pair", 2),
                          ("lone", 1)):
        for i in range(count):
            atoms = bulk("Na", "bcc", a=4.2 + 0.01 * i)
            atoms.info["config_type"] = f"{family}/x"
            cells.append(_with_labels(atoms))
    train, test = split_train_test(cells, 0.2, seed=3)
    assert sorted(train + test) == list(range(len(cells)))
    families = [cells[i].info["config_type"].split("/")[0] for i in test]
    # 20 %, but at least one of a family of two or more, and never a lone cell
    assert sorted(families) == ["disordered"] * 4 + ["layered"] * 2 + ["pair", "sodium"]
    assert split_train_test(cells, 0.2, seed=3) == (train, test)
    assert split_train_test(cells, 0.2, seed=4)[1] != test
    # the split follows the structures, not their order
    order = np.random.default_rng(0).permutation(len(cells))
    _, shuffled = split_train_test([cells[i] for i in order], 0.2, seed=3)
    assert sorted(order[shuffled].tolist()) == test
    assert split_train_test(cells, 0.0)[1] == []


def test_nep_in_for_each_engine():
    config = TrainConfig(zbl=2.0, lambda_2=0.05, epochs=10)
    gpumd = nep_in_text(config, ["C", "Na"], "gpumd", 100)
    assert gpumd == ("version 4\ntype 2 C Na\ncutoff 6 4\nn_max 4 4\nbasis_size 8 8\n"
                     "l_max 4 2 0\nneuron 30\nzbl 2\nlambda_e 1\nlambda_f 1\nlambda_v 0.1\n"
                     "lambda_2 0.05\nbatch 1000\npopulation 50\ngeneration 100000\n")
    neppo = nep_in_text(config, ["C", "Na"], "neppo", 100)
    assert "population" not in neppo and "batch 32\n" in neppo
    assert "generation 40\n" in neppo  # 10 epochs of ceil(100 / 32) = 4 batches
    assert "seed 42\nlearning_rate 0.01 0.0001\nweight_decay 0\nloss_form mse\n" in neppo


def test_typewise_zbl_goes_into_nep_in_and_needs_a_cap():
    config = TrainConfig(zbl=2.0, zbl_typewise=0.5)
    for engine in ("gpumd", "neppo"):
        assert "zbl 2\nuse_typewise_cutoff_zbl 0.5\n" in nep_in_text(config, ["C", "Na"],
                                                                      engine, 100)
    with pytest.raises(ValueError, match="zbl_typewise needs zbl"):
        TrainConfig(zbl_typewise=0.5)


def test_read_loss_counts_steps_over_restarts(tmp_path):
    loss = tmp_path / "loss.out"
    loss.write_text("100 1 0 0 0.5 2.0 0.1\n200 1 0 0 0.4 1.5 0.1\n"
                    "100 1 0 0 0.3 1.0 0.1\n200 1 0 0 0.2 0.9 0.1\n300 1 0 0 0.1 0.8")
    rows = read_loss(loss)
    assert [r["step"] for r in rows] == [100, 200, 300, 400, 500]
    assert rows[-1]["rmse_force_train"] == 0.8 and "rmse_energy_test" not in rows[-1]
    assert training_rmse(tmp_path) == {"energy_train": 100.0, "force_train": 800.0}
    assert read_loss(tmp_path / "missing.out") == []


def test_training_data_without_forces_is_one_line(tmp_path):
    bare = bulk("Na", "bcc", a=4.2, cubic=True)
    with pytest.raises(InputError, match=r"^training structure 0 \(Na2\) has no forces: "
                                         "label it first"):
        train_nep([bare], TrainConfig(engine="neppo"), tmp_path / "a")

    path = tmp_path / "unlabelled.xyz"
    ase.io.write(path, [_with_labels(bare), bare], format="extxyz")
    with pytest.raises(InputError) as error:
        train_nep(path, TrainConfig(), tmp_path / "b")
    assert str(error.value).startswith(f"training file {path} has no forces (structure 1): "
                                       "label it first")
    assert "\n" not in str(error.value)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()

    with pytest.raises(InputError, match=r"training file .*missing\.xyz does not exist"):
        train_nep(tmp_path / "missing.xyz", TrainConfig(), tmp_path / "d")
    with pytest.raises(InputError, match="leaves out"):
        train_nep([_with_labels(bare)], TrainConfig(elements=["C"]), tmp_path / "c")


def test_gpumd_labels_read_back(tmp_path):
    """A GPUMD train.xyz (energy=, forces, virial=) is training data as it is."""
    atoms = bulk("Na", "bcc", a=4.2, cubic=True)
    atoms.positions[0] += 0.1
    lines = ['2', 'energy=-2.5 virial="0.1 0 0 0 0.1 0 0 0 0.1" '
             'Lattice="4.2 0 0 0 4.2 0 0 0 4.2" pbc="T T T" '
             'config_type=sodium/bcc Properties=species:S:1:pos:R:3:forces:R:3',
             "Na 0.1 0.1 0.1 0.5 0 0", "Na 2.1 2.1 2.1 -0.5 0 0"]
    path = tmp_path / "train.xyz"
    path.write_text("\n".join(lines) + "\n")
    (loaded,) = load_training_data(path)
    assert loaded.info["REF_energy"] == -2.5 and loaded.info["family"] == "sodium"
    assert loaded.arrays["REF_forces"][0, 0] == 0.5
    np.testing.assert_allclose(loaded.info["REF_stress"].reshape(3, 3),
                               -0.1 * np.eye(3) / 4.2**3)


def test_bad_settings_and_engines_are_one_line(monkeypatch):
    with pytest.raises(InputError, match=r"^setting cutoff=\(4\.0, 5\.0\) is invalid: need 3 <="):
        TrainConfig(cutoff=(4.0, 5.0))
    with pytest.raises(InputError, match=r"^give steps or epochs, not both$"):
        TrainConfig(steps=10, epochs=1.0)
    with pytest.raises(InputError, match=r"^setting neuron=0 is invalid"):
        TrainConfig.model_validate({"neuron": 0})
    with pytest.raises(InputError, match=r"^unknown setting 'generations': the settings are"):
        TrainConfig.model_validate({"generations": 10})
    with pytest.raises(InputError, match=r"^setting device='gpu' is invalid: .*use cpu, cuda"):
        TrainConfig(device="gpu")
    from hardcarbon.forcefield import training

    if HAVE_NEPPO:
        import torch

        if not torch.cuda.is_available():
            with pytest.raises(InputError, match=r"^device cuda asked for, but PyTorch .* sees no"):
                training.resolve_engine(TrainConfig(engine="neppo", device="cuda"))

    with pytest.raises(InputError, match="GPUMD's nep executable 'no-such-nep' is not on PATH"):
        training.resolve_engine(TrainConfig(engine="gpumd", nep_command="no-such-nep"))
    if HAVE_NEPPO:
        assert training.resolve_engine(TrainConfig(nep_command="no-such-nep")) == "neppo"
    monkeypatch.setattr(training.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InputError, match=r"neppo is not installed: pip install torch==2\.13\.0"):
        training.resolve_engine(TrainConfig(engine="neppo"))


def test_weights_by_config_type_reach_the_training_file(tmp_path):
    from hardcarbon.forcefield.labelling import write_training_file

    cells = tiny_cells(per_family=2)
    for atoms in cells:  # labels only so that the file can be written
        atoms.info["REF_energy"] = -1.0 * len(atoms)
        atoms.arrays["REF_forces"] = np.zeros((len(atoms), 3))
    cells[0].info["weight"] = 0.5
    config = TrainConfig(weights={"graphene_Na$": 10.0, "^sodium/": 4.0},
                         energy_weights={"bcc": 5.0})
    weighted = apply_weights(cells, config.weights)
    weighted = apply_weights(weighted, config.energy_weights, key="energy_weight")
    assert [a.info["config_type"] for a in weighted] == [
        "sodium/fcc", "sodium/bcc", "layered/graphene_Na", "layered/graphene_Na",
        "diamond/bulk", "diamond/bulk"]
    assert [a.info.get("weight", 1.0) for a in weighted] == [2.0, 4.0, 10.0, 10.0, 1.0, 1.0]
    write_training_file(weighted, tmp_path / "train.xyz")
    text = (tmp_path / "train.xyz").read_text()
    assert text.count(" weight=10") == 2 and text.count(" weight=4") >= 1
    assert text.count("energy_weight=5") == 1  # the bcc cell only
    with pytest.raises(InputError, match=r"weights pattern '\[' is not a regular expression"):
        TrainConfig(weights={"[": 2.0})
    with pytest.raises(InputError, match="must be positive"):
        TrainConfig(weights={"layered": 0.0})


def test_unreadable_model_is_one_line(tmp_path):
    structures = [_with_labels(bulk("Na", "bcc", a=4.2, cubic=True))]
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("this is not a model\n")
    with pytest.raises(InputError, match="is not a NEP model"):
        evaluate_model(garbage, structures)
    with pytest.raises(InputError, match="cannot read NEP model"):
        evaluate_model(tmp_path / "missing.txt", structures)


@pytest.mark.slow
@NEEDS_TRAINING
def test_corrupt_or_unsuitable_model_is_one_line(tmp_path, trained):
    structures = [_with_labels(bulk("Na", "bcc", a=4.2, cubic=True))]
    good = trained / "nep.txt"
    lines = good.read_text().splitlines()
    truncated = tmp_path / "truncated.txt"
    truncated.write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    with pytest.raises(InputError) as error:
        evaluate_model(truncated, structures)
    assert str(error.value).startswith(f"cannot load NEP model {truncated} (")
    assert str(error.value).endswith("the file is corrupt or truncated")
    assert "\n" not in str(error.value)
    garbled = tmp_path / "garbled.txt"
    garbled.write_text("\n".join([*lines[:20], "1.0e+x", *lines[21:]]) + "\n")
    with pytest.raises(InputError, match="corrupt or truncated"):
        evaluate_model(garbled, structures)
    with pytest.raises(InputError, match="corrupt or truncated"):
        dataset_map(garbled, structures, tmp_path / "map.png")
    assert not (tmp_path / "map.png").exists()
    with pytest.raises(InputError, match="covers C, Na but not Cu"):
        evaluate_model(good, [_with_labels(bulk("Cu"))])
    with pytest.raises(InputError, match=r"reference structure 0 \(Na2\) has no forces"):
        evaluate_model(good, [bulk("Na", "bcc", a=4.2, cubic=True)])


@pytest.mark.slow
@NEEDS_TRAINING
def test_fine_tuning_starts_from_the_initial_model(trained, labelled, tmp_path):
    workdir = trained
    start = workdir / "nep.txt"
    settings = dict(TINY, steps=100, neuron=24, cutoff=(5.0, 3.5),
                    learning_rate=(1e-3, 1e-4), initial_model=start)
    model = train_nep(labelled, TrainConfig(**settings), tmp_path / "tuned")
    # the descriptor comes from the initial model, not from the (different) settings; the
    # larger neuron setting widens its network (16 -> 24)
    assert model.read_text().splitlines()[:5] == start.read_text().splitlines()[:5]
    assert model.read_text().splitlines()[5] == "ANN 24 0"
    nep_in = (tmp_path / "tuned" / "nep.in").read_text()
    assert "neuron 24\n" in nep_in and "cutoff 6 4\n" in nep_in
    # 100 gentle steps from a trained model stay near its error; from scratch they would not
    before = training_rmse(workdir)["energy_train"]
    after = training_rmse(tmp_path / "tuned")["energy_train"]
    assert after < 1.5 * before
    scratch = train_nep(labelled, TrainConfig(**dict(TINY, steps=100)), tmp_path / "scratch")
    assert scratch.is_file()
    assert after < training_rmse(tmp_path / "scratch")["energy_train"]


def test_widening_keeps_the_model_and_never_narrows(random_nep, tmp_path):
    from calorine.calculators import CPUNEP
    from calorine.nep import read_model

    from hardcarbon.forcefield.nep import widen_nep

    wide = widen_nep(random_nep, 20, tmp_path / "wide.txt")
    assert "ANN 20 0" in wide.read_text().splitlines()
    atoms = bulk("C", "diamond", a=3.57, cubic=True) * (2, 2, 2)
    atoms[0].symbol = "Na"
    atoms.rattle(0.1, seed=1)
    results = []
    for path in (random_nep, wide):
        probe = atoms.copy()
        probe.calc = CPUNEP(str(path))
        results.append((probe.get_potential_energy(), probe.get_forces(), probe.get_stress()))
    # the new neurons' output weights are zero: the same energies, forces and stresses
    for narrow, widened in zip(*results, strict=True):
        np.testing.assert_allclose(widened, narrow, rtol=0, atol=1e-9)
    # and their input weights are not, so training can move them (zero would be a saddle)
    w0 = read_model(str(wide)).ann_parameters["C"]["w0"]
    assert np.abs(w0[8:]).min() > 0
    # same width: the file itself; fewer neurons, set or asked for: one line
    assert widen_nep(random_nep, 8, tmp_path / "same.txt").read_bytes() == random_nep.read_bytes()
    with pytest.raises(InputError, match="can only be widened"):
        widen_nep(wide, 8, tmp_path / "narrow.txt")


@NEEDS_TRAINING
def test_fine_tuning_widens_on_request_only(random_nep):
    from hardcarbon.forcefield.training import _with_initial_model

    assert _with_initial_model(TrainConfig(initial_model=random_nep)).neuron == 8
    assert _with_initial_model(TrainConfig(initial_model=random_nep, neuron=12)).neuron == 12
    with pytest.raises(InputError, match="neuron 4 is fewer than the 8 of the initial model"):
        _with_initial_model(TrainConfig(initial_model=random_nep, neuron=4))


def test_fine_tuning_needs_a_model_file(labelled, tmp_path):
    with pytest.raises(InputError, match=r"initial model .* does not exist"):
        train_nep(labelled, TrainConfig(**dict(TINY, initial_model=tmp_path / "no.txt")),
                  tmp_path / "w")


@NEEDS_TRAINING
def test_fine_tuning_keeps_or_refuses_a_zbl_core(random_nep):
    from hardcarbon.forcefield.training import _with_initial_model

    tuning = {k: v for k, v in TINY.items() if k != "neuron"}  # the width of each model
    pretrained = Path(__file__).parents[1] / "data" / "models" / "pretrain-sevenn-v0" / "nep.txt"
    with pytest.raises(InputError, match="has no ZBL core"):
        _with_initial_model(TrainConfig(**dict(tuning, initial_model=pretrained, zbl=2.0)))
    assert _with_initial_model(TrainConfig(**dict(tuning, initial_model=pretrained))).zbl is None
    # a model with a ZBL core passes it on (tests/nep_models.py writes "zbl 1.0 1.8")
    assert _with_initial_model(TrainConfig(**dict(tuning, initial_model=random_nep))).zbl == 1.8
    # a typewise core ("zbl <inner> <outer> <factor>", as GPUMD writes it) keeps its factor
    typewise = random_nep.with_name("typewise.txt")
    typewise.write_text(random_nep.read_text().replace("zbl 1 1.8\n", "zbl 1 2 0.5\n"))
    config = _with_initial_model(TrainConfig(**dict(tuning, initial_model=typewise)))
    assert (config.zbl, config.zbl_typewise) == (2.0, 0.5)
    assert _with_initial_model(TrainConfig(**dict(tuning, initial_model=random_nep))
                               ).zbl_typewise is None
    with pytest.raises(InputError, match=r"typewise ZBL factor None, not 0\.5"):
        _with_initial_model(TrainConfig(**dict(tuning, initial_model=random_nep, zbl=1.8,
                                               zbl_typewise=0.5)))


def test_combining_two_references_recovers_the_per_element_shift():
    from hardcarbon.forcefield.training import combine_references

    rng = np.random.default_rng(3)
    secondary = []
    for n_c, n_na in [(4, 0), (6, 1), (2, 2), (8, 3), (5, 1), (3, 0)]:
        atoms = Atoms(f"C{n_c}Na{n_na}", positions=rng.uniform(0, 8, (n_c + n_na, 3)),
                      cell=[8, 8, 8], pbc=True)
        atoms.info["REF_energy"] = float(rng.normal(-30, 5))
        atoms.arrays["REF_forces"] = rng.normal(0, 1, (len(atoms), 3))
        atoms.info["config_type"] = "disordered/x"
        secondary.append(atoms)
    primary = []
    for atoms in secondary[:4]:  # the primary method labelled four of them
        copy = atoms.copy()
        n_c, n_na = atoms.get_chemical_symbols().count("C"), atoms.get_chemical_symbols().count(
            "Na")
        copy.info["REF_energy"] = atoms.info["REF_energy"] + 1.5 * n_c - 0.25 * n_na
        primary.append(copy)
    combined, shifts = combine_references(primary, secondary, weight=0.2)
    assert shifts["C"] == pytest.approx(1.5) and shifts["Na"] == pytest.approx(-0.25)
    assert shifts["rms_residual_meV_atom"] < 1e-6 and shifts["shared_structures"] == 4
    assert len(combined) == 6
    assert [a.info["weight"] for a in combined] == [1.0] * 4 + [0.2] * 2
    extra = combined[4]
    assert extra.info["REF_energy"] == pytest.approx(secondary[4].info["REF_energy"] + 7.5 - 0.25)
    with pytest.raises(InputError, match="too few"):
        combine_references(primary[:1], secondary)
