"""The compiled metrics the training loop does not sum itself, measured for Keras' logs, and evaluate's results.

The loop sums the loss, accuracy and top-5 of each epoch; precision, recall, f1 and per-class accuracy
of the training batches follow exactly from the confusion matrix it sums with them (training/sums.py: kept in
checkpoints, summed over DDP processes), and every metric, auc included, of the validation data from the
probabilities the loop's validation kept. compile's `weighted_metrics` are the same weighted by the sample
weights (Keras 3: the `metrics` stay unweighted; a name in both lists logs its weighted twin as
"weighted_NAME"). Runs as a loop Callback before the Keras callbacks, so their logs have the values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..analysis.metrics import FROM_COUNTS, from_confusion, metric_value
from ..data.arrays import sample_weights
from ..training.callbacks import Callback
from .history import History
from .settings import LOOP_KINDS


class KerasMetrics(Callback):
    """Adds the metrics of `history` that the loop does not report to `history.extra`, epoch by epoch: the training
    batches' from the loop's counts (Trainer(class_counts=True)), the validation data's from its probabilities."""

    def __init__(self, history: History, class_names: list[str]) -> None:
        self.history, self.class_names = history, class_names
        self.kinds = {name: kind for name, kind in history.metrics.items() if kind not in LOOP_KINDS}
        self.counted = {name: kind for name, kind in self.kinds.items() if kind in FROM_COUNTS}
        self.weighted = history.weighted  # logged name -> kind

    def on_epoch_end(self, trainer: Any, metrics: Any) -> None:
        row: dict[str, Any] = {}
        counts = trainer.epoch_counts
        if counts is not None:
            row.update({name: from_confusion(kind, counts.confusion, self.class_names)
                        for name, kind in self.counted.items()})
            for name, kind in self.weighted.items():
                if kind == "top5":
                    row[name] = counts.weighted_top5 / counts.weight_total if counts.weight_total > 0 else math.nan
                elif kind != "auc":
                    row[name] = from_confusion(kind, counts.weighted_confusion, self.class_names)
        validation = trainer.last_validation
        if validation is not None and validation.probs is not None:
            weights = getattr(trainer.val_data, "weights", None)
            weights = None if weights is None else weights.numpy()
            for prefix_weights, kinds in ((None, self.kinds), (weights, self.weighted)):
                for name, kind in kinds.items():
                    row[f"val_{name}"] = metric_value(kind, validation.probs, validation.labels, prefix_weights,
                                                      class_names=self.class_names)
        self.history.extra.append(row)


def needs_counts(metrics: dict[str, str], weighted_metrics: dict[str, str]) -> bool:
    """Whether compile's metrics need the loop's confusion matrices (Trainer(class_counts=True)): any metric
    beyond loss, accuracy and top-5, or any weighted one."""
    return bool(weighted_metrics) or any(kind in FROM_COUNTS and kind not in LOOP_KINDS for kind in metrics.values())


def weighted_names(metrics: dict[str, str], weighted_metrics: dict[str, str]) -> dict[str, str]:
    """compile's weighted_metrics by the name they are logged under: "weighted_NAME" if NAME is a metric too."""
    return {(f"weighted_{name}" if name in metrics else name): kind for name, kind in weighted_metrics.items()}


def evaluation_logs(result: Any, compiled: Any, sample_weight: Any = None,
                    logits: torch.Tensor | None = None) -> dict[str, Any]:
    """`evaluate`'s results by name from an EvalResult: the loss (with `sample_weight`, Keras' weighted mean over
    the images: sum(w x loss) / N; a loss of one's own (compile's loss=) on the logits), the metrics unweighted and
    the weighted_metrics weighted, as Keras 3 does."""
    metrics, weighted_metrics = compiled.metrics, compiled.weighted_metrics
    losses, weights = result.sample_losses, None
    if sample_weight is not None:
        if compiled.loss_fn is not None:
            raise ValueError("sample_weight weights the built-in cross-entropy; a loss of your own must weight "
                             "its terms itself")
        weights = sample_weights(sample_weight, len(losses))
    if compiled.loss_fn is not None and logits is not None:
        with torch.no_grad():
            loss = float(compiled.loss_fn(logits.float().cpu(), torch.from_numpy(result.labels)))
    else:
        loss = float(np.mean(losses if weights is None else weights * losses))
    out: dict[str, Any] = {"loss": loss}
    for name, kind in metrics.items():
        out[name] = metric_value(kind, result.probs, result.labels, class_names=result.class_names)
    for name, kind in weighted_names(metrics, weighted_metrics).items():
        out[name] = metric_value(kind, result.probs, result.labels, weights, class_names=result.class_names)
    return out


def keras_line(batches: int, seconds: float, logs: dict[str, Any]) -> str:
    """Keras' closing progress line: `313/313 - 2s 6ms/step - accuracy: 0.9876 - loss: 0.0401`."""
    values = " - ".join(f"{name}: {value:.4f}" for name, value in logs.items() if isinstance(value, float))
    per_step = 1000 * seconds / max(batches, 1)
    return f"{batches}/{batches} - {seconds:.0f}s {per_step:.0f}ms/step" + (f" - {values}" if values else "")
