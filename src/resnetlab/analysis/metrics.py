"""Metrics by kind, from class probabilities and integer labels, each with an optional weight per image.

The kinds are what Keras' `compile(metrics=[...])` names map to (keras/settings.py): accuracy, top5
(top-k, k = min(5, classes)), precision, recall and f1 (macro averages over the classes that occur in the
labels or the predictions, scikit-learn's defaults with zero_division=0), auc (one-vs-rest ROC AUC averaged
over the classes that have both positives and negatives) and per_class (the accuracy on each class's images,
i.e. its recall). The definitions are scikit-learn's, and the tests check them against it with weights.
Precision, recall, f1, accuracy and per_class also follow exactly from a (weighted) confusion matrix
(`from_confusion`): the training loop sums one over its batches (training/sums.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.arrays import sample_weights

KINDS = ("accuracy", "top5", "precision", "recall", "f1", "auc", "per_class")
FROM_COUNTS = ("accuracy", "precision", "recall", "f1", "per_class")  # what a confusion matrix determines


def _weights(sample_weight: Any, n: int) -> np.ndarray:
    return np.ones(n) if sample_weight is None else sample_weights(sample_weight, n)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int,
                     sample_weight: np.ndarray | None = None) -> np.ndarray:
    """float64 [K, K]: the weight of the images of true class i (row) predicted as j (column)."""
    weights = _weights(sample_weight, len(labels))
    counts = np.zeros(num_classes * num_classes)
    np.add.at(counts, np.asarray(labels) * num_classes + np.asarray(predictions), weights)
    return counts.reshape(num_classes, num_classes)


def class_scores(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, f1) per class from a confusion matrix: precision NaN for a class never predicted,
    recall NaN for a class without images, f1 0 where both are 0 or undefined."""
    true_total, predicted_total, hits = confusion.sum(axis=1), confusion.sum(axis=0), np.diag(confusion)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(true_total > 0, hits / true_total, np.nan)
        precision = np.where(predicted_total > 0, hits / predicted_total, np.nan)
        p, r = np.nan_to_num(precision), np.nan_to_num(recall)
        f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return precision, recall, f1


def from_confusion(kind: str, confusion: np.ndarray, class_names: list[str] | None = None) -> Any:
    """accuracy, precision, recall, f1 (macro) or per_class from a (weighted) confusion matrix. The macro
    averages are over the classes with images or predictions (scikit-learn's labels), an undefined score
    counting 0 (zero_division=0)."""
    if kind == "accuracy":
        return float(np.diag(confusion).sum() / max(confusion.sum(), 1e-300))
    precision, recall, f1 = class_scores(confusion)
    if kind == "per_class":
        names = class_names or [str(i) for i in range(len(confusion))]
        return {name: float(value) for name, value in zip(names, recall)}
    present = (confusion.sum(axis=1) > 0) | (confusion.sum(axis=0) > 0)
    if not present.any():
        return float("nan")
    values = {"precision": precision, "recall": recall, "f1": f1}[kind]
    return float(np.nan_to_num(values[present]).mean())


def one_vs_rest_auc(probs: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """Macro ROC AUC, each class against the rest, over the classes with positives and negatives (NaN if none)."""
    from sklearn.metrics import roc_auc_score

    weights = _weights(sample_weight, len(labels))
    scores = []
    for k in range(probs.shape[1]):
        positive = labels == k
        if weights[positive].sum() > 0 and weights[~positive].sum() > 0:
            scores.append(roc_auc_score(positive, probs[:, k], sample_weight=weights))
    return float(np.mean(scores)) if scores else float("nan")


def metric_value(kind: str, probs: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None,
                 class_names: list[str] | None = None) -> Any:
    """One metric of `KINDS` for probabilities float [N, K] and labels int [N]; per_class gives a dict."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    if kind == "auc":
        return one_vs_rest_auc(probs, labels, sample_weight)
    if kind == "top5":
        k = min(5, probs.shape[1])
        top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return float(np.average((top == labels[:, None]).any(axis=1), weights=_weights(sample_weight, len(labels))))
    if kind not in FROM_COUNTS:
        raise ValueError(f"unknown metric kind {kind!r}; one of {', '.join(KINDS)}")
    confusion = confusion_matrix(labels, probs.argmax(axis=1), probs.shape[1], sample_weight)
    return from_confusion(kind, confusion, class_names)
