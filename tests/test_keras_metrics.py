"""compile(metrics=) with Keras' names (precision, recall, f1_score, auc, per-class) in fit's logs and
evaluate's results, weighted by sample_weight through weighted_metrics, checked against scikit-learn;
evaluate/predict's steps= and verbose= lines."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

import resnetlab
from quadrants import quadrant_images as _toy
from resnetlab.analysis.metrics import confusion_matrix, from_confusion, metric_value
from resnetlab.training.sums import EpochSums

METRICS = ["accuracy", "precision", "recall", "f1_score", "auc", "per_class_accuracy"]


def _sklearn(probs, labels, weights=None):
    predictions = probs.argmax(1)
    auc = np.mean([roc_auc_score(labels == k, probs[:, k], sample_weight=weights) for k in range(probs.shape[1])
                   if 0 < (labels == k).sum() < len(labels)])
    return {"accuracy": accuracy_score(labels, predictions, sample_weight=weights),
            "precision": precision_score(labels, predictions, average="macro", sample_weight=weights,
                                         zero_division=0),
            "recall": recall_score(labels, predictions, average="macro", sample_weight=weights, zero_division=0),
            "f1": f1_score(labels, predictions, average="macro", sample_weight=weights, zero_division=0),
            "auc": auc}


@pytest.mark.parametrize("weighted", [False, True])
def test_each_metric_kind_is_scikit_learns_definition(weighted):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=200)
    labels = rng.integers(0, 4, 200)
    labels[:5] = 3
    probs[labels == 2, 2] += 0.5  # some skill; class 1 is never predicted below
    probs[:, 1] = 0.0
    probs /= probs.sum(1, keepdims=True)
    weights = rng.uniform(0, 3, 200) if weighted else None
    expected = _sklearn(probs, labels, weights)
    for kind, value in expected.items():
        assert metric_value(kind, probs, labels, weights) == pytest.approx(value, abs=1e-12), kind
    per_class = metric_value("per_class", probs, labels, weights, class_names=list("abcd"))
    w = np.ones(200) if weights is None else weights
    for k, name in enumerate("abcd"):
        mine = labels == k
        assert per_class[name] == pytest.approx((w[mine] * (probs[mine].argmax(1) == k)).sum() / w[mine].sum())
    # the running form: batches summed on the device give the same confusion matrix
    layout = EpochSums(4)
    sums = torch.zeros(layout.size, dtype=torch.float64)
    for start in range(0, 200, 64):
        part = slice(start, start + 64)
        layout.add(sums, torch.tensor(0.0), torch.tensor(np.log(probs[part] + 1e-9)), torch.tensor(labels[part]),
                   None if weights is None else torch.tensor(weights[part]))
    counts = layout.counts(sums)
    np.testing.assert_allclose(counts.weighted_confusion, confusion_matrix(labels, probs.argmax(1), 4, weights))
    np.testing.assert_array_equal(counts.confusion, confusion_matrix(labels, probs.argmax(1), 4))
    assert from_confusion("f1", counts.weighted_confusion) == pytest.approx(expected["f1"])


@pytest.fixture(scope="module")
def fitted():
    x, y = _toy(96, 0)
    x_val, y_val = _toy(48, 1)
    clf = resnetlab.Classifier("tutorial_cnn", num_classes=3, input_shape=(28, 28, 3), device="cpu")
    clf.compile(optimizer="adam", metrics=METRICS, weighted_metrics=["accuracy", "auc"], precision="fp32")
    history = clf.fit(x, y, epochs=2, batch_size=16, validation_data=(x_val, y_val), verbose=0)
    return clf, history, (x_val, y_val)


def test_fit_logs_the_metrics_by_their_compile_names_and_validation_matches_evaluate(fitted):
    clf, history, (x_val, y_val) = fitted
    logs = history.history
    # auc needs every score of the epoch: validation only (the docs table says so)
    assert list(logs) == ["loss", "accuracy", "precision", "recall", "f1_score", "per_class_accuracy",
                          "weighted_accuracy", "val_loss", "val_accuracy", "val_precision", "val_recall",
                          "val_f1_score", "val_auc", "val_per_class_accuracy", "val_weighted_accuracy",
                          "val_weighted_auc", "lr"]
    # without sample weights the weighted twins equal the plain ones
    assert logs["weighted_accuracy"] == pytest.approx(logs["accuracy"])
    assert logs["val_weighted_auc"] == pytest.approx(logs["val_auc"])
    assert all(len(values) == 2 for values in logs.values())
    assert all(0 <= v <= 1 for name in ("precision", "recall", "f1_score", "val_auc") for v in logs[name])
    assert set(logs["per_class_accuracy"][0]) == {"0", "1", "2"}
    scores = clf.evaluate(x_val, y_val, return_dict=True, verbose=0)
    for name in ("precision", "recall", "f1_score", "auc", "per_class_accuracy"):  # the same model, the same data
        assert scores[name] == pytest.approx(logs[f"val_{name}"][-1]), name


def test_evaluate_weights_the_loss_and_weighted_metrics_as_keras(fitted):
    clf, _, (x_val, y_val) = fitted
    weights = np.random.default_rng(1).uniform(0, 2, len(y_val))
    plain = clf.evaluate(x_val, y_val, return_dict=True, verbose=0)
    scores = clf.evaluate(x_val, y_val, sample_weight=weights, return_dict=True, verbose=0)
    probs = clf.predict(x_val, verbose=0)
    losses = -np.log(probs[np.arange(len(y_val)), y_val])
    assert scores["loss"] == pytest.approx((weights * losses).sum() / len(y_val), rel=1e-4)  # sum(w l) / N
    assert scores["accuracy"] == plain["accuracy"]  # metrics= stay unweighted, as in Keras 3
    expected = _sklearn(probs.astype(np.float64), y_val, weights)
    assert scores["weighted_accuracy"] == pytest.approx(expected["accuracy"])  # in both lists: prefixed
    assert scores["weighted_auc"] == pytest.approx(expected["auc"], abs=1e-6)
    assert list(scores)[:2] == ["loss", "accuracy"] and len(clf.evaluate(x_val, y_val, verbose=0)) == len(plain)
    with pytest.raises(ValueError, match="sample_weight has 3 values for 48 images"):
        clf.evaluate(x_val, y_val, sample_weight=[1, 2, 3], verbose=0)


def test_steps_and_verbose_lines(fitted, capsys):
    clf, _, (x_val, y_val) = fitted
    first = clf.evaluate(x_val, y_val, batch_size=16, steps=2, return_dict=True, verbose=0)
    assert first == clf.evaluate(x_val[:32], y_val[:32], batch_size=16, return_dict=True, verbose=0)
    assert clf.predict(x_val, batch_size=16, steps=1, verbose=0).shape == (16, 3)
    capsys.readouterr()
    clf.evaluate(x_val, y_val, batch_size=16)  # verbose="auto": Keras' closing line
    line = capsys.readouterr().out.strip()
    assert line.startswith("3/3 - ") and "ms/step - loss: " in line and " - accuracy: " in line
    clf.predict(x_val, batch_size=32, verbose=1)
    assert capsys.readouterr().out.startswith("2/2 - ")
    clf.evaluate(x_val, y_val, verbose=0)
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="steps must be a whole number >= 1"):
        clf.evaluate(x_val, y_val, steps=0)


def test_an_unknown_metric_lists_the_names_accepted():
    clf = resnetlab.Classifier("tutorial_cnn", num_classes=3, input_shape=(28, 28, 3))
    with pytest.raises(ValueError, match=r"unsupported metric 'mae'.*precision, recall, f1_score, auc"):
        clf.compile(metrics=["mae"])
