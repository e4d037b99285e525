"""Keras' training callbacks for `Classifier.fit(..., callbacks=[...])`: the names, arguments and behaviour
of `keras.callbacks` (Keras 3), over resnetlab's training loop.

    from resnetlab.callbacks import EarlyStopping, ModelCheckpoint, ReduceLROnPlateau
    clf.fit(x, y, epochs=50, validation_data=(x_val, y_val),
            callbacks=[EarlyStopping(patience=5, restore_best_weights=True),
                       ModelCheckpoint("best.h5", save_best_only=True)])

As in Keras, a callback's `model` is the Classifier (`save`, `get_weights`, `set_weights`, `stop_training`),
`params` holds epochs, steps and the names the fit logs, epochs count from 0, and `logs` hold the epoch's
values keyed as in the History ("loss", "accuracy", "val_loss", ..., "lr"). The loop sets the optimizer's lr
at every step from the compiled schedule, so a callback changes it through `LearningRateScheduler`,
`ReduceLROnPlateau` or `Classifier.learning_rate`, not by writing to the optimizer.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_csv
from ..tensorfile import HDF5_SUFFIXES, SAFETENSORS_SUFFIXES
from ..training import stopping
from ..training.stopping import Plateau, direction

Logs = dict[str, float]
STOPPED = "stopped by a callback (stop_training)"


class Callback:
    """The base class: override the hooks you need (Keras' `keras.callbacks.Callback`)."""

    def __init__(self) -> None:
        self.model: Any = None  # the Classifier being fitted
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: Logs | None = None) -> None:
        """Before the first epoch."""

    def on_train_end(self, logs: Logs | None = None) -> None:
        """After the last epoch (logs: the last epoch's values)."""

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        """Before epoch `epoch` (from 0)."""

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        """After epoch `epoch` and its validation."""

    def on_train_batch_begin(self, batch: int, logs: Logs | None = None) -> None:
        """Not called by resnetlab (the step runs without stopping before it): overriding it is an error."""

    def on_train_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        """After each optimizer step; logs["loss"] is that batch's loss (reading it waits for the device)."""

    def _validate(self) -> None:
        """Refuse settings this fit cannot honour, before anything runs (params are set)."""

    def _abandon(self) -> None:
        """The fit failed: release what on_train_begin took (files)."""


def _check_monitor(callback: Callback, monitor: str) -> None:
    """A monitor the fit does not log would silently do nothing, as a warning does in Keras: stop before training."""
    logged = callback.params.get("metrics", [])
    if monitor not in logged:
        hint = " (val_ values need validation_data or validation_split)" if monitor.startswith("val_") else ""
        raise ValueError(f"{type(callback).__name__}(monitor={monitor!r}): this fit logs {', '.join(logged)}{hint}")


class _Monitor(Callback):
    """What ModelCheckpoint and ReduceLROnPlateau share: a monitored value, its direction and the best so far,
    kept by the library's one Plateau (training/stopping.py; EarlyStopping and the run folder's best use it)."""

    def __init__(self, monitor: str, mode: str, min_delta: float, baseline: float | None = None) -> None:
        super().__init__()
        self.monitor = monitor
        self.mode = direction(monitor, mode, type(self).__name__)
        self.min_delta = abs(float(min_delta))
        self._initial = baseline
        self.plateau = Plateau(self.mode, self.min_delta)
        self._reset()

    def _reset(self) -> None:
        self.plateau.reset()
        if self._initial is not None:
            self.plateau.best = float(self._initial)

    @property
    def best(self) -> float:
        return self.plateau.best

    @property
    def wait(self) -> int:
        return self.plateau.wait

    def _validate(self) -> None:
        _check_monitor(self, self.monitor)


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs.

    `baseline`: keep counting until the value beats it; `restore_best_weights`: end with the weights of the
    best epoch (at the end of training, stopped or not, as in Keras 3); `start_from_epoch`: epochs to ignore.
    The counting is the library's own (training/stopping.py), the one `patience=` uses.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: float | None = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0) -> None:
        super().__init__()
        self.monitor, self.verbose, self.restore_best_weights = monitor, verbose, restore_best_weights
        self.stopper = stopping.EarlyStopping(patience, monitor, direction(monitor, mode, "EarlyStopping"),
                                              min_delta, baseline, start_from_epoch)
        self.stopped_epoch = 0
        self.best_weights: list[np.ndarray] | None = None

    @property
    def best(self) -> float:
        return self.stopper.plateau.best

    @property
    def best_epoch(self) -> int:
        return self.stopper.plateau.best_epoch

    @property
    def wait(self) -> int:
        return self.stopper.plateau.wait

    def _validate(self) -> None:
        _check_monitor(self, self.monitor)

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.stopper.plateau.reset()
        self.stopped_epoch = 0
        self.best_weights = None

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if self.restore_best_weights and self.best_weights is None and value is not None \
                and epoch >= self.stopper.start_from_epoch:
            self.best_weights = self.model.get_weights()  # so that even a run that never improves restores
        stop = self.stopper.update(value, epoch)
        if self.restore_best_weights and value is not None and self.stopper.plateau.improved:
            self.best_weights = self.model.get_weights()
        if stop:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(_Monitor):
    """Save the model after every epoch, or only when `monitor` improves (`save_best_only`).

    `filepath` may hold `{epoch}` (from 1, as in Keras) and any logged value (`"model-{epoch:02d}-{val_loss:.2f}.h5"`)
    and must end in .h5 or .safetensors. Files are written atomically. A resnetlab model file is the weights
    with JSON metadata and nothing to execute, so `save_weights_only` writes the same file `resnetlab.load` reads.
    """

    def __init__(self, filepath: str | Path, monitor: str = "val_loss", verbose: int = 0, save_best_only: bool = False,
                 save_weights_only: bool = False, mode: str = "auto", save_freq: str = "epoch",
                 initial_value_threshold: float | None = None) -> None:
        super().__init__(monitor, mode, 0.0, initial_value_threshold)
        name = str(filepath).lower()
        if not name.endswith(SAFETENSORS_SUFFIXES + HDF5_SUFFIXES):
            raise ValueError(f"ModelCheckpoint({str(filepath)!r}): resnetlab writes .h5 (HDF5) or .safetensors "
                             f"model files; name it e.g. {Path(str(filepath)).stem}.h5")
        if save_freq != "epoch":
            raise ValueError(f"ModelCheckpoint(save_freq={save_freq!r}): only 'epoch' is supported; for checkpoints "
                             "within epochs use resnetlab.train (checkpoint_minutes)")
        self.filepath, self.verbose = str(filepath), verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.initial_value_threshold = initial_value_threshold

    def _validate(self) -> None:
        if self.save_best_only:
            _check_monitor(self, self.monitor)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        try:
            path = Path(self.filepath.format(epoch=epoch + 1, **logs))
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"ModelCheckpoint({self.filepath!r}): cannot fill in the name ({err}); it may use "
                             f"{{epoch}} and {', '.join('{' + k + '}' for k in logs)}") from None
        if self.save_best_only:
            value, before = logs.get(self.monitor), self.best
            if value is None or not self.plateau.observe(value, epoch):
                if self.verbose > 0:
                    print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {before:.5f}")
                return
            if self.verbose > 0:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {before:.5f} to {value:.5f}, "
                      f"saving model to {path}")
        elif self.verbose > 0:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.model.save(path)


class ReduceLROnPlateau(_Monitor):
    """Multiply the lr by `factor` when `monitor` has not improved by `min_delta` for `patience` epochs; wait
    `cooldown` epochs after each cut and never go below `min_lr`."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, verbose: int = 0,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0) -> None:
        super().__init__(monitor, mode, min_delta)
        if not 0.0 < factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau(factor={factor}): the factor must be between 0 and 1 (it "
                             "multiplies the lr)")
        self.factor, self.patience, self.verbose = float(factor), patience, verbose
        self.cooldown, self.min_lr = cooldown, float(min_lr)
        self.cooldown_counter = 0

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._reset()
        self.cooldown_counter = 0

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
        improved = self.plateau.observe(value, epoch)  # Plateau counts the epoch (0 again when it improved)
        if self.cooldown_counter > 0:  # Keras: epochs in cooldown do not count towards patience
            self.plateau.wait = 0
        if improved or self.cooldown_counter > 0:
            return
        old = self.model.learning_rate
        if self.wait >= self.patience and old > self.min_lr:
            new = max(old * self.factor, self.min_lr)
            self.model.learning_rate = new
            if self.verbose > 0:
                print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new:.4g}.")
            self.cooldown_counter, self.plateau.wait = self.cooldown, 0


class LearningRateScheduler(Callback):
    """Set the lr before each epoch to `schedule(epoch, lr)` (or `schedule(epoch)`), epoch from 0."""

    def __init__(self, schedule: Callable[..., float], verbose: int = 0) -> None:
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        try:
            lr = self.schedule(epoch, self.model.learning_rate)
        except TypeError:  # Keras accepts a one-argument schedule too
            lr = self.schedule(epoch)
        try:
            self.model.learning_rate = lr  # the setter checks it
        except ValueError:
            raise ValueError(f"LearningRateScheduler: the schedule returned {lr!r} for epoch {epoch}; it must "
                             "return a finite lr >= 0") from None
        if self.verbose > 0:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(lr):.4g}.")


class CSVLogger(Callback):
    """Write each epoch's logs to a CSV file: an `epoch` column (from 0) and the logged values, as Keras does.

    The file is rewritten whole and atomically after every epoch (atomic.write_csv, as the run folder's
    metrics.csv), so a crash never leaves half a row; `append=True` keeps the rows already there, and widens
    their header when this fit logs values it had no column for (the first fit ran without validation, say).
    """

    def __init__(self, filename: str | Path, separator: str = ",", append: bool = False) -> None:
        super().__init__()
        self.filename, self.separator, self.append = Path(filename), separator, append
        self._keys: list[str] | None = None
        self._rows: list[list[Any]] = []

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self.filename.parent.mkdir(parents=True, exist_ok=True)
        self._keys, self._rows = None, []
        if self.append and self.filename.exists() and self.filename.stat().st_size > 0:
            with self.filename.open(newline="", encoding="utf-8") as existing:
                old = list(csv.reader(existing, delimiter=self.separator))
            self._keys, self._rows = old[0][1:], old[1:]

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        if self._keys is None:
            self._keys = sorted(logs)
        self._keys += sorted(set(logs) - set(self._keys))  # a value the file has no column for yet
        self._rows.append([epoch, *(logs.get(k, "NA") for k in self._keys)])
        width = 1 + len(self._keys)
        write_csv(self.filename, ["epoch", *self._keys], [row + ["NA"] * (width - len(row)) for row in self._rows],
                  self.separator)


class LambdaCallback(Callback):
    """A callback from plain functions: `LambdaCallback(on_epoch_end=lambda epoch, logs: print(logs["loss"]))`."""

    def __init__(self, on_epoch_begin: Callable | None = None, on_epoch_end: Callable | None = None,
                 on_train_begin: Callable | None = None, on_train_end: Callable | None = None,
                 on_train_batch_begin: Callable | None = None, on_train_batch_end: Callable | None = None) -> None:
        super().__init__()
        given = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end, "on_train_begin": on_train_begin,
                 "on_train_end": on_train_end, "on_train_batch_begin": on_train_batch_begin,
                 "on_train_batch_end": on_train_batch_end}
        for hook, fn in given.items():
            if fn is not None:
                setattr(self, hook, fn)
