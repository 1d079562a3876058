"""Config files: paths in them name files beside the config; bad files give one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hardcarbon.errors import InputError
from hardcarbon.forcefield.carbon import carbon_potential
from hardcarbon.forcefield.families import DatasetConfig
from hardcarbon.forcefield.labelling import LabelConfig
from hardcarbon.forcefield.learning import LearnConfig
from hardcarbon.forcefield.training import TrainConfig
from hardcarbon.forcefield.validation import ValidateConfig
from hardcarbon.sodiation.run import SodiationConfig
from hardcarbon.structures.build import BuildConfig

CONFIGS = Path(__file__).parents[1] / "configs"


def test_relative_paths_in_a_config_name_files_beside_it(tmp_path, monkeypatch):
    folder = tmp_path / "project" / "configs"
    folder.mkdir(parents=True)
    config = folder / "learn.yaml"
    config.write_text("initial_data: ../data/labels.xyz\n"
                      f"secondary_data: {tmp_path / 'abs.xyz'}\n"
                      "explore:\n  starts: starts.xyz\n")
    monkeypatch.chdir(tmp_path)
    settings = LearnConfig.from_yaml(config)
    assert settings.initial_data.resolve() == (tmp_path / "project/data/labels.xyz").resolve()
    assert settings.secondary_data == tmp_path / "abs.xyz"
    assert settings.explore.starts == folder / "starts.xyz"
    assert settings.initial_model is None


def test_command_line_paths_stay_relative_to_the_current_directory(tmp_path):
    config = tmp_path / "sub" / "sodiate.yaml"
    config.parent.mkdir()
    config.write_text("model: nep.txt\nbatch_size: 10\n")
    assert SodiationConfig.from_yaml(config).model == tmp_path / "sub" / "nep.txt"
    settings = SodiationConfig.from_yaml(config, model=Path("mine.txt"), batch_size=None)
    assert settings.model == Path("mine.txt") and settings.batch_size == 10


def test_a_name_or_file_setting_names_a_file_beside_the_config(tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "carbon-nep.txt").write_text("nep4 1 C\n")
    (folder / "7net.pth").write_bytes(b"")
    build = folder / "build.yaml"
    label = folder / "label.yaml"
    monkeypatch.chdir(tmp_path)
    build.write_text("potential: carbon-nep.txt\n")
    assert BuildConfig.from_yaml(build).potential == str(folder / "carbon-nep.txt")
    build.write_text("potential: rebo\n")
    assert BuildConfig.from_yaml(build).potential == "rebo"
    assert BuildConfig.from_yaml(build, potential="carbon-nep.txt").potential == "carbon-nep.txt"
    label.write_text("calculator: sevenn\nsevenn:\n  model: 7net.pth\n")
    assert LabelConfig.from_yaml(label).sevenn.model == str(folder / "7net.pth")
    label.write_text("calculator: sevenn\nsevenn:\n  model: 7net-0\n")
    assert LabelConfig.from_yaml(label).sevenn.model == "7net-0"
    build.write_text("potential: missing-nep.txt\n")  # named beside the config in the error
    with pytest.raises(InputError, match=f"{folder / 'missing-nep.txt'} does not exist"):
        carbon_potential(BuildConfig.from_yaml(build).potential)


# which command reads each shipped config, by the start of its name
_COMMANDS = {"bundled": TrainConfig, "finetune": TrainConfig, "pretrain": TrainConfig,
             "dataset": DatasetConfig, "label": LabelConfig, "learn": LearnConfig,
             "table1": ValidateConfig, "validate": ValidateConfig}


def _command(path: Path) -> type:
    kind = _COMMANDS.get(path.name.split("-")[0].removesuffix(".yaml"))
    assert kind is not None, f"{path.name}: no command known for this config"
    return kind


def test_shipped_training_configs_name_existing_models():
    checked = 0
    for path in sorted(CONFIGS.glob("*.yaml")):
        settings = yaml.safe_load(path.read_text()) or {}
        if "initial_model" not in settings:
            continue
        model = _command(path).from_yaml(path).initial_model
        assert model is not None and model.is_file(), f"{path.name}: {model} does not exist"
        checked += 1
    assert checked >= 6  # the bundled model's recipes and learn.yaml among them


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_is_valid_for_its_command(path):
    _command(path).from_yaml(path)  # raises InputError on an unknown or invalid setting


@pytest.mark.parametrize(("text", "message"), [
    ("steps: [1\n", "is not valid YAML"),
    ("- 1\n- 2\n", "must hold a mapping of settings"),
    ("generations: 10\n", "unknown setting 'generations'"),
])
def test_bad_config_files_raise_one_line(tmp_path, text, message):
    config = tmp_path / "train.yaml"
    config.write_text(text)
    with pytest.raises(InputError, match=message) as error:
        TrainConfig.from_yaml(config)
    assert "\n" not in str(error.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        TrainConfig.from_yaml(tmp_path / "none.yaml")
    with pytest.raises(InputError, match="does not exist"):
        TrainConfig.from_yaml(str(tmp_path / "none.yaml"))


def test_a_config_path_may_be_a_string():
    path = CONFIGS / "finetune-pw-intercalation.yaml"
    assert TrainConfig.from_yaml(str(path)) == TrainConfig.from_yaml(path)
