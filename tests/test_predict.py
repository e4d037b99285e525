"""Predicting on image files with the model file's own preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from resnetlab.data import load_dataset
from resnetlab.deploy.predict import Predictor


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory, digits_run):
    """Ten test digits written at 4x size in several formats and modes, with their expected labels."""
    folder = tmp_path_factory.mktemp("digits")
    data = load_dataset("digits")
    predictor = Predictor.from_file(digits_run.best_path, device="cpu")
    images = data.test.images[:10]
    expected = predictor.predict_proba(images).argmax(1)
    files = []
    for i, image in enumerate(images[:, 0].numpy()):
        big = Image.fromarray(image, "L").resize((32, 32), Image.Resampling.NEAREST)
        kind = i % 5
        if kind == 0:
            path = folder / f"d{i}.png"
            big.save(path)
        elif kind == 1:
            path = folder / f"d{i}.bmp"
            big.convert("RGB").save(path)
        elif kind == 2:
            path = folder / f"d{i}.webp"
            big.save(path, lossless=True)
        elif kind == 3:  # ink as opacity over transparency: composited on white it is the same picture
            rgba = np.zeros((32, 32, 4), dtype=np.uint8)
            rgba[..., 3] = 255 - np.asarray(big)
            path = folder / f"d{i}.png"
            Image.fromarray(rgba, "RGBA").save(path)
        else:
            path = folder / f"d{i}.gif"
            big.convert("P").save(path)
        files.append(path)
    return files, expected


def test_files_in_every_mode_predict_like_the_arrays(digits_run, digit_files):
    files, expected = digit_files
    predictor = Predictor.from_file(digits_run.best_path, device="cpu")
    predictions = predictor.predict_files(files, topk=3)
    assert [p.indices[0] for p in predictions] == expected.tolist()
    assert all(len(p.labels) == 3 and p.probs == sorted(p.probs, reverse=True) for p in predictions)
    assert all(p.labels[0] == str(p.indices[0]) for p in predictions)


def test_bad_files_are_reported_and_the_rest_predicted(digits_run, digit_files, tmp_path):
    files, expected = digit_files
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    predictor = Predictor.from_file(digits_run.best_path, device="cpu")
    predictions = predictor.predict_files([files[0], broken, files[1]])
    assert predictions[1].error is not None and "broken.png" in predictions[1].error
    assert predictions[0].indices[0] == expected[0] and predictions[2].indices[0] == expected[1]
    assert predictions[1].to_dict() == {"source": str(broken), "error": predictions[1].error}


def test_predict_proba_checks_the_input_shape(digits_run):
    predictor = Predictor.from_file(digits_run.best_path, device="cpu")
    with pytest.raises(ValueError, match="the model expects 8x8 with 1"):
        predictor.predict_proba(np.zeros((2, 28, 28), dtype=np.uint8))
    probs = predictor.predict_proba(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    assert probs.shape == (2, 10)


def test_predictions_agree_with_the_labels_as_often_as_evaluate_says(digits_run):
    from resnetlab.analysis.evaluation import evaluate_model

    data = load_dataset("digits")
    predictor = Predictor.from_file(digits_run.best_path, device="cpu")
    predicted = predictor.predict_proba(data.test.images).argmax(1)
    accuracy = float((predicted == data.test.labels.numpy()).mean())
    assert accuracy == pytest.approx(evaluate_model(predictor.model, data.test, predictor.info).accuracy)
    assert accuracy >= 0.8  # four epochs of resnet20 on the digits


def test_folders_globs_csv_and_exit_codes(digits_run, digit_files, tmp_path, capsys):
    import csv as csv_module

    from resnetlab.cli import main
    from resnetlab.data.images import expand_paths

    files, expected = digit_files
    folder = files[0].parent
    nested = folder / "more"
    nested.mkdir(exist_ok=True)
    (nested / "copy.png").write_bytes(files[0].read_bytes())
    (folder / "broken.jpg").write_text("not an image")
    found = expand_paths([folder])
    assert str(nested / "copy.png") in found and str(folder / "broken.jpg") in found
    assert expand_paths([str(folder / "*.png")]) == sorted(str(p) for p in folder.glob("*.png"))
    assert expand_paths([str(tmp_path / "nothing*.png")]) == [str(tmp_path / "nothing*.png")]
    assert main(["predict", str(digits_run.best_path), str(folder), "--csv", "-k", "2"]) == 1  # one file failed
    captured = capsys.readouterr()
    rows = list(csv_module.DictReader(captured.out.splitlines()))
    assert len(rows) == len(found) and set(rows[0]) == {"source", "label1", "prob1", "label2", "prob2", "error"}
    broken = [r for r in rows if r["source"].endswith("broken.jpg")][0]
    assert "not an image" in broken["error"] and broken["label1"] == ""
    assert "could not be read" in captured.err
    assert main(["predict", str(digits_run.best_path), str(folder / "broken.jpg")]) == 1


def test_many_files_decode_in_worker_batches(digits_run, digit_files):
    files, expected = digit_files
    predictor = Predictor.from_file(digits_run.best_path, device="cpu", batch_size=4)
    many = files * 3  # 30 files: several batches, decoded by 2 worker processes
    predictions = predictor.predict_files(many, workers=2)
    assert [p.indices[0] for p in predictions] == expected.tolist() * 3


def test_describe_names_what_runner_returned(digits_run):
    from resnetlab.checkpoint import load_model
    from resnetlab.deploy.inference import describe, runner

    model, info = load_model(digits_run.best_path)
    assert describe(model) == ("torch", "fp32")
    assert describe(runner(model, info, torch.device("cpu"), backend="torch", precision="bf16")) == ("torch", "bf16")
    # on a GPU, bf16 is the model under autocast (no backend object): it must not read as fp32
    assert describe(runner(model, info, torch.device("meta"), precision="bf16")) == ("torch", "bf16")
