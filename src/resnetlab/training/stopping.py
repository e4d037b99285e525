"""Early stopping, once: `Plateau` counts epochs without improvement (Keras' counting), `EarlyStopping` ends
the run on it. `patience=` of the training settings and Keras' `resnetlab.callbacks.EarlyStopping` both use them.

Keras 3's rule: every epoch adds one to `wait`; an improvement (beyond `min_delta`, and past `baseline`
when one is given) sets it back to 0; the run stops once `wait` reaches `patience`. The state is saved
in every checkpoint, so a resumed run stops where the uninterrupted one would have.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .callbacks import Callback

if TYPE_CHECKING:
    from .history import EpochMetrics
    from .loop import Trainer

# the loop's own "better": validation accuracy, ties broken by the lower loss; the best checkpoint keeps it too
SCORE = "score"


class Plateau:
    """Whether a monitored value still improves. `mode` is "min" or "max"; values may be numbers or, for the
    score, (accuracy, -loss) pairs compared in order."""

    def __init__(self, mode: str, min_delta: float = 0.0, baseline: float | None = None) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be min or max, got {mode!r}")
        self.mode, self.min_delta, self.baseline = mode, abs(float(min_delta)), baseline
        self.reset()

    def reset(self) -> None:
        self.best: Any = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.best_epoch = 0
        self.improved = False

    def better(self, value: Any, reference: Any) -> bool:
        if isinstance(value, (list, tuple)):  # the score: no min_delta between pairs
            return reference in (math.inf, -math.inf) or (list(value) < list(reference) if self.mode == "min"
                                                          else list(value) > list(reference))
        if self.mode == "min":
            return value < reference - self.min_delta
        return value > reference + self.min_delta

    def observe(self, value: Any, epoch: int) -> bool:
        """Count one epoch of `value`; True (also in `improved`) when it improved on the best."""
        self.wait += 1
        self.improved = self.better(value, self.best)
        if not self.improved:
            return False
        self.best, self.best_epoch = value, epoch
        if self.baseline is None or self.better(value, self.baseline):
            self.wait = 0
        return True

    def state_dict(self) -> dict[str, Any]:
        best = list(self.best) if isinstance(self.best, tuple) else self.best
        return {"best": best, "wait": self.wait, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait, self.best_epoch = state["best"], state["wait"], state["best_epoch"]


class EarlyStopping(Callback):
    """End the run when `monitor` has not improved for `patience` epochs (`patience=` in the settings).

    monitor: "score" (the validation accuracy, ties broken by the loss: what the best checkpoint keeps), or
    a key of the History ("val_loss", "val_accuracy", "loss", ...). Epochs without the value (no validation
    data) are not counted.
    """

    def __init__(self, patience: int, monitor: str = SCORE, mode: str = "auto", min_delta: float = 0.0,
                 baseline: float | None = None, start_from_epoch: int = 0) -> None:
        if patience < 0 or start_from_epoch < 0:
            raise ValueError(f"EarlyStopping: patience and start_from_epoch must be >= 0, got {patience} and "
                             f"{start_from_epoch}")
        self.monitor, self.patience, self.start_from_epoch = monitor, patience, start_from_epoch
        self.plateau = Plateau(direction(monitor, mode), min_delta, baseline)

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        if self.update(monitored(trainer, metrics, self.monitor), metrics.epoch - 1) and not trainer.state.done:
            trainer.state.done = True
            what = "validation result" if self.monitor == SCORE else self.monitor
            trainer.state.stop_reason = f"early stopping: no better {what} for {self.patience} epochs"

    def update(self, value: Any, epoch: int) -> bool:
        """Count epoch `epoch` (from 0) of `value`; True when the run should stop."""
        if value is None or epoch < self.start_from_epoch:
            return False
        self.plateau.observe(value, epoch)
        return self.plateau.wait >= self.patience and epoch > 0

    def state_dict(self) -> dict[str, Any]:
        return self.plateau.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau.load_state_dict(state)


def monitored(trainer: Trainer, metrics: EpochMetrics, monitor: str) -> Any:
    """The epoch's value of `monitor` (None when the epoch lacks it: no validation data)."""
    if monitor == SCORE:
        return None if metrics.val_loss is None else (metrics.val_accuracy, -metrics.val_loss)
    return trainer.history.latest().get(monitor)


def direction(monitor: str, mode: str = "auto", who: str = "EarlyStopping") -> str:
    """"min" or "max"; `auto` as Keras: accuracies (and the score) rise, losses and anything else fall."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}(mode={mode!r}): use 'auto', 'min' or 'max'")
    if mode != "auto":
        return mode
    return "max" if monitor == SCORE or monitor.endswith(("acc", "accuracy", "top5", "auc")) else "min"
