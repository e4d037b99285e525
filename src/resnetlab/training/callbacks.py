"""The one way into the training loop: a `Callback` with five hooks, each given the Trainer.

Lightning's and Keras' lesson: everything that watches or steers a run from outside the step itself
(the run folder, the progress display, the Keras facade's callbacks, lr_find's recorder, a user's own
logging or stopping rule) is a Callback in `Trainer.callbacks`, called in list order. A callback that
keeps state across epochs returns it from `state_dict()` (JSON values); the Trainer saves it in every
checkpoint and gives it back through `load_state_dict()` on resume, so a resumed run decides as the
uninterrupted one would.

    class StopAtLoss(Callback):
        def on_batch_end(self, trainer):
            if float(trainer.last_loss) < 0.05:  # reading the loss waits for the device: keep hooks cheap
                trainer.stop.request("loss below 0.05")  # ends the run cleanly, with a checkpoint
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .history import EpochMetrics
    from .loop import Trainer


class Callback:
    """Override the hooks you need; each default does nothing."""

    def on_train_begin(self, trainer: Trainer) -> None:
        """Before the first step of `Trainer.run` (also of a resumed run)."""

    def on_epoch_begin(self, trainer: Trainer) -> None:
        """Before each epoch, or the rest of a resumed one (`trainer.state.batch` batches of it are done)."""

    def on_batch_end(self, trainer: Trainer) -> None:
        """After every optimizer step: `trainer.state.step` counts them, `trainer.last_loss` is the last
        micro-batch's loss (a device tensor; reading it waits for the device)."""

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        """After an epoch's validation; `trainer.history.rows[-1]` is `metrics`. Setting `trainer.state.done`
        (with a `stop_reason`) ends the run here."""

    def on_checkpoint(self, trainer: Trainer) -> None:
        """The loop asks for a resumable checkpoint within an epoch (every `checkpoint_minutes`, or on a stop
        request); the run folder writes `last` here."""

    def on_train_end(self, trainer: Trainer) -> None:
        """`Trainer.run` is returning: all epochs done, stopped early, or stopped by a request."""

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        """`Trainer.run` is raising `error` (on_train_end is not called then, as in Keras)."""

    def state_dict(self) -> dict[str, Any]:
        """What the callback must remember across a resume (JSON values); {} for none."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned, from the checkpoint a run resumes from."""

    @property
    def state_key(self) -> str:
        """The name the callback's state is saved under (its class name; the Trainer numbers repeats)."""
        return type(self).__name__


class LambdaHooks(Callback):
    """A callback from plain functions, each taking the Trainer (and the metrics at an epoch's end):

        resnetlab.train(..., callbacks=[LambdaHooks(on_batch_end=lambda t: losses.append(float(t.last_loss)))])
    """

    def __init__(self, *, on_train_begin: Callable[[Trainer], None] | None = None,
                 on_epoch_begin: Callable[[Trainer], None] | None = None,
                 on_batch_end: Callable[[Trainer], None] | None = None,
                 on_epoch_end: Callable[[Trainer, EpochMetrics], None] | None = None,
                 on_train_end: Callable[[Trainer], None] | None = None) -> None:
        given = {"on_train_begin": on_train_begin, "on_epoch_begin": on_epoch_begin, "on_batch_end": on_batch_end,
                 "on_epoch_end": on_epoch_end, "on_train_end": on_train_end}
        for hook, fn in given.items():
            if fn is not None:
                setattr(self, hook, fn)


def overrides(callback: object, hook: str, base: type = Callback) -> bool:
    """Whether `callback` does anything at `hook` beyond `base`'s default (set on the instance or its class)."""
    return hook in vars(callback) or getattr(type(callback), hook) is not getattr(base, hook)


def check_callbacks(callbacks: list[Callback]) -> None:
    """Refuse anything but Callbacks, saying how to make one (a bare function was the old hook shape)."""
    for i, callback in enumerate(callbacks):
        if isinstance(callback, Callback):
            continue
        kind = f"{type(callback).__module__}.{type(callback).__qualname__}"
        if type(callback).__module__.startswith("resnetlab.keras"):
            raise TypeError(f"callbacks[{i}] is Keras' {type(callback).__name__} ({kind}): those go to "
                            f"Classifier.fit(callbacks=...); the Trainer and resnetlab.train take "
                            f"resnetlab.training.Callback")
        raise TypeError(f"callbacks[{i}] is a {kind}, not a resnetlab.training.Callback; wrap a function as "
                        f"LambdaHooks(on_batch_end=fn) or LambdaHooks(on_epoch_end=fn)")


def state_dicts(callbacks: list[Callback]) -> dict[str, dict[str, Any]]:
    """Every callback's non-empty state, keyed by `state_key` (repeats numbered: EarlyStopping, EarlyStopping.1)."""
    saved: dict[str, dict[str, Any]] = {}
    for key, callback in _keyed(callbacks):
        state = callback.state_dict()
        if state:
            saved[key] = state
    return saved


def load_state_dicts(callbacks: list[Callback], saved: dict[str, dict[str, Any]]) -> None:
    """Give each callback the state saved under its key (a callback new to the resumed run starts fresh)."""
    for key, callback in _keyed(callbacks):
        if key in saved:
            callback.load_state_dict(saved[key])


def _keyed(callbacks: list[Callback]) -> list[tuple[str, Callback]]:
    seen: dict[str, int] = {}
    keyed = []
    for callback in callbacks:
        base = callback.state_key
        count = seen.get(base, 0)
        seen[base] = count + 1
        keyed.append((base if count == 0 else f"{base}.{count}", callback))
    return keyed
