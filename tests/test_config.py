"""dermtool.config: loading TOML files, the errors for bad ones, and command-line overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from dermtool import DermtoolError
from dermtool.config import Config, apply_overrides, config_from_mapping, load_config

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CONFIGS = sorted((REPO_ROOT / "configs").glob("*.toml"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file() -> None:
    config = load_config(None)
    assert config == Config()
    assert config.model.name == "efficientnet-lite0"


def test_values_from_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[data]\nimage_size = 96\n[train]\nbatch_size = 8\nloss = "focal"\nhead_learning_rate = 1\n')
    config = load_config(path)
    assert config.data.image_size == 96
    assert config.train.batch_size == 8
    assert config.train.loss == "focal"
    assert config.train.head_learning_rate == 1.0 and isinstance(config.train.head_learning_rate, float)
    assert config.train.finetune_epochs == Config().train.finetune_epochs  # untouched keys keep defaults


def test_unknown_section_names_the_section_and_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[trainer]\nbatch_size = 8\n")
    with pytest.raises(DermtoolError) as error:
        load_config(path)
    assert "[trainer]" in str(error.value) and str(path) in str(error.value)
    assert "known sections" in str(error.value)


def test_unknown_key_names_the_key_and_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[train]\nbatchsize = 8\n")
    with pytest.raises(DermtoolError) as error:
        load_config(path)
    message = str(error.value)
    assert "train.batchsize" in message and str(path) in message
    assert "batch_size" in message  # the known keys are listed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[train]\nbatch_size = "32"\n', "expected an integer"),
        ("[train]\nbatch_size = 3.5\n", "expected an integer"),
        ("[train]\nbatch_size = true\n", "expected an integer"),
        ('[data]\ncache = "yes"\n', "expected true or false"),
        ("[train]\nhead_learning_rate = \"fast\"\n", "expected a number"),
        ("[model]\nname = 3\n", "expected a string"),
    ],
)
def test_wrong_type_names_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DermtoolError) as error:
        load_config(path)
    assert expected in str(error.value)
    key = text.split("\n")[1].split(" =")[0]
    assert key in str(error.value) and str(path) in str(error.value)


def test_bad_literal_lists_the_choices(tmp_path: Path) -> None:
    path = write(tmp_path, '[train]\nclass_balance = "oversample"\n')
    with pytest.raises(DermtoolError) as error:
        load_config(path)
    message = str(error.value)
    assert "train.class_balance" in message and "'oversample'" in message
    assert "'weights'" in message and "'sampling'" in message and "'none'" in message


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DermtoolError, match="not valid TOML"):
        load_config(write(tmp_path, "[train\nbatch_size = 8\n"))
    with pytest.raises(DermtoolError, match="config file not found"):
        load_config(tmp_path / "absent.toml")


def test_cross_value_checks() -> None:
    with pytest.raises(DermtoolError, match="leaves too little to train on"):
        config_from_mapping({"data": {"val_fraction": 0.5, "test_fraction": 0.45}})
    with pytest.raises(DermtoolError, match="at least 1"):
        config_from_mapping({"train": {"head_epochs": 0, "finetune_epochs": 0}})
    with pytest.raises(DermtoolError, match="image_size must be at least 32"):
        config_from_mapping({"data": {"image_size": 16}})
    with pytest.raises(DermtoolError, match="prune_learning_rate must be positive"):
        config_from_mapping({"export": {"prune_learning_rate": 0.0}})


def test_overrides_parse_toml_values_and_bare_strings() -> None:
    config = apply_overrides(Config(), ["train.batch_size=8", "train.loss=focal", "data.cache=false",
                                        "train.weight_decay=1e-4", "data.data_dir=../elsewhere/data"])
    assert config.train.batch_size == 8
    assert config.train.loss == "focal"
    assert config.data.cache is False
    assert config.train.weight_decay == pytest.approx(1e-4)
    assert config.data.data_dir == "../elsewhere/data"


def test_bad_overrides_are_named() -> None:
    with pytest.raises(DermtoolError, match="section.key=value"):
        apply_overrides(Config(), ["batch_size=8"])
    with pytest.raises(DermtoolError, match="section.key=value"):
        apply_overrides(Config(), ["train.batch_size"])
    with pytest.raises(DermtoolError, match="train.batchsize"):
        apply_overrides(Config(), ["train.batchsize=8"])
    with pytest.raises(DermtoolError, match="expected an integer"):
        apply_overrides(Config(), ["train.batch_size=eight"])
    with pytest.raises(DermtoolError, match="command line"):
        apply_overrides(Config(), ["training.batch_size=8"])


def test_load_config_applies_overrides_after_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[train]\nbatch_size = 8\n")
    assert load_config(path, overrides=["train.batch_size=4"]).train.batch_size == 4


def test_to_toml_round_trips(tmp_path: Path) -> None:
    config = apply_overrides(Config(), ['data.data_dir=C:\\data "quoted"', "train.loss=focal", "data.cache=false"])
    again = load_config(write(tmp_path, config.to_toml()))
    assert again == config


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda path: path.name)
def test_every_shipped_config_loads_and_is_commented(path: Path) -> None:
    config = load_config(path)
    assert isinstance(config, Config)
    assert path.read_text(encoding="utf-8").lstrip().startswith("#")


def test_the_shipped_configs_exist() -> None:
    names = {path.name for path in SHIPPED_CONFIGS}
    assert {"smoke.toml", "demo_cpu.toml", "ham10000_cpu.toml", "ham10000_gpu.toml", "multisource_cpu.toml",
            "multisource_gpu.toml"} <= names
