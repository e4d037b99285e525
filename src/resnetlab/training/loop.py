"""The training loop: `fit` runs epochs of `train_one_epoch`, validating after each."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..config import TrainConfig
from ..data.dataset import Split
from ..data.loader import Batches
from ..errors import UserError
from ..evaluate import evaluate_model
from ..info import ModelInfo
from .optim import Schedule, build_optimizer, build_schedule, set_lr
from .progress import ProgressDisplay, SilentProgress


class TrainingError(UserError):
    """Training cannot go on (for example the loss diverged); the message says what to change."""


@dataclass
class EpochMetrics:
    epoch: int  # 1-based
    train_loss: float
    train_accuracy: float
    train_top5: float  # top-k accuracy, k = min(5, classes)
    val_loss: float | None
    val_accuracy: float | None
    val_top5: float | None
    lr: float  # at the end of the epoch
    seconds: float  # training time of the epoch, validation excluded
    images_per_second: float

    def as_row(self) -> dict[str, float | int | None]:
        return asdict(self)

    def summary(self) -> str:
        text = f"loss {self.train_loss:.4f} acc {self.train_accuracy:.1%}"
        if self.val_loss is not None:
            text += f" | val_loss {self.val_loss:.4f} val_acc {self.val_accuracy:.1%}"
        return text + f" | lr {self.lr:.3g} {self.images_per_second:,.0f} img/s {self.seconds:.1f}s"


class History:
    """What `fit` returns; `history.history` and `history.epoch` read as in Keras.

    `metrics` chooses the keys besides the losses: "accuracy" and/or "top5" (and their val_ twins).
    """

    def __init__(self, metrics: Sequence[str] = ("accuracy",)) -> None:
        self.rows: list[EpochMetrics] = []
        self.metrics = tuple(metrics)

    @property
    def epoch(self) -> list[int]:
        return [row.epoch - 1 for row in self.rows]  # Keras counts epochs from 0

    @property
    def history(self) -> dict[str, list[float]]:
        has_val = bool(self.rows) and self.rows[0].val_loss is not None
        out: dict[str, list[float]] = {"loss": [r.train_loss for r in self.rows]}
        for metric in self.metrics:
            out[metric] = [getattr(r, f"train_{metric}") for r in self.rows]
        if has_val:
            out["val_loss"] = [r.val_loss for r in self.rows]
            for metric in self.metrics:
                out[f"val_{metric}"] = [getattr(r, f"val_{metric}") for r in self.rows]
        out["lr"] = [r.lr for r in self.rows]
        return out


EpochCallback = Callable[[EpochMetrics, nn.Module, torch.optim.Optimizer], None]


def train_one_epoch(model: nn.Module, loader: Batches, optimizer: torch.optim.Optimizer,
                    criterion: nn.Module, schedule: Schedule, step: int,
                    progress: ProgressDisplay) -> tuple[float, float, float, int]:
    """One pass over `loader`; return (mean loss, accuracy, top-5 accuracy, next global step)."""
    model.train()
    started = time.perf_counter()
    loss_sum = torch.zeros((), device=loader.device)  # running sums stay on the device: no sync per step
    correct = torch.zeros((), device=loader.device)
    correct5 = torch.zeros((), device=loader.device)
    seen = 0
    for batch_index, (images, labels) in enumerate(loader, start=1):
        set_lr(optimizer, schedule(step))
        logits = model(images)
        loss = criterion(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(labels)
        hard = labels.argmax(dim=1) if labels.ndim == 2 else labels  # mixup/cutmix: the dominant class
        top = logits.detach().topk(min(5, logits.shape[1]), dim=1).indices
        correct += (top[:, 0] == hard).sum()
        correct5 += (top == hard[:, None]).any(dim=1).sum()
        seen += len(labels)
        step += 1
        if progress.due():  # .item() forces a device sync: only when the display refreshes
            mean_loss = loss_sum.item() / seen
            _check_finite(mean_loss, step)
            rate = seen / (time.perf_counter() - started)
            progress.update(batch_index, mean_loss, correct.item() / seen, rate)
    if seen == 0:
        raise TrainingError("no training batch could be formed; give at least 2 training images")
    mean_loss = loss_sum.item() / seen
    _check_finite(mean_loss, step)
    return mean_loss, correct.item() / seen, correct5.item() / seen, step


def _check_finite(loss: float, step: int) -> None:
    if not math.isfinite(loss):
        raise TrainingError(f"the training loss became {loss} by step {step}; lower lr (or raise "
                            f"warmup_epochs) and train again")


def fit(
    model: nn.Module,
    info: ModelInfo,
    train_loader: Batches,
    cfg: TrainConfig,
    *,
    val_data: Split | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    callbacks: Sequence[EpochCallback] = (),
    progress: ProgressDisplay | None = None,
    metrics: Sequence[str] = ("accuracy",),
) -> History:
    """Train `model` for `cfg.epochs` epochs; validate on `val_data` after each; return the History.

    `info` supplies the normalization used for validation. `callbacks` run after every epoch
    (the run folder's writer is one). An optimizer passed in is used as is, with `cfg.schedule`
    scaling its learning rate. `metrics` picks what `history.history` shows ("accuracy", "top5").
    """
    progress = progress or SilentProgress()
    optimizer = optimizer or build_optimizer(model, cfg)
    schedule = build_schedule(cfg, len(train_loader))
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    history, step = History(metrics), 0
    try:
        for epoch in range(1, cfg.epochs + 1):
            train_loader.set_epoch(epoch)
            progress.start_epoch(epoch, cfg.epochs, len(train_loader))
            started = time.perf_counter()
            train_loss, train_acc, train_top5, step = train_one_epoch(model, train_loader, optimizer, criterion,
                                                                      schedule, step, progress)
            seconds = time.perf_counter() - started
            val = evaluate_model(model, val_data, info, device=train_loader.device) if val_data else None
            metrics = EpochMetrics(
                epoch=epoch, train_loss=train_loss, train_accuracy=train_acc, train_top5=train_top5,
                val_loss=val.loss if val else None, val_accuracy=val.accuracy if val else None,
                val_top5=val.top5 if val else None,
                lr=optimizer.param_groups[0]["lr"], seconds=seconds,
                images_per_second=train_loader.num_samples / max(seconds, 1e-9),
            )
            history.rows.append(metrics)
            progress.end_epoch(metrics.summary())
            for callback in callbacks:
                callback(metrics, model, optimizer)
    finally:
        progress.close()
    return history
