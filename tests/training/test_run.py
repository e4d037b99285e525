"""Whole runs on image folders: bad files, streaming and in-memory decoding, batch augmentations."""

from __future__ import annotations

import json

import pytest

import resnetlab
from resnetlab.cli import main
from resnetlab.errors import DataError

from imagefolder import make_folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    bad = make_folder(root, per_class=12)
    return root, bad


def test_error_policy_stops_before_any_run_folder_exists(photos, tmp_path):
    root, bad = photos
    with pytest.raises(DataError, match="4 bad image file"):
        resnetlab.train(data=str(root), epochs=1, project=str(tmp_path / "runs"), display="none")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("in_memory", [False, True])
def test_skip_policy_trains_and_lists_skipped_files(photos, tmp_path, in_memory):
    root, bad = photos
    result = resnetlab.train(data=str(root), on_bad_image="skip", in_memory=in_memory, epochs=2, batch_size=8,
                             lr=0.02, workers=0, project=str(tmp_path), display="none")
    entries = [json.loads(line) for line in (result.run_dir / "skipped.txt").read_text().splitlines()]
    assert {entry["path"] for entry in entries} == set(bad)
    assert all(bad[entry["path"]] in entry["reason"] for entry in entries)
    assert json.loads((result.run_dir / "results.json").read_text())["skipped_files"] == 4
    assert result.info.input_size == (3, 16, 16) and result.info.class_names == ["blue", "green", "red"]
    predictions = resnetlab.Predictor.from_file(result.best_path).predict_files(list(bad) + [
        next((root / "red").glob("*.png"))])
    assert all(p.error for p in predictions[:4]) and predictions[4].error is None


def test_batch_augmentations_train_with_soft_targets(tmp_path):
    result = resnetlab.train(epochs=2, mixup_alpha=0.2, cutmix_alpha=1.0, cutout=3, random_erasing=0.25,
                             project=str(tmp_path), display="none")
    assert result.history.rows[-1].train_loss > 0 and result.test.accuracy > 0.3


def test_cli_data_inspect_reports_counts_sizes_and_bad_files(photos, capsys):
    root, bad = photos
    assert main(["data", "inspect", str(root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["classes"] == ["blue", "green", "red"]
    assert report["totals"] == {"train": 36} and report["imbalance"] == 1.0
    assert {b["path"] for b in report["bad_files"]} == set(bad)
    assert report["image_sizes"] == {"width": [16, 16], "height": [16, 16]}
    assert report["modes"]["CMYK"] == 3 and report["suggested"]["img_size"] == 16
    assert main(["data", "inspect", str(root)]) == 0
    out = capsys.readouterr().out
    assert "4 bad file(s)" in out and "class imbalance" in out


def test_train_applies_overrides_on_a_given_config_and_validates(tmp_path):
    from resnetlab.config import load_config
    from resnetlab.errors import ConfigError

    config = load_config(overrides={"epochs": 5, "project": str(tmp_path)})
    result = resnetlab.train(config, epochs=1, display="none")
    assert len(result.history.rows) == 1 and config.train.epochs == 5  # the caller's config is not changed
    with pytest.raises(ConfigError, match="epochs must be at least 1"):
        resnetlab.train(config, epochs=0)
    with pytest.raises(ConfigError, match="unknown progress display"):
        resnetlab.train(config, display="fancy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resnet20-digits"]  # failures leave no run folder


def test_tensorboard_without_the_package_warns_once_how_to_install_it(tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # `import` of it now fails: not installed
    quiet = dict(epochs=2, project=str(tmp_path), display="none", plots=False, checkpoint_minutes=0)
    result = resnetlab.train(tensorboard=True, **quiet)
    warnings = [line for line in capsys.readouterr().out.splitlines() if "tensorboard" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: tensorboard=true, but the tensorboard package "
                                                         "is not installed")
    assert "pip install tensorboard" in warnings[0] and "pip install 'resnetlab[tensorboard]'" in warnings[0]
    assert not list(result.run_dir.glob("events.out.tfevents.*"))
    resnetlab.train(tensorboard=False, **quiet)
    assert "tensorboard" not in capsys.readouterr().out  # asked for none: nothing to say


def test_the_final_test_evaluation_runs_in_the_training_arithmetic_when_asked(tmp_path):
    from resnetlab.analysis.evaluation import evaluate_model
    from resnetlab.data import load_dataset

    result = resnetlab.train(model="tutorial_cnn", epochs=1, precision="bf16", test_precision="train",
                             project=str(tmp_path), display="none", plots=False)
    assert result.info.training["test_precision"] == "bf16"
    model, info = resnetlab.load_model(result.best_path)
    fp32 = evaluate_model(model, load_dataset("digits").test, info)  # predict's arithmetic
    assert result.test.accuracy == pytest.approx(fp32.accuracy, abs=0.02)
    assert result.test.loss != fp32.loss  # a different arithmetic was used
    with pytest.raises(resnetlab.errors.ConfigError, match="test_precision"):
        resnetlab.train(model="tutorial_cnn", epochs=1, test_precision="bf16", project=str(tmp_path))
