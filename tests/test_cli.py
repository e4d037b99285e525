"""The CLI end to end on the embedded digits: train, evaluate, predict, models, errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from resnetlab.cli import main
from resnetlab.data import load_dataset


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    project = tmp_path_factory.mktemp("cli-runs")
    code = main(["train", "epochs=3", "lr=0.05", f"project={project}", "name=cli", "progress=false"])
    assert code == 0
    return project / "cli"


def test_train_writes_the_run_folder(cli_run, capsys):
    assert sorted(p.name for p in cli_run.iterdir()) == ["best.safetensors", "config.yaml", "curves.png",
                                                          "last.safetensors", "metrics.csv", "results.json"]
    config = yaml.safe_load((cli_run / "config.yaml").read_text())
    assert config["train"]["epochs"] == 3 and config["train"]["lr"] == 0.05 and config["model"]["name"] == "resnet20"
    rows = list(csv.DictReader((cli_run / "metrics.csv").read_text().splitlines()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "images_per_second"} <= set(rows[0])
    results = json.loads((cli_run / "results.json").read_text())
    assert results["test"]["num_samples"] == 360
    assert results["test"]["accuracy"] >= 0.8  # 3 epochs reach about 0.9; far above chance (0.1)
    assert config["data"]["crop_padding"] == 1 and config["data"]["pad_mode"] == "edge"  # resolved, not null
    assert config["data"]["flip"] is False


def test_second_run_with_the_same_name_gets_a_new_folder(cli_run, capsys):
    assert main(["train", "epochs=1", f"project={cli_run.parent}", "name=cli", "progress=false"]) == 0
    out = capsys.readouterr().out
    assert f"run folder: {cli_run.parent / 'cli-2'}" in out
    assert "test accuracy: " in out


def test_evaluate_flag_and_key_value_forms_agree(cli_run, capsys):
    model = str(cli_run / "best.safetensors")
    assert main(["evaluate", model, "--data", "digits", "--json"]) == 0
    flag = json.loads(capsys.readouterr().out)
    assert main(["evaluate", model, "data=digits", "split=test", "--json"]) == 0
    words = json.loads(capsys.readouterr().out)
    assert flag == words
    results = json.loads((cli_run / "results.json").read_text())
    assert flag["accuracy"] == pytest.approx(results["test"]["accuracy"])
    assert set(flag["per_class_accuracy"]) == {str(d) for d in range(10)}
    assert main(["evaluate", model, "split=val"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "per class" in out and "180 images" in out


def test_predict_table_and_json(cli_run, tmp_path, capsys):
    digit = load_dataset("digits").test.images[0, 0].numpy()
    Image.fromarray(digit, "L").resize((64, 64), Image.Resampling.NEAREST).save(tmp_path / "digit.png")
    Image.fromarray(np.stack([digit] * 3, -1), "RGB").save(tmp_path / "digit.jpg", quality=95)
    (tmp_path / "bad.png").write_text("nope")
    model = str(cli_run / "best.safetensors")
    files = [str(tmp_path / n) for n in ("digit.png", "digit.jpg", "bad.png")]
    assert main(["predict", model, *files, "--json", "--topk", "3"]) == 1  # bad.png failed; the rest predicted
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert [len(r.get("top", [])) for r in result] == [3, 3, 0]
    assert "not an image" in result[2]["error"] and "bad.png" in captured.err
    assert main(["predict", model, files[0]]) == 0
    assert "top-5 predictions" in capsys.readouterr().out
    assert main(["predict", model, files[2]]) == 1  # nothing could be predicted


def test_models_table(capsys):
    assert main(["models", "resnet2*"]) == 0
    out = capsys.readouterr().out
    assert "resnet20" in out and "269,722" in out and "0.041" in out  # 40.55M multiply-adds (GMACs)
    assert main(["models", "--family", "imagenet", "--no-flops"]) == 0
    assert "25,557,032" in capsys.readouterr().out


def test_info_and_datasets(cli_run, capsys):
    assert main(["info", str(cli_run / "best.safetensors")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["arch"]["name"] == "resnet20" and info["input_size"] == [1, 8, 8] and info["interpolation"] == "box"
    assert "test_accuracy" in info["training"]
    assert main(["datasets"]) == 0
    assert "digits" in capsys.readouterr().out


def test_train_help_lists_settings(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "weight_decay" in out and "label_smoothing" in out


@pytest.mark.parametrize("argv, message", [
    (["train", "epochs=ten"], "epochs must be an integer, got 'ten'"),
    (["train", "model=plain20", "shortcut=A"], "plain20 fixes shortcut itself"),
    (["train", "shortcut=C"], "shortcut must be one of A, B; got 'C'"),
    (["train", "block_drop_rate=0.3"], "block_drop_rate applies to pre-activation blocks"),
    (["train", "model=tutorial_cnn", "drop_path_rate=0.1"], "tutorial_cnn has no residual blocks"),
    (["train", "val_fraction=0.9"], "does not fit the digits"),
    (["train", "milestones=[1,"], "milestones must be a list such as [30, 60]"),
    (["train", "project=/dev/null/x", "epochs=1"], "Not a directory"),
    (["models", "--family", "bogus"], "unknown family 'bogus'"),
    (["train", "modle=resnet20"], "unknown setting 'modle'; did you mean 'model'?"),
    (["train", "model=resnet5"], "did you mean 'resnet50' or 'resnet56'?"),
    (["train", "data=digit"], "did you mean 'digits'"),
    (["evaluate", "missing.safetensors"], "does not exist"),
    (["evaluate", "x.safetensors", "dataa=digits"], "unknown option 'dataa'; did you mean 'data'"),
    (["models", "nothing*"], "no model matches"),
])
def test_errors_are_one_line_without_traceback(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_evaluate_checks_its_numbers(cli_run, capsys):
    model = str(cli_run / "best.safetensors")
    for words, message in ((["batch_size=0"], "batch_size must be at least 1"),
                           (["batch_size=abc"], "batch_size must be an integer"),
                           (["split=holdout"], "split must be train, val or test"),
                           (["tta=bogus"], "tta must be one of none, flip, flip+shift; got 'bogus'")):
        assert main(["evaluate", model, *words]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_predict_on_a_folder_without_images_says_so(cli_run, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    assert main(["predict", str(cli_run / "best.safetensors"), str(tmp_path / "empty")]) == 2
    assert f"error: {tmp_path / 'empty'} holds no image files (looked for " in capsys.readouterr().err


def test_import_weights_and_data_inspect_refuse_bad_words(cli_run, tmp_path, capsys):
    model = str(cli_run / "best.safetensors")
    (tmp_path / "classes.txt").write_bytes(b"\xff\xfe caf\xe9\n")
    for argv, message in (
            (["import-weights", model, "arch=resnet20", f"classes={tmp_path / 'classes.txt'}"],
             "give a UTF-8 text file with one class name per line"),
            (["import-weights", model, "arch=resnet20", f"out={model}"], "would replace its source"),
            (["data", "inspect", "digits", "workers=two"], "workers must be an integer, got 'two'")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_evaluate_val_uses_the_runs_own_validation_split(tmp_path, capsys):
    assert main(["train", "epochs=1", "val_fraction=0.3", f"project={tmp_path}", "name=v", "progress=false"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "v" / "best.safetensors"), "split=val", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_samples"] == 539  # 30% of the data, not the default 180


def test_errors_from_a_real_process_have_no_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "resnetlab", "train", "model=resnet5"], capture_output=True,
                         text=True, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("error: unknown model 'resnet5'") and "Traceback" not in out.stderr


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "resnetlab", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("resnetlab ")
