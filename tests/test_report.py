"""Evaluation reports: metrics against scikit-learn, the report folder, EMA weights, TTA."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn import metrics as skm

import resnetlab
from resnetlab.analysis.evaluation import compute_metrics, expected_calibration_error
from resnetlab.cli import main


def test_metrics_agree_with_scikit_learn():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 7, (500,), generator=generator)
    logits = torch.randn(500, 7, generator=generator) + 2.5 * torch.nn.functional.one_hot(labels, 7)
    logits[:40, 6] += 10  # class 6 over-predicted
    result = compute_metrics(logits, labels, [f"c{i}" for i in range(7)])
    y, probs = labels.numpy(), torch.softmax(logits, 1).numpy()
    predicted = probs.argmax(1)
    precision, recall, f1, support = skm.precision_recall_fscore_support(y, predicted, zero_division=0)
    np.testing.assert_allclose(result.precision, precision)
    np.testing.assert_allclose(result.recall, recall)
    np.testing.assert_allclose(result.f1, f1)
    np.testing.assert_array_equal(result.support, support)
    assert result.accuracy == pytest.approx(skm.accuracy_score(y, predicted))
    assert result.top5 == pytest.approx(skm.top_k_accuracy_score(y, probs, k=5))
    assert result.loss == pytest.approx(skm.log_loss(y, probs), rel=1e-5)
    averages = result.averages()
    for kind in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(y, predicted, average=kind, zero_division=0)
        assert averages[kind] == pytest.approx({"precision": p, "recall": r, "f1": f})
    np.testing.assert_array_equal(result.confusion, skm.confusion_matrix(y, predicted))
    assert result.most_confused(1)[0][1] == "c6"


def test_macro_averages_count_a_predicted_class_without_samples_as_scikit_learn_does():
    labels = torch.tensor([0, 0, 1, 1, 1, 0])
    predicted = torch.tensor([0, 2, 1, 1, 0, 2])  # class 2 is predicted twice but has no samples
    result = compute_metrics(torch.nn.functional.one_hot(predicted, 3).float() * 5, labels, ["a", "b", "c"])
    for kind in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(labels, predicted, average=kind, zero_division=0)
        assert result.averages()[kind] == pytest.approx({"precision": p, "recall": r, "f1": f})
    assert result.averages()["macro"]["recall"] == pytest.approx(1 / 3)


def test_expected_calibration_error_by_hand():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 0])
    # bin of 0.9: accuracy 0.5, confidence 0.9 -> 0.4 x 1/2; bin of 0.6: accuracy 1.0 -> 0.4 x 1/2
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)
    assert expected_calibration_error(np.eye(3), np.arange(3)) == pytest.approx(0.0)


def test_reliability_diagram_draws_only_the_bins_that_hold_images(tmp_path, monkeypatch):
    from resnetlab.analysis import plots

    drawn = {}
    monkeypatch.setattr(plots, "_save", lambda figure, path: drawn.setdefault("figure", figure))
    probs = np.array([[0.95, 0.03, 0.02]] * 4 + [[0.55, 0.25, 0.20]] * 2)
    labels = np.array([0, 0, 0, 1, 0, 2])  # bin 0.9-1.0: 3 of 4 right; bin 0.5-0.6: 1 of 2
    plots.reliability_diagram(probs, labels, tmp_path / "r.png", bins=10)
    bars = drawn["figure"].axes[0].patches  # accuracy bars, then the gaps stacked on them
    assert [round(b.get_x() + b.get_width() / 2, 3) for b in bars] == [0.55, 0.95, 0.55, 0.95]
    assert [b.get_height() for b in bars[:2]] == pytest.approx([0.5, 0.75])
    assert [b.get_height() for b in bars[2:]] == pytest.approx([0.55 - 0.5, 0.95 - 0.75])  # up to the diagonal
    assert [b.get_height() for b in drawn["figure"].axes[1].patches] == [0] * 5 + [2, 0, 0, 0, 4]


def test_report_folder_matches_scikit_learn_on_its_own_predictions(digits_run, tmp_path):
    report = resnetlab.evaluate(digits_run.best_path)
    folder = report.write(tmp_path / "report")
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["confusion_matrix.png", "confusion_matrix_normalized.png", "metrics.json",
                     "per_class_accuracy.png", "predictions.csv", "reliability.png", "report.html", "report.md",
                     "top_losses.png"]
    saved = json.loads((folder / "metrics.json").read_text())
    rows = list(csv.DictReader((folder / "predictions.csv").read_text().splitlines()))
    assert len(rows) == 360 and rows[0]["source"] == "index 0"
    true, predicted = [r["true"] for r in rows], [r["predicted"] for r in rows]
    assert saved["accuracy"] == pytest.approx(skm.accuracy_score(true, predicted))
    p, r, f, _ = skm.precision_recall_fscore_support(true, predicted, average="macro", zero_division=0)
    assert saved["macro"] == pytest.approx({"precision": p, "recall": r, "f1": f})
    assert saved["per_class"]["3"]["support"] == sum(t == "3" for t in true)
    page = (folder / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5 and "<img src='http" not in page
    assert "Most confused pairs" in (folder / "report.md").read_text()
    for png in names:
        if png.endswith(".png"):
            assert (folder / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("tta", ["flip", "flip+shift"])
def test_test_time_augmentation(digits_run, tta):
    plain = resnetlab.evaluate(digits_run.best_path, tta="none").result
    augmented = resnetlab.evaluate(digits_run.best_path, tta=tta).result
    assert augmented.num_samples == plain.num_samples
    assert not np.allclose(augmented.probs, plain.probs)  # other views were averaged in
    np.testing.assert_allclose(augmented.probs.sum(1), 1.0, atol=1e-5)


def test_evaluate_uses_a_checkpoints_ema_weights(tmp_path):
    # one epoch: the best epoch is the last one, so best.safetensors must hold the checkpoint's EMA weights
    run = resnetlab.train(epochs=1, ema_decay=0.9, project=str(tmp_path), display="none", plots=False)
    ema_report = resnetlab.evaluate(run.last_path)
    raw_report = resnetlab.evaluate(run.last_path, ema=False)
    assert ema_report.weights == "EMA" and raw_report.weights == "model"
    assert not np.allclose(ema_report.result.probs, raw_report.result.probs)
    best = resnetlab.evaluate(run.best_path)  # best.safetensors holds the EMA weights themselves, and says so
    assert best.weights == "EMA"
    np.testing.assert_allclose(best.result.probs, ema_report.result.probs, atol=1e-6)
    # predict (and serve, export) read the same weights from the checkpoint as evaluate does
    images = run.best_path.parent / "digits"
    images.mkdir()
    test = resnetlab.load_dataset("digits").test
    for i in range(8):
        Image.fromarray(test.images[i, 0].numpy()).save(images / f"{i}.png")
    paths = sorted(str(p) for p in images.iterdir())
    from_last = resnetlab.Predictor.from_file(run.last_path, backend="torch").predict_files(paths, topk=3)
    from_best = resnetlab.Predictor.from_file(run.best_path, backend="torch").predict_files(paths, topk=3)
    assert [p.labels for p in from_last] == [p.labels for p in from_best]
    np.testing.assert_allclose([p.probs for p in from_last], [p.probs for p in from_best], atol=1e-6)


def test_cli_evaluate_writes_the_report_next_to_the_model(digits_run, capsys):
    assert main(["evaluate", str(digits_run.best_path), "tta=flip"]) == 0
    out = capsys.readouterr().out
    folder = digits_run.best_path.parent / "eval-digits-test"
    assert f"report: {folder / 'report.html'}" in out and "calibration error" in out
    assert json.loads((folder / "metrics.json").read_text())["tta"] == "flip"


def test_keras_evaluate_with_a_report_dir(tmp_path):
    x = np.random.default_rng(0).integers(0, 255, (40, 12, 12, 3), dtype=np.uint8)
    y = np.arange(40) % 3
    clf = resnetlab.Classifier("tutorial_cnn", num_classes=3, input_shape=(12, 12, 3), device="cpu")
    clf.fit(x, y, epochs=1, verbose=0)
    scores = clf.evaluate(x, y, report_dir=tmp_path / "rep", return_dict=True)
    saved = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert saved["accuracy"] == pytest.approx(scores["accuracy"]) and saved["data"] == "arrays"
    # both against an independent computation from the predictions
    assert scores["accuracy"] == pytest.approx(float((clf.predict(x).argmax(1) == y).mean()))
