"""Active-learning loop (``hardcarbon learn``): a small real run with SevenNet labels."""

from __future__ import annotations

import json
from pathlib import Path

import ase.io
import numpy as np
import pytest
import yaml
from ase.build import bulk
from ase.neighborlist import neighbor_list
from typer.testing import CliRunner

from hardcarbon import InputError
from hardcarbon.cli import app
from hardcarbon.forcefield.learning import (
    ExploreConfig,
    LearnConfig,
    explore,
    hard_carbon_cells,
    learn,
)
from test_training import HAVE_LABELS, HAVE_NEPPO, NEEDS_TRAINING, TINY, tiny_cells

PNG = b"\x89PNG\r\n\x1a\n"
FILES = ("state.json", "errors.json", "explore.xyz", "explore.json", "disagreement.json",
         "selected.xyz", "model_0/nep.txt", "model_1/nep.txt", "model_0/test.xyz")


def small_config(initial_data: Path, starts: Path, **changes) -> LearnConfig:
    """Two-model committee, 150 training steps, four 60-step NVT runs, three labels."""
    settings = {
        "initial_data": initial_data, "committee": 2, "max_iterations": 2, "tolerance": 0.0,
        "train": {**TINY, "steps": 150, "output_interval": 50},
        "label": {"calculator": "sevenn", "workers": 1},
        "select": {"count": 3, "min_disagreement": 1e-4, "max_disagreement": 1e3},
        "explore": {"temperatures": [600.0], "ensembles": ["nvt"], "steps": 60, "interval": 15,
                    "starts": starts, "carbon_atoms": 16, "loadings": [0.06]},
        "dataset": {"counts": {"sodium": 1}},
    }
    settings.update(changes)
    return LearnConfig.model_validate(settings)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    """The 30 tiny cells labelled with SevenNet-0 + D3 (initial data) and two start cells."""
    if not (HAVE_NEPPO and HAVE_LABELS):
        pytest.skip("torch, neppo or SevenNet is not installed")
    from hardcarbon.forcefield.labelling import LabelConfig, label_structures

    folder = tmp_path_factory.mktemp("initial")
    cells = tiny_cells()
    labelled = label_structures(cells, LabelConfig(calculator="sevenn", workers=1),
                                folder / "labels")
    assert len(labelled) == 30
    ase.io.write(folder / "initial.xyz", labelled, format="extxyz")
    ase.io.write(folder / "starts.xyz", [cells[1], cells[10]], format="extxyz")  # bcc Na, Na/C
    return folder / "initial.xyz", folder / "starts.xyz"


@pytest.fixture(scope="module")
def resumed_run(inputs, tmp_path_factory) -> dict:
    """One iteration, then a rerun with two: the results and what iteration 0 left."""
    workdir = tmp_path_factory.mktemp("learn")
    first = learn(small_config(*inputs, max_iterations=1), workdir)
    it0 = workdir / "iter_000"
    stamps = {name: (it0 / name).stat().st_mtime_ns
              for name in ("model_0/nep.txt", "model_1/nep.txt", "explore.xyz")}
    state = json.loads((it0 / "state.json").read_text())
    second = learn(small_config(*inputs), workdir)
    return {"workdir": workdir, "first": first, "second": second, "stamps": stamps,
            "state_after_first": state}


# --------------------------------------------------------------------------------------------
# the loop, end to end


@pytest.mark.slow
@NEEDS_TRAINING
def test_two_iterations_train_explore_select_and_label(resumed_run, inputs):
    workdir, result = resumed_run["workdir"], resumed_run["second"]
    for n in (0, 1):
        for name in FILES:
            assert (workdir / f"iter_{n:03d}" / name).is_file(), (n, name)
    assert (workdir / "learning.png").read_bytes().startswith(PNG)
    assert json.loads((workdir / "learning.json").read_text()) == json.loads(
        json.dumps(result))

    rows = result["iterations"]
    assert [r["iteration"] for r in rows] == [0, 1]
    assert result["stop_reason"] in ("max_iterations", "tolerance")
    assert result["final_model"] == str(workdir / "iter_001" / "model_0" / "nep.txt")
    for row in rows:
        assert row["force_rmse_meV_A"] > 0 and row["energy_rmse_meV_atom"] > 0
        assert 0 < row["disagreement_median_eV_A"] <= row["disagreement_max_eV_A"]
        assert row["n_frames"] > 0 and row["n_selected"] == 3
        assert set(row["seconds"]) >= {"train", "errors", "explore", "select"}
    assert rows[0]["n_labelled"] == 3 and rows[1]["n_labelled"] is None  # last: not labelled
    assert "label" in rows[0]["seconds"]
    assert not (workdir / "iter_001" / "labels").exists()

    # the labelled set grew by the labels of iteration 0, all in iteration 1's data
    assert rows[0]["n_train"] + rows[0]["n_test"] == 30
    assert rows[1]["n_train"] + rows[1]["n_test"] == 33
    labels = [ase.io.read(p) for p in sorted((workdir / "iter_000" / "labels").glob("*.xyz"))]
    assert len(labels) == 3 and all("REF_forces" in a.arrays for a in labels)
    run1 = workdir / "iter_001" / "model_0"
    data = ase.io.read(run1 / "train.xyz", index=":") + ase.io.read(run1 / "test.xyz",
                                                                     index=":")
    for label in labels:
        assert any(len(a) == len(label) and np.allclose(a.positions, label.positions, atol=1e-5)
                   for a in data)

    # iteration 1 fine-tunes iteration 0's model_0, with seeds train.seed + k
    for k in (0, 1):
        run = json.loads((workdir / "iter_001" / f"model_{k}" / "training.json").read_text())
        assert run["config"]["initial_model"] == str(workdir / "iter_000/model_0/nep.txt")
        assert run["config"]["seed"] == TINY["seed"] + k

    # the selection: in the window, at most max_atoms, with the committee's disagreement
    spread = json.loads((workdir / "iter_000" / "disagreement.json").read_text())
    assert spread["n_frames"] == rows[0]["n_frames"] == len(spread["frames"])
    selected = ase.io.read(workdir / "iter_000" / "selected.xyz", index=":")
    frames = np.array(spread["frames"])
    assert [a.info["disagreement"] for a in selected] == pytest.approx(
        frames[spread["selected"]].tolist())
    assert all(a.info["config_type"].split("/")[-1] == "explore_nvt_600K" for a in selected)


@pytest.mark.slow
@NEEDS_TRAINING
def test_rerun_continues_without_redoing_finished_stages(resumed_run):
    workdir, first = resumed_run["workdir"], resumed_run["first"]
    assert first["stop_reason"] == "max_iterations" and len(first["iterations"]) == 1
    assert set(resumed_run["state_after_first"]["stages"]) == {
        "train", "errors", "explore", "select"}  # the last iteration is not labelled
    it0 = workdir / "iter_000"
    for name, stamp in resumed_run["stamps"].items():
        assert (it0 / name).stat().st_mtime_ns == stamp, name
    state = json.loads((it0 / "state.json").read_text())
    for stage in ("train", "errors", "explore", "select"):
        assert state["stages"][stage] == resumed_run["state_after_first"]["stages"][stage]
    assert "label" in state["stages"]


@pytest.mark.slow
@NEEDS_TRAINING
def test_other_settings_in_the_same_workdir_are_refused(resumed_run, inputs):
    with pytest.raises(InputError, match=r"committee.*rerun with the settings in") as error:
        learn(small_config(*inputs, committee=3), resumed_run["workdir"])
    assert "\n" not in str(error.value)


# --------------------------------------------------------------------------------------------
# pieces and bad input (fast)


def test_hard_carbon_cells_keep_their_distances():
    cells = hard_carbon_cells(ExploreConfig())
    assert [c.get_chemical_formula() for c in cells] == ["C48Na", "C48Na3", "C48Na6"]
    for atoms in cells:
        assert atoms.get_volume() == pytest.approx(48 * 12.011 / 6.02214e23 / 1.5e-24, rel=1e-3)
        i, j, d = neighbor_list("ijd", atoms, 3.0)
        symbols = np.array(atoms.get_chemical_symbols())
        pairs = ["-".join(sorted(p)) for p in zip(symbols[i], symbols[j], strict=True)]
        limits = {"C-C": 1.4, "C-Na": 2.2, "Na-Na": 3.0}
        assert all(dist >= limits[p] - 1e-9 for p, dist in zip(pairs, d, strict=True))
        assert atoms.info["family"] == "disordered"


def test_explore_saves_frames_and_ends_runs_with_close_atoms(random_nep):
    sodium = bulk("Na", "bcc", a=4.23, cubic=True).repeat(2)
    sodium.info.update(family="sodium", config_type="sodium/bcc")
    config = ExploreConfig(temperatures=[300.0], steps=20, interval=10)
    frames, runs = explore(random_nep, [sodium], config, seed=3)
    assert [(r["ensemble"], r["ended"], r["frames"]) for r in runs] == [
        ("nvt", "finished", 2), ("npt", "finished", 2)]
    assert [f.info["explore_step"] for f in frames] == [10, 20, 10, 20]
    assert frames[0].info["config_type"] == "sodium/bcc/explore_nvt_300K"
    assert frames[0].info["family"] == "sodium" and frames[0].calc is None
    # a frame with atoms closer than min_distance ends its run, keeping nothing after it
    frames, runs = explore(random_nep, [sodium], config.model_copy(
        update={"min_distance": 4.0, "ensembles": ["nvt"]}))
    assert frames == [] and runs[0]["ended"].startswith("Na-Na 3.")
    assert runs[0]["ended"].endswith("(floor 4.00 Å)")
    # so does a pair under its own floor, here Na-Na at 3.12 Å under 2 x 1.66 Å, far above
    # min_distance: the check that catches a Na collapse
    squeezed = bulk("Na", "bcc", a=3.6, cubic=True).repeat(2)
    frames, runs = explore(random_nep, [squeezed], config.model_copy(
        update={"pair_fraction": 1.0, "ensembles": ["nvt"]}))
    assert frames == [] and runs[0]["ended"].endswith("(floor 3.32 Å)")


def test_bad_settings_are_one_line_input_errors(tmp_path):
    with pytest.raises(InputError, match="give initial_data") as error:
        LearnConfig()
    assert "\n" not in str(error.value)
    for bad in ({"committee": 1}, {"train": {"initial_model": "nep.txt"}},
                {"explore": {"ensembles": ["nve"]}}, {"select": {"bogus": 1}}):
        with pytest.raises(InputError):
            LearnConfig.model_validate({"initial_data": "x.xyz", **bad})
    missing = LearnConfig(initial_data=tmp_path / "missing.xyz")
    with pytest.raises(InputError, match=r"initial data file .*missing.xyz does not exist"):
        learn(missing, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_loop_defaults_of_select_and_dataset_survive_partial_settings():
    config = LearnConfig.model_validate({"initial_data": "x.xyz", "select": {"count": 5},
                                         "dataset": {"seed": 4}})
    assert (config.select.count, config.select.max_atoms) == (5, 60)
    assert config.dataset.max_atoms == 64 and sum(config.dataset.counts.values()) == 11


def test_cli_learn_reports_bad_input(tmp_path):
    config = tmp_path / "learn.yaml"
    config.write_text(yaml.safe_dump({"initial_data": str(tmp_path / "none.xyz")}))
    result = CliRunner().invoke(app, ["learn", "--config", str(config), "-w",
                                      str(tmp_path / "w"), "--iterations", "2"])
    assert result.exit_code == 2
    assert "error: initial data file" in result.output


def test_example_config_is_valid():
    path = Path(__file__).parents[1] / "configs" / "learn.yaml"
    config = LearnConfig.from_yaml(path)
    assert config.label.calculator == "gpaw" and config.committee == 3
    for data in (config.initial_model, config.initial_data, config.secondary_data):
        assert data.is_file(), f"{path.name} names {data}, which does not exist"


@pytest.mark.slow
@NEEDS_TRAINING
def test_secondary_labels_join_training_on_the_reference_zero(inputs, tmp_path):
    initial, starts = inputs
    labelled = ase.io.read(initial, ":")
    primary, secondary = tmp_path / "primary.xyz", tmp_path / "secondary.xyz"
    ase.io.write(primary, labelled[::2], format="extxyz")  # 15 cells, both families mixed
    shifted = []
    for atoms in labelled:  # another method: its own zero, -3 eV per C and +1 eV per Na
        atoms = atoms.copy()
        symbols = atoms.get_chemical_symbols()
        atoms.info["REF_energy"] += -3.0 * symbols.count("C") + symbols.count("Na")
        shifted.append(atoms)
    ase.io.write(secondary, shifted, format="extxyz")
    config = small_config(primary, starts, max_iterations=1, secondary_data=secondary,
                          secondary_weight=0.2)
    learn(config, tmp_path / "run")
    run = tmp_path / "run" / "iter_000" / "model_0"
    used = ase.io.read(run / "train.xyz", ":") + ase.io.read(run / "test.xyz", ":")
    assert len(used) == 30
    weights = sorted(float(a.info.get("weight", 1.0)) for a in used)
    assert weights == [0.2] * 15 + [1.0] * 15
    original = {round(a.info["REF_energy"], 6) for a in labelled}
    assert all(round(a.get_potential_energy(), 6) in original for a in used)
