"""Evaluation metrics: loss, top-1, top-5, per-class accuracy and the confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data.dataset import ImageFiles, ImageSet, Split
from .data.stream import FileLoader
from .errors import DataError
from .info import ModelInfo
from .predict import FP32, Inference, batched_logits


@dataclass
class EvalResult:
    """Metrics of a model on a labelled set. Accuracies are fractions in 0..1."""

    loss: float  # mean cross-entropy, nats
    accuracy: float
    top5: float  # top-k accuracy with k = min(5, number of classes)
    per_class_accuracy: dict[str, float]  # recall of each class; NaN where a class has no samples
    confusion: np.ndarray  # int64 [K, K]: rows are true classes, columns predictions
    num_samples: int

    def to_dict(self) -> dict[str, Any]:
        return {"loss": self.loss, "accuracy": self.accuracy, "top5": self.top5, "num_samples": self.num_samples,
                "per_class_accuracy": {k: (None if np.isnan(v) else v) for k, v in self.per_class_accuracy.items()}}


def compute_metrics(logits: torch.Tensor, labels: torch.Tensor, class_names: list[str]) -> EvalResult:
    """Metrics from logits float [N, K] and labels int64 [N]."""
    num_classes = logits.shape[1]
    logits, labels = logits.float().cpu(), labels.cpu()
    loss = F.cross_entropy(logits, labels).item() if len(labels) else float("nan")
    predicted = logits.argmax(dim=1)
    k = min(5, num_classes)
    top5 = (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1).float().mean().item() if len(labels) else 0.0
    confusion = torch.bincount(labels * num_classes + predicted, minlength=num_classes * num_classes)
    confusion = confusion.reshape(num_classes, num_classes).numpy()
    support = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, np.diag(confusion) / support, np.nan)
    return EvalResult(
        loss=loss,
        accuracy=(predicted == labels).float().mean().item() if len(labels) else 0.0,
        top5=top5,
        per_class_accuracy={name: float(r) for name, r in zip(class_names, recall)},
        confusion=confusion,
        num_samples=len(labels),
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
def file_logits(model: nn.Module, data: ImageFiles, info: ModelInfo, *, batch_size: int = 256,
                device: torch.device | str | None = None, workers: int | None = None,
                inference: Inference = FP32) -> torch.Tensor:
    """Logits float32 [N, K] for image files, decoded with the model file's evaluation transform."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    loader = FileLoader(data, batch_size, input_size=info.input_size, mean=info.mean, std=info.std, device=device,
                        interpolation=info.interpolation, crop_pct=info.crop_pct, workers=workers)
    was_training = model.training
    model.eval()
    try:
        outputs = [inference(model, images).cpu() for images, _ in loader]
    finally:
        model.train(was_training)
    return torch.cat(outputs) if outputs else torch.empty(0, info.num_classes)


def evaluate_model(model: nn.Module, data: Split, info: ModelInfo, *, batch_size: int = 256,
                   device: torch.device | str | None = None, workers: int | None = None,
                   inference: Inference = FP32) -> EvalResult:
    """Evaluate `model` in eval mode on in-memory images or image files (fp32 and no TTA unless `inference` says)."""
    check_compatible(data, info)
    if isinstance(data, ImageFiles):
        logits = file_logits(model, data, info, batch_size=batch_size, device=device, workers=workers,
                             inference=inference)
    else:
        logits = batched_logits(model, data.images, info, batch_size=batch_size, device=device, inference=inference)
    return compute_metrics(logits, data.labels, info.class_names)
