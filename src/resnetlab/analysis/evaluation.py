"""Evaluation metrics: loss, top-1, top-5, per-class accuracy and the confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import ImageFiles, ImageSet, Split
from ..data.stream import FileLoader
from ..errors import DataError
from ..info import ModelInfo
from ..runtime import FP32, Inference, batched_logits, model_device
from .metrics import class_scores, from_confusion

ECE_BINS = 15  # equal-width confidence bins (Guo et al. 2017, "On Calibration of Modern Neural Networks")


@dataclass
class EvalResult:
    """Metrics of a model on a labelled set. Accuracies and rates are fractions in 0..1.

    The per-sample arrays (probabilities, labels, losses) are kept for reports: predictions.csv, the
    reliability diagram, the top losses.
    """

    loss: float  # mean cross-entropy, nats
    accuracy: float
    top5: float  # top-k accuracy with k = min(5, number of classes)
    per_class_accuracy: dict[str, float]  # recall of each class; NaN where a class has no samples
    confusion: np.ndarray | None  # int64 [K, K]: rows are true classes, columns predictions
    num_samples: int
    class_names: list[str] = field(default_factory=list)
    precision: np.ndarray | None = None  # [K]; NaN for a class never predicted
    recall: np.ndarray | None = None  # [K]; NaN for a class without samples
    f1: np.ndarray | None = None  # [K]
    support: np.ndarray | None = None  # [K] images per true class
    ece: float = float("nan")  # expected calibration error over ECE_BINS confidence bins
    probs: np.ndarray | None = None  # float32 [N, K]
    labels: np.ndarray | None = None  # int64 [N]
    sample_losses: np.ndarray | None = None  # float32 [N]

    @property
    def predictions(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    def averages(self) -> dict[str, dict[str, float]]:
        """Macro (unweighted mean over the classes that occur: with samples or predicted) and support-weighted
        precision/recall/F1, as scikit-learn's defaults (labels from y_true and y_pred, zero_division=0):
        a class never predicted counts as precision 0, a predicted class without samples as recall and F1 0.
        """
        present = (self.support > 0) | (self.confusion.sum(axis=0) > 0)
        precision, recall, f1 = (np.nan_to_num(a[present]) for a in (self.precision, self.recall, self.f1))
        weights = self.support[present] / self.support[present].sum()
        return {"macro": {kind: from_confusion(kind, self.confusion) for kind in ("precision", "recall", "f1")},
                "weighted": {"precision": float(weights @ precision), "recall": float(weights @ recall),
                             "f1": float(weights @ f1)}}

    def most_confused(self, count: int = 10) -> list[tuple[str, str, int]]:
        """(true class, predicted class, images) for the largest off-diagonal confusion entries."""
        off = self.confusion.copy()
        np.fill_diagonal(off, 0)
        order = np.argsort(-off, axis=None)[:count]
        pairs = [np.unravel_index(i, off.shape) for i in order]
        return [(self.class_names[t], self.class_names[p], int(off[t, p])) for t, p in pairs if off[t, p] > 0]

    def top_losses(self, count: int = 16) -> np.ndarray:
        """Indices of the samples with the highest loss, highest first."""
        return np.argsort(-self.sample_losses)[:count]

    def to_dict(self) -> dict[str, Any]:
        def clean(value: float) -> float | None:
            return None if value is None or np.isnan(value) else float(value)

        data = {"loss": self.loss, "accuracy": self.accuracy, "top5": self.top5, "num_samples": self.num_samples,
                "per_class_accuracy": {k: clean(v) for k, v in self.per_class_accuracy.items()}}
        if self.precision is not None:
            data["ece"] = clean(self.ece)
            data["per_class"] = {name: {"precision": clean(p), "recall": clean(r), "f1": clean(f), "support": int(n)}
                                 for name, p, r, f, n in zip(self.class_names, self.precision, self.recall, self.f1,
                                                             self.support)}
            data.update(self.averages())
        return data


def calibration_bins(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Equal-width confidence bins: (edges [bins+1], accuracy, mean confidence, count per bin; empty bins 0)."""
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    filled = np.maximum(counts, 1)
    accuracy = np.bincount(which, weights=correct, minlength=bins) / filled
    mean_confidence = np.bincount(which, weights=confidence, minlength=bins) / filled
    return edges, accuracy, mean_confidence, counts


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Sum over confidence bins of |accuracy - mean confidence| weighted by the bin's share of samples."""
    _, accuracy, confidence, counts = calibration_bins(probs, labels, bins)
    return float((counts / max(1, counts.sum()) * np.abs(accuracy - confidence)).sum())


def compute_metrics(logits: torch.Tensor, labels: torch.Tensor, class_names: list[str]) -> EvalResult:
    """Metrics from logits float [N, K] and labels int64 [N]."""
    num_classes = logits.shape[1]
    logits, labels = logits.float().cpu(), labels.cpu()
    if len(labels) == 0:
        return EvalResult(float("nan"), 0.0, 0.0, {n: float("nan") for n in class_names}, None, 0, class_names)
    sample_losses = F.cross_entropy(logits, labels, reduction="none")
    predicted = logits.argmax(dim=1)
    k = min(5, num_classes)
    top5 = (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1).float().mean().item()
    confusion = torch.bincount(labels * num_classes + predicted, minlength=num_classes * num_classes)
    confusion = confusion.reshape(num_classes, num_classes).numpy()
    support = confusion.sum(axis=1)
    precision, recall, f1 = class_scores(confusion)
    probs = torch.softmax(logits, dim=1).numpy()
    return EvalResult(
        loss=sample_losses.mean().item(),
        accuracy=(predicted == labels).float().mean().item(),
        top5=top5,
        per_class_accuracy={name: float(r) for name, r in zip(class_names, recall)},
        confusion=confusion,
        num_samples=len(labels),
        class_names=list(class_names),
        precision=precision, recall=recall, f1=np.where(support > 0, f1, np.nan), support=support,
        ece=expected_calibration_error(probs, labels.numpy()),
        probs=probs, labels=labels.numpy(), sample_losses=sample_losses.numpy(),
    )


def check_compatible(data: Split, info: ModelInfo, what: str = "dataset") -> None:
    """Raise DataError when a set's images or labels do not fit the model."""
    if isinstance(data, ImageSet) and data.image_shape != tuple(info.input_size):
        c, h, w = data.image_shape
        mc, mh, mw = info.input_size
        raise DataError(f"the {what} has {h}x{w} images with {c} channel(s) but the model was trained on "
                        f"{mh}x{mw} with {mc}; evaluate it on data of the same kind")
    if len(data) and int(data.labels.max()) >= info.num_classes:
        raise DataError(f"the {what} has label {int(data.labels.max())} but the model knows only "
                        f"{info.num_classes} classes")


@torch.no_grad()
def _file_logits(models: Sequence[nn.Module], data: ImageFiles, info: ModelInfo, *, batch_size: int,
                 device: torch.device | str | None, workers: int | None, inference: Inference) -> list[torch.Tensor]:
    """Each model's logits over the files, decoded once: decoding costs more than most models' forward pass."""
    device = torch.device(device) if device is not None else model_device(models[0])
    loader = FileLoader(data, batch_size, input_size=info.input_size, mean=info.mean, std=info.std, device=device,
                        interpolation=info.interpolation, crop_pct=info.crop_pct, workers=workers)
    was_training = [model.training for model in models]
    outputs: list[list[torch.Tensor]] = [[] for _ in models]
    try:
        for model in models:
            model.eval()
        for images, _ in loader:
            for model, logits in zip(models, outputs):
                logits.append(inference(model, images).cpu())
    finally:
        for model, training in zip(models, was_training):
            model.train(training)
    return [torch.cat(logits) if logits else torch.empty(0, info.num_classes) for logits in outputs]


def evaluate_model(model: nn.Module, data: Split, info: ModelInfo, *, batch_size: int = 256,
                   device: torch.device | str | None = None, workers: int | None = None,
                   inference: Inference = FP32) -> EvalResult:
    """Evaluate `model` in eval mode on in-memory images or image files (fp32 and no TTA unless `inference` says)."""
    return evaluate_models([model], data, info, batch_size=batch_size, device=device, workers=workers,
                           inference=inference)[0]


def evaluate_models(models: Sequence[nn.Module], data: Split, info: ModelInfo, *, batch_size: int = 256,
                    device: torch.device | str | None = None, workers: int | None = None,
                    inference: Inference = FP32) -> list[EvalResult]:
    """Evaluate several models (a reduced-precision runner and its fp32 reference) on the same data;
    image files are decoded once for all of them."""
    check_compatible(data, info)
    if isinstance(data, ImageFiles):
        logits = _file_logits(models, data, info, batch_size=batch_size, device=device, workers=workers,
                              inference=inference)
    else:
        logits = [batched_logits(model, data.images, info, batch_size=batch_size, device=device, inference=inference)
                  for model in models]
    return [compute_metrics(each, data.labels, info.class_names) for each in logits]
