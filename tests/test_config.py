from __future__ import annotations

import pytest
import torch
import yaml

import resnetlab
from resnetlab.cli.common import describe_settings
from resnetlab.config import Config, apply_overrides, load_config, parse_overrides, setting_paths
from resnetlab.errors import ConfigError


def test_defaults_validate_and_every_setting_has_a_unique_key():
    config = load_config()
    assert config.model.name == "resnet20" and config.data.name == "digits"
    paths = setting_paths()
    assert paths["epochs"] == "train.epochs" and paths["model"] == "model.name" and paths["name"] == "run.name"


def test_overrides_are_typed():
    config = load_config(overrides=parse_overrides(
        ["epochs=12", "lr=5e-2", "nesterov=false", "model=resnet32", "milestones=[10, 20]", "val_fraction=none",
         "train.batch_size=64", "flip=yes", "name=exp1"]))
    assert config.train.epochs == 12 and isinstance(config.train.epochs, int)
    assert config.train.lr == 0.05
    assert config.train.nesterov is False
    assert config.model.name == "resnet32"
    assert config.train.milestones == [10, 20]
    assert config.data.val_fraction is None
    assert config.train.batch_size == 64
    assert config.data.flip is True
    assert config.run.name == "exp1"


@pytest.mark.parametrize("words, message", [
    (["epochs=ten"], "epochs must be an integer, got 'ten'"),
    (["epochs=2.5"], "epochs must be an integer"),
    (["lr=fast"], "lr must be a number"),
    (["nesterov=maybe"], "nesterov must be true or false"),
    (["optimizer=adamm"],
     "optimizer must be one of sgd, adam, adamw, rmsprop, nadam, adagrad; got 'adamm'; did you mean 'adam'?"),
    (["lr_rate=0.1"], "unknown setting 'lr_rate'; did you mean 'lr'?"),
    (["epochs=0"], "epochs must be at least 1"),
    (["lr=-1"], "lr must be positive"),
    (["val_fraction=1.5"], "val_fraction must be in"),
])
def test_bad_overrides_say_what_is_wrong(words, message):
    with pytest.raises(ConfigError) as info:
        load_config(overrides=parse_overrides(words))
    assert message in str(info.value)


def test_parse_overrides_rejects_words_without_equals():
    with pytest.raises(ConfigError, match="expected key=value, got 'epochs'"):
        parse_overrides(["epochs"])


def test_yaml_nested_and_flat_then_overrides(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"train": {"epochs": 7, "lr": 0.2}, "model": "resnet44", "seed": 3}))
    config = load_config(path, {"lr": "0.3"})
    assert (config.train.epochs, config.train.lr, config.model.name, config.run.seed) == (7, 0.3, "resnet44", 3)


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    typo = tmp_path / "typo.yaml"
    typo.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match="did you mean 'train.epochs'"):
        load_config(typo)


def test_round_trip_through_saved_yaml(tmp_path):
    from resnetlab.config import save_config

    config = apply_overrides(Config(), {"epochs": 3, "weight_decay": 0.0, "stem": "small"})
    save_config(config, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == config


def test_describe_settings_carries_the_comments():
    rows = {row[0]: row for row in describe_settings()}
    assert rows["epochs"][1] == "int" and rows["epochs"][2] == "30"
    assert "learning rate" in rows["lr"][3]
    assert rows["model"][0] == "model" and rows["optimizer"][1] == "sgd|adam|adamw|rmsprop|nadam|adagrad"


def test_model_options_pass_only_what_was_set():
    config = load_config(overrides={"stem": "small", "drop_path_rate": "0.1"})
    assert config.model.options() == {"stem": "small", "drop_path_rate": 0.1}
    assert load_config().model.options() == {}
    gelu = load_config(overrides={"model": "resnet8_airbench", "activation": "gelu", "conv_init": "dirac"})
    assert gelu.model.options() == {"activation": "gelu", "conv_init": "dirac"}
    listed = r"must be an integer, got '2,3'; shortcut_layers is a list, written as \[2, 3\]"
    with pytest.raises(ConfigError, match=listed):
        load_config(overrides={"shortcut_layers": "2,3"})
    plain = load_config(overrides={"model": "resnet8_airbench", "model.shortcut_layers": "[]"})
    assert plain.model.options() == {"shortcut_layers": []}
    assert not resnetlab.create_model(plain.model.name, **plain.model.options()).layer3[1].shortcut
    assert isinstance(resnetlab.create_model(gelu.model.name, **gelu.model.options()).layer1[0].act, torch.nn.GELU)
    with pytest.raises(ConfigError, match="activation must be one of relu, gelu"):
        load_config(overrides={"activation": "tanh"})


def test_recipe_on_the_command_line_beats_the_one_in_the_file(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"recipe": "fast-cifar", "train": {"epochs": 7}}))
    config = load_config(tmp_path / "c.yaml", {"recipe": "he2015-cifar"})
    assert config.run.recipe == "he2015-cifar"
    assert config.train.epochs == 7  # the file's own settings still apply over the recipe
    # ... and the recipe's warm-up (23% of its 36 epochs) and restart (after 11) keep their share of the 7
    short = load_config(tmp_path / "c.yaml").train
    assert short.warmup_epochs == pytest.approx(0.23 * 7) and short.restart_epochs == [pytest.approx(11 * 7 / 36,
                                                                                                     abs=1e-4)]
    given = load_config(overrides={"recipe": "fast-cifar", "epochs": "10", "warmup_epochs": "1"}).train
    assert given.warmup_epochs == 1 and given.restart_epochs == [pytest.approx(11 * 10 / 36, abs=1e-4)]
    assert load_config(overrides={"recipe": "fast-cifar"}).train.warmup_epochs == 8.28
    assert load_config(tmp_path / "c.yaml").run.recipe == "fast-cifar"


@pytest.mark.parametrize("model", ["resnet20", "resnet110", "plain20", "plain56", "plain110"])
def test_the_paper_recipe_builds_each_net_of_the_degradation_experiment(model):
    """he2015-cifar sets option-A shortcuts; the plain twins, which have none, leave the option out."""
    import resnetlab

    config = load_config(overrides={"recipe": "he2015-cifar", "model": model})
    net = resnetlab.create_model(model, **config.model.options())
    assert (config.model.shortcut == "A") == model.startswith("resnet")
    assert net.arch.name == model
