"""Command-line wiring of the analysis, classification and dataset commands."""

from __future__ import annotations

import json

import ase.io
import numpy as np
from ase import Atoms
from ase.build import graphene
from typer.testing import CliRunner

from hardcarbon.cli import app

runner = CliRunner()


def _bilayer_with_two_na(path):
    lower = graphene(size=(4, 4, 1), vacuum=10)
    lower.pbc = True
    upper = lower.copy()
    upper.translate([0, 0, 4.0])
    atoms = lower + upper
    hollow = lower.positions[:3].mean(axis=0)
    up = np.array([0.0, 0.0, 1.0])
    atoms += Atoms("Na2", positions=[hollow + 2.0 * up, hollow + 6.3 * up])
    atoms.write(path)
    return atoms


def test_classify_writes_labels_and_sensitivity(tmp_path):
    structure = tmp_path / "nac.xyz"
    _bilayer_with_two_na(structure)
    out = tmp_path / "labelled.xyz"
    result = runner.invoke(app, ["classify", str(structure), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "adsorption 1  intercalation 1  filling 0" in result.output
    labelled = ase.io.read(out)
    assert list(labelled.arrays["site"][-2:]) == ["intercalation", "adsorption"]
    summary = json.loads(out.with_suffix(".json").read_text())
    assert set(summary["sensitivity"]["shifts"]) == {"r_contact", "r_shell", "r_na_na"}


def test_classify_bad_input(tmp_path):
    carbon = tmp_path / "c.xyz"
    graphene(size=(2, 2, 1), vacuum=8).write(carbon)
    result = runner.invoke(app, ["classify", str(carbon)])
    assert result.exit_code == 2 and "Na" in result.output
    result = runner.invoke(app, ["classify", str(carbon), "--r-contact", "-1"])
    assert result.exit_code == 2 and result.output.startswith("error: setting r_contact")


def test_analyze_reports_and_refuses_bad_probe(tmp_path):
    structure = tmp_path / "g.xyz"
    d = 1.42  # C–C bond; a rectangular 4-atom graphene cell is √3 d by 3 d
    cell = Atoms("C4", cell=[3**0.5 * d, 3 * d, 10.0], pbc=True,
                 scaled_positions=[[0, 0, 0.5], [0, 1 / 3, 0.5], [0.5, 0.5, 0.5],
                                   [0.5, 5 / 6, 0.5]])
    cell.repeat((3, 2, 1)).write(structure)
    result = runner.invoke(app, ["analyze", str(structure), "-o", str(tmp_path / "an")])
    assert result.exit_code == 0, result.output
    assert "sp 0.000  sp2 1.000  sp3 0.000" in result.output
    assert (tmp_path / "an" / "xrd.png").stat().st_size > 1000
    result = runner.invoke(app, ["analyze", str(structure), "--probe-radius", "0"])
    assert result.exit_code == 2 and "probe_radius" in result.output
    junk = tmp_path / "junk.xyz"
    junk.write_text("not a structure\n")
    result = runner.invoke(app, ["analyze", str(junk)])
    assert result.exit_code == 2 and "cannot read structure file" in result.output


def test_dataset_generate_and_label_with_emt(tmp_path):
    config = tmp_path / "dataset.yaml"
    config.write_text("counts: {sodium: 3}\nseed: 2\n")
    out = tmp_path / "ds.xyz"
    result = runner.invoke(app, ["dataset", "generate", "--config", str(config), "-o", str(out)])
    assert result.exit_code == 0, result.output
    frames = ase.io.read(out, index=":")
    assert len(frames) == 3 and {a.info["config_type"].split("/")[0] for a in frames} == {"sodium"}


def test_sodiate_runs_and_refuses_carbon_free_host(tmp_path, random_nep):
    from hardcarbon.structures import random_carbon

    host = tmp_path / "host.xyz"
    random_carbon(150, (13.0, 13.0, 13.0), seed=1).write(host)
    config = tmp_path / "sodiate.yaml"
    config.write_text("n_candidates: 30\nmax_iterations: 2\nfmax: 0.2\nmax_steps: 50\n")
    args = ["sodiate", str(host), "--model", str(random_nep), "--batch-size", "3",
            "--target-na", "6", "--config", str(config), "-w", str(tmp_path / "run")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    table = (tmp_path / "run" / "sodiation.csv").read_text().splitlines()
    assert len(table) == 4  # header, the bare host and the states after two batches of 3
    assert (tmp_path / "run" / "voltage.png").exists()

    sodium = tmp_path / "na.xyz"
    Atoms("Na2", positions=[[0, 0, 0], [2, 2, 2]], cell=[8, 8, 8], pbc=True).write(sodium)
    args[1] = str(sodium)
    args[-1] = str(tmp_path / "run2")
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "carbon" in result.output


def test_atomic_writes_leave_normal_permissions_and_no_temporaries(tmp_path):
    import os

    from hardcarbon.storage import write_json

    path = write_json(tmp_path / "a.json", {"x": 1})
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~_umask()
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_validate_and_combine_commands(tmp_path):
    from pathlib import Path

    model = Path(__file__).parents[1] / "data" / "models" / "pretrain-sevenn-v0" / "nep.txt"
    result = runner.invoke(app, ["validate", str(tmp_path / "none.txt")])
    assert result.exit_code == 2 and "does not exist" in result.output
    config = tmp_path / "v.yaml"
    config.write_text("reference:\n  calculator: 'calorine.calculators:CPUNEP'\n"
                      f"  factory_kwargs: {{model_filename: '{model}'}}\n")
    result = runner.invoke(app, ["validate", str(model), "-w", str(tmp_path / "v"),
                                 "--no-relax", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "| bcc_Na_a0_A | " in result.output and "| no" not in result.output

    rng = np.random.default_rng(0)
    cells = []
    for n_c, n_na in [(3, 0), (2, 1), (4, 2)]:
        atoms = Atoms(f"C{n_c}Na{n_na}", positions=rng.uniform(0, 6, (n_c + n_na, 3)),
                      cell=[6, 6, 6], pbc=True)
        atoms.info["REF_energy"] = -5.0 * n_c - 1.0 * n_na
        atoms.arrays["REF_forces"] = np.zeros((len(atoms), 3))
        cells.append(atoms)
    ase.io.write(tmp_path / "second.xyz", cells)
    shifted = [a.copy() for a in cells[:2]]
    for a in shifted:
        a.info["REF_energy"] -= 2.0 * len(a)
    ase.io.write(tmp_path / "first.xyz", shifted)
    result = runner.invoke(app, ["dataset", "combine", str(tmp_path / "first.xyz"),
                                 str(tmp_path / "second.xyz"), "-o", str(tmp_path / "c.xyz")])
    assert result.exit_code == 0, result.output
    assert "C -2.0000 eV, Na -2.0000 eV" in result.output
    assert len(ase.io.read(tmp_path / "c.xyz", ":")) == 3


def test_evaluate_reports_a_second_calculator_on_the_same_structures(tmp_path):
    import importlib.util
    from pathlib import Path

    import pytest

    if importlib.util.find_spec("sevenn") is None:
        pytest.skip("SevenNet is not installed")
    root = Path(__file__).parents[1]
    labelled = ase.io.read(root / "data" / "training" / "sevenn_d3_initial.xyz.gz", ":")
    small = [a for a in labelled if len(a) < 40][:3]
    for a in small[:1]:
        a.info["weight"] = 0.1  # a secondary structure: left out by --min-weight 1
    ase.io.write(tmp_path / "test.xyz", small)
    model = root / "data" / "models" / "pretrain-sevenn-v0" / "nep.txt"
    result = runner.invoke(app, ["evaluate", str(model), str(tmp_path / "test.xyz"),
                                 "-o", str(tmp_path / "e"), "--min-weight", "1",
                                 "--also", "sevenn"])
    assert result.exit_code == 0, result.output
    other = json.loads((tmp_path / "e" / "errors_sevenn.json").read_text())
    assert other["overall"]["n_structures"] == 2
    # SevenNet + D3 against its own labels: no error
    assert other["overall"]["force_rmse_meV_A"] < 1.0
