"""What `Classifier.fit` returns: Keras' `History`, a view of the loop's History keyed as Keras keys it.

Keras names each metric by the string given to compile (`metrics=["acc"]` logs "acc" and "val_acc"),
counts epochs from 0 and keeps the fit's `params`; the loop's History (training/history.py) holds the
rows and knows none of that.
"""

from __future__ import annotations

from typing import Any

from ..training.history import History as LoopHistory


class History:
    """`history.history["val_accuracy"]`, `history.epoch`, `history.params`, as `keras.callbacks.History`."""

    def __init__(self, loop: LoopHistory, metrics: dict[str, str], params: dict[str, Any] | None = None,
                 model: Any = None) -> None:
        self.loop, self.metrics = loop, metrics  # metrics: the names given to compile -> accuracy | top5
        self.params: dict[str, Any] = params or {}
        self.model = model

    @property
    def epoch(self) -> list[int]:
        return [epoch - 1 for epoch in self.loop.epochs]  # Keras counts epochs from 0

    @property
    def history(self) -> dict[str, list[float]]:
        return self.loop.by_name(self.metrics)

    def keys(self, validated: bool) -> list[str]:
        """The names an epoch is logged under (the logs' keys), with the val_ ones when there is validation."""
        return self.loop.keys(validated, self.metrics)

    def latest(self) -> dict[str, float]:
        """The last epoch's logs ({} before the first epoch ends)."""
        return self.loop.latest(self.metrics)
