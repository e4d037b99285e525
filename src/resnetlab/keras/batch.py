"""Keras' per-batch calls of a Classifier: calling it, and predict/test/train_on_batch, each over its batch methods."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data.arrays import images_to_tensor
from ..data.loader import Normalize


class BatchCalls:
    """Mixed into Classifier: what Keras' `Model.__call__` and `*_on_batch` do, through predict, evaluate and fit,
    and predict's class helpers."""

    def __call__(self, x: Any, training: bool = False) -> torch.Tensor:
        """Logits [N, num_classes] for a batch, as calling a Keras model returns its outputs (`training=True`:
        BatchNorm with batch statistics and dropout on, and the graph kept for gradients)."""
        self._require_model()
        pixels = images_to_tensor(x, expected=self.info.input_size, name="x")
        was = self.model.training
        self.model.train(training)
        try:
            with torch.set_grad_enabled(training):
                return self.model(Normalize(self.info.mean, self.info.std, 1.0 / 255.0 if pixels.dtype == torch.uint8
                                            else 1.0, self.device)(pixels.to(self.device)))
        finally:
            self.model.train(was)

    def predict_on_batch(self, x: Any) -> np.ndarray:
        """Class probabilities of one batch (Keras' predict_on_batch)."""
        return self.predict(x, batch_size=max(1, len(x)), verbose=0)

    def test_on_batch(self, x: Any, y: Any, sample_weight: Any = None,
                      return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """The loss and metrics of one batch, as `evaluate` returns them."""
        return self.evaluate(x, y, batch_size=max(1, len(x)), sample_weight=sample_weight, return_dict=return_dict,
                             verbose=0)

    def train_on_batch(self, x: Any, y: Any, sample_weight: Any = None, class_weight: dict[int, float] | None = None,
                       return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """One optimizer step on this batch (a fit of one epoch of one batch, unshuffled); the batch's loss and
        metrics, measured during the step as Keras does."""
        logs = self.fit(x, y, epochs=1, batch_size=max(1, len(x)), shuffle=False, verbose=0,
                        class_weight=class_weight, sample_weight=sample_weight).latest()
        out = {"loss": logs["loss"], **{name: logs[name] for name in logs if name not in ("loss", "lr")}}
        return out if return_dict else (list(out.values()) if len(out) > 1 else out["loss"])

    def predict_classes(self, x: Any, *, batch_size: int | None = None) -> np.ndarray:
        """Most likely class index per image, int64 [N]."""
        return self.predict(x, batch_size=batch_size, verbose=0).argmax(axis=1)

    def predict_labels(self, x: Any, *, batch_size: int | None = None) -> np.ndarray:
        """Most likely class name per image (the string labels fit learned, or the given class_names)."""
        return np.array(self.info.class_names, dtype=object)[self.predict_classes(x, batch_size=batch_size)]
