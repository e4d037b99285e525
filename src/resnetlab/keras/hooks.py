"""Keras' callbacks, run by the training loop: one training Callback that speaks Keras to a fit's callbacks.

Keras counts epochs and batches from 0 and passes `logs` dicts keyed as the History; the loop counts
from 1 and passes the Trainer. This adapter translates, and turns `model.stop_training` into the loop's
own stop (after the next step inside an epoch, at once at an epoch's end), as Keras does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..training.callbacks import Callback as LoopCallback
from ..training.callbacks import overrides
from .callbacks import STOPPED, Callback, Logs
from .history import History


class KerasCallbacks(LoopCallback):
    """Runs a fit's Keras callbacks (used by `Classifier.fit`)."""

    def __init__(self, callbacks: Sequence[Callback], model: Any, history: History) -> None:
        for i, callback in enumerate(callbacks):
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks[{i}] is a {type(callback).__module__}.{type(callback).__name__}; "
                                "use the callbacks of resnetlab.callbacks (the same names as Keras')")
            if overrides(callback, "on_train_batch_begin", Callback):
                raise ValueError(f"callbacks[{i}] ({type(callback).__name__}) defines on_train_batch_begin, which "
                                 "resnetlab does not call; use on_train_batch_end")
            callback.set_model(model)
            callback.set_params(history.params)
            callback._validate()
        self.callbacks, self.model, self.history = list(callbacks), model, history
        # only then a batch hook: reading the loss waits for the device at every step
        self.batch_hooks = [cb for cb in self.callbacks if overrides(cb, "on_train_batch_end", Callback)]
        self.logs: Logs = {}

    def on_train_begin(self, trainer: Any) -> None:
        for callback in self.callbacks:
            callback.on_train_begin({})

    def on_epoch_begin(self, trainer: Any) -> None:
        for callback in self.callbacks:
            callback.on_epoch_begin(trainer.state.epoch - 1, {})
        if self.model.stop_training:  # as in Keras, the loop notices after the next step
            trainer.stop.request(STOPPED)

    def on_batch_end(self, trainer: Any) -> None:
        if not self.batch_hooks:
            return
        logs = {"loss": float(trainer.last_loss)}
        for callback in self.batch_hooks:
            callback.on_train_batch_end(trainer.state.batch - 1, dict(logs))
        if self.model.stop_training:  # as in Keras: no further step; this epoch is left unfinished
            trainer.stop.request(STOPPED)

    def on_epoch_end(self, trainer: Any, metrics: Any) -> None:
        self.logs = self.history.latest()
        for callback in self.callbacks:
            callback.on_epoch_end(metrics.epoch - 1, dict(self.logs))
        if self.model.stop_training and not trainer.state.done:
            trainer.state.done = True
            trainer.state.stop_reason = STOPPED

    def on_train_end(self, trainer: Any) -> None:
        for callback in self.callbacks:
            callback.on_train_end(dict(self.logs))

    def on_exception(self, trainer: Any, error: BaseException) -> None:
        for callback in self.callbacks:  # close the callbacks' files; Keras calls no on_train_end after an error
            callback._abandon()
