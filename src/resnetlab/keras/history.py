"""What `Classifier.fit` returns: Keras' `History`, a view of the loop's History keyed as Keras keys it.

Keras names each metric by the string given to compile (`metrics=["acc"]` logs "acc" and "val_acc"),
counts epochs from 0 and keeps the fit's `params`; the loop's History (training/history.py) holds the
rows and knows none of that. The metrics the loop does not sum (precision, recall, f1, auc, per-class)
come per epoch from keras/metrics.py, in `extra`.
"""

from __future__ import annotations

from typing import Any

from ..training.history import History as LoopHistory
from .settings import LOOP_KINDS


class History:
    """`history.history["val_accuracy"]`, `history.epoch`, `history.params`, as `keras.callbacks.History`."""

    def __init__(self, loop: LoopHistory, metrics: dict[str, str], params: dict[str, Any] | None = None,
                 model: Any = None, weighted: dict[str, str] | None = None) -> None:
        self.loop, self.metrics = loop, metrics  # metrics: the names given to compile -> their kind
        self.weighted = weighted or {}  # weighted_metrics by their logged name -> kind (keras/metrics.py)
        self.params: dict[str, Any] = params or {}
        self.model = model
        self.extra: list[dict[str, Any]] = []  # per epoch: the other metrics' values by logged name

    @property
    def epoch(self) -> list[int]:
        return [epoch - 1 for epoch in self.loop.epochs]  # Keras counts epochs from 0

    @property
    def history(self) -> dict[str, list[Any]]:
        validated = any(row.val_loss is not None for row in self.loop.rows)  # validation_freq skips some
        out: dict[str, list[Any]] = {key: [] for key in self.keys(validated)}
        for index in range(len(self.loop.rows)):
            for key, value in self._values(index).items():
                out[key].append(value)
        return out

    def _train_names(self) -> list[str]:
        # an exact ROC AUC needs every score of the epoch: auc is measured on validation data only
        return [name for name, kind in {**self.metrics, **self.weighted}.items() if kind != "auc"]

    def keys(self, validated: bool) -> list[str]:
        """The names an epoch is logged under (the logs' keys), with the val_ ones when there is validation."""
        names = ["loss", *self._train_names()]
        if validated:
            names += ["val_loss", *(f"val_{name}" for name in {**self.metrics, **self.weighted})]
        return [*names, "lr"]

    def _values(self, index: int) -> dict[str, Any]:
        row = self.loop.rows[index]
        extra = self.extra[index] if index < len(self.extra) else {}
        out: dict[str, Any] = {"loss": row.train_loss}
        for name in self._train_names():
            kind = self.metrics.get(name)
            out[name] = getattr(row, f"train_{kind}") if kind in LOOP_KINDS else extra.get(name)
        if row.val_loss is not None:
            out["val_loss"] = row.val_loss
            for name in {**self.metrics, **self.weighted}:
                kind = self.metrics.get(name)
                out[f"val_{name}"] = getattr(row, f"val_{kind}") if kind in LOOP_KINDS else extra.get(f"val_{name}")
        out["lr"] = row.lr
        return out

    def latest(self) -> dict[str, Any]:
        """The last epoch's logs ({} before the first epoch ends)."""
        return self._values(len(self.loop.rows) - 1) if self.loop.rows else {}
