"""Lr changes made from outside the schedule, as one Callback: the steps run at schedule(step) x `factor`.

The loop sets the lr at every step from `Trainer.schedule` (the configured schedule; He et al.'s
warm-up holds it at `warmup_lr` first), so a change made by hand would be overwritten at the next step.
Keras' ReduceLROnPlateau, LearningRateScheduler and `Classifier.learning_rate = lr` mean "from here on,
run at lr": `LrScale.scale_to` turns that into a factor on the schedule, which a constant schedule keeps
exactly and a decaying one passes through. The factor is the callback's state, so it is saved in
checkpoints, and the Keras facade keeps one LrScale across its fit calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .callbacks import Callback
from .optim import base_lr, set_lr

if TYPE_CHECKING:
    from .loop import Trainer


class LrScale(Callback):
    """Scales the Trainer's schedule by `factor`; `scale_to(trainer, lr)` sets it so that the next steps run at lr.

    `pending`: an lr asked for before the run started (between Keras fit calls), applied at its first step.
    """

    def __init__(self, factor: float = 1.0) -> None:
        self.factor = float(factor)
        self.pending: float | None = None
        self._schedule: Callable[[int], float] | None = None  # the schedule it scales (the Trainer's own)
        self._before: tuple[float, float | None, int] = (self.factor, self.pending, 0)  # at the run's start

    def on_train_begin(self, trainer: Trainer) -> None:
        schedule = self._schedule = trainer.schedule
        trainer.schedule = lambda step: schedule(step) * self.factor
        self._before = (self.factor, self.pending, trainer.state.step)
        if self.pending is not None:
            lr, self.pending = self.pending, None
            self.scale_to(trainer, lr)

    def scale_to(self, trainer: Trainer, lr: float) -> None:
        """Run the steps from here on at `lr` (full scale). Where the schedule is at 0 (the end of a cosine or
        one-cycle run) the factor changes as lr / the latest lr, which the next run's schedule starts from."""
        if self._schedule is None:
            raise RuntimeError("LrScale.scale_to is for a running Trainer; add the LrScale to its callbacks")
        base = base_lr(trainer.optimizer)
        scheduled = base * self._schedule(trainer.state.step)
        if scheduled > 0:
            self.factor = lr / scheduled
        elif trainer.lr > 0:
            self.factor *= lr / trainer.lr
        if base > 0:  # at once, so that the lr reads back as set (each group keeps its own ratio to it)
            set_lr(trainer.optimizer, lr / base)

    def _finish(self, trainer: Trainer) -> None:
        if trainer.state.step == self._before[2]:  # no step ran at the new lr: the next run starts as this one did
            self.factor, self.pending = self._before[:2]
        if self._schedule is not None:
            trainer.schedule, self._schedule = self._schedule, None

    def on_train_end(self, trainer: Trainer) -> None:
        self._finish(trainer)

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        self._finish(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {} if self.factor == 1.0 else {"factor": self.factor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.factor = float(state.get("factor", 1.0))
