"""The running sums of an epoch: what the training loop adds up batch by batch, on the device.

One flat float64 vector, kept in `LoopState.sums` (so a checkpoint taken mid-epoch resumes them) and summed
over processes at the epoch's end (so a DDP run's totals are those of one process seeing every image):

    [loss x images, correct, top-5 correct]                                       always
    [weighted top-5 correct, weight total, confusion K x K, weighted confusion K x K]  with `classes`

The loss is already Keras' weighted one when the data has sample weights (the loop's sum(w x loss) / N per
batch). The counted part is what the Keras facade's metrics come from: precision, recall, F1 and per-class
accuracy are exact functions of a confusion matrix, and compile's weighted_metrics of the one weighted by the
sample weights (rows: true class, columns: predicted; all weights 1 when the data has none).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

BASE = 3  # loss x n, correct, top-5


@dataclass(frozen=True)
class EpochSums:
    """The layout of the sums vector; `classes` None: the base three only."""

    classes: int | None = None

    @property
    def size(self) -> int:
        return BASE if self.classes is None else BASE + 2 + 2 * self.classes**2

    def zeros(self) -> list[float]:
        return [0.0] * self.size

    def add(self, sums: torch.Tensor, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor,
            weights: torch.Tensor | None) -> None:
        """Add one micro-batch: `loss` its mean loss, `labels` class indices or soft targets [B, K] (mixup and
        cutmix: the dominant class counts), `weights` its sample weights or None."""
        hard = labels.argmax(dim=1) if labels.ndim == 2 else labels
        top = logits.detach().topk(min(5, logits.shape[1]), dim=1).indices
        in_top5 = (top == hard[:, None]).any(dim=1)
        sums[0] += loss.detach().double() * len(labels)
        sums[1] += (top[:, 0] == hard).sum()
        sums[2] += in_top5.sum()
        if self.classes is None:
            return
        k2 = self.classes**2
        w = torch.ones(len(hard), dtype=torch.float64, device=sums.device) if weights is None else weights.double()
        sums[BASE] += (w * in_top5).sum()
        sums[BASE + 1] += w.sum()
        cell = hard * self.classes + top[:, 0]
        sums[BASE + 2:BASE + 2 + k2].index_add_(0, cell, torch.ones_like(w))
        sums[BASE + 2 + k2:].index_add_(0, cell, w)

    def counts(self, totals: list[float] | torch.Tensor) -> ClassCounts | None:
        """The counted part of an epoch's totals (the sums over processes), or None without `classes`."""
        if self.classes is None:
            return None
        values = torch.as_tensor(totals, dtype=torch.float64)
        k, k2 = self.classes, self.classes**2
        return ClassCounts(weighted_top5=float(values[BASE]), weight_total=float(values[BASE + 1]),
                           confusion=values[BASE + 2:BASE + 2 + k2].view(k, k).numpy(),
                           weighted_confusion=values[BASE + 2 + k2:BASE + 2 + 2 * k2].view(k, k).numpy())


@dataclass
class ClassCounts:
    """An epoch's counts over all its images (and processes)."""

    weighted_top5: float  # sample weight of the images whose class is in the top 5
    weight_total: float
    confusion: np.ndarray  # [K, K]: images of true class i predicted j
    weighted_confusion: np.ndarray  # the same, each image counting its sample weight
