"""Top-k predictions for image files and arrays (`resnetlab predict`, the server, the Keras facade).

Preprocessing comes from the model file (input size, channels, mean/std, resize rule), so a user
never repeats it. Nothing here imports training code.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..data.arrays import images_to_tensor
from ..data.images import BadImageError, read_for_model
from ..data.loader import Normalize
from ..data.scan import default_workers
from ..device import resolve_device
from ..info import ModelInfo
from ..runtime import batched_logits


@dataclass
class Prediction:
    """Top-k classes for one input, or the reason it could not be read."""

    source: str
    labels: list[str] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"source": self.source, "error": self.error}
        return {"source": self.source,  # a NaN probability (NaN weights) as null: JSON has no NaN
                "top": [{"label": lab, "index": i, "prob": round(p, 6) if math.isfinite(p) else None}
                        for lab, i, p in zip(self.labels, self.indices, self.probs)]}


class _Decode(Dataset):
    """Files -> (uint8 [C, H, W] or None, error or None), never raising, for batched prediction."""

    def __init__(self, paths: list[str], predictor: Predictor):
        self.paths, self.info = paths, predictor.info

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[np.ndarray | None, str | None]:
        try:
            return read_for_model(self.paths[index], self.info.input_size, self.info.interpolation,
                                  self.info.crop_pct), None
        except BadImageError as exc:
            return None, str(exc)


class Predictor:
    """Predict classes for arrays or image files with a trained model.

        predictor = Predictor.from_file("runs/resnet20-digits/best.safetensors")
        for p in predictor.predict_files(["a.png", "b.jpg"], topk=3): print(p.source, p.labels[0], p.probs[0])
    """

    def __init__(self, model: nn.Module, info: ModelInfo, *, device: str | torch.device = "auto",
                 batch_size: int = 64, backend: str = "auto", precision: str = "fp32",
                 calibration: Any = None):
        from .inference import check_choice

        check_choice(backend, precision)  # now, not at the first prediction
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.info = info
        self.batch_size = batch_size
        self.backend, self.precision, self.calibration = backend, precision, calibration
        self._runner: nn.Module | None = None

    @classmethod
    def from_file(cls, path: str | Path, *, device: str | torch.device = "auto", batch_size: int = 64,
                  backend: str = "auto", precision: str = "fp32", weights: str | None = None,
                  calibration: str | Path | None = None) -> Predictor:
        """From a model file, or from an architecture name with published `weights` ("resnet50", "DEFAULT").

        calibration: a folder of images for precision="int8" (default: the model's training data, if at hand)."""
        from ..weights.load import open_model

        model, info = open_model(path, weights)
        return cls(model, info, device=device, batch_size=batch_size, backend=backend, precision=precision,
                   calibration=calibration)

    @property
    def runner(self) -> nn.Module:
        """What computes the logits: the fastest fp32 CPU backend by default (chosen on first use, cached)."""
        if self._runner is None:
            from .inference import runner

            self._runner = runner(self.model, self.info, self.device, backend=self.backend,
                                  precision=self.precision, calibration=self.calibration)
        return self._runner

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """Logits float32 [N, K] for uint8 or 0..1 float images [N, C, H, W]."""
        return batched_logits(self.runner, pixels, self.info, batch_size=self.batch_size, device=self.device)

    def predict_proba(self, images: Any) -> np.ndarray:
        """Class probabilities float32 [N, K] for images as accepted by `images_to_tensor`."""
        pixels = images_to_tensor(images, expected=self.info.input_size, name="images")
        return torch.softmax(self.logits(pixels), dim=1).numpy()

    def normalized(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 [N, C, H, W] -> the float batch the model takes, on its device."""
        normalize = Normalize(self.info.mean, self.info.std, 1.0 / 255.0, self.device)
        return normalize(pixels.to(self.device))

    def read_file(self, path: str | Path) -> np.ndarray:
        """Load and resize an image file as the model expects: uint8 [C, H, W]."""
        return read_for_model(path, self.info.input_size, self.info.interpolation, self.info.crop_pct)

    def predict_files(self, paths: list[str | Path], topk: int = 5, workers: int | None = None) -> list[Prediction]:
        """Top-k predictions per file, in order; unreadable files get a Prediction with `error` set.

        Files are decoded in batches of `batch_size`, in worker processes when there are more than one
        batch of them (`workers`, default one per core).
        """
        topk = max(1, min(topk, self.info.num_classes))
        names = [str(p) for p in paths]
        results = [Prediction(source=name) for name in names]
        if not names:
            return results
        for offset, chunk in self.decoded_batches(names, workers):
            good = [offset + i for i, (array, _) in enumerate(chunk) if array is not None]
            for i, (_, error) in enumerate(chunk):
                if error is not None:
                    results[offset + i].error = error
            if good:
                pixels = torch.from_numpy(np.stack([chunk[i - offset][0] for i in good]))
                logits = self.logits(pixels)
                probs, indices = torch.softmax(logits, dim=1).topk(topk, dim=1)
                for row, i in enumerate(good):
                    results[i].indices = indices[row].tolist()
                    results[i].probs = probs[row].tolist()
                    results[i].labels = [self.info.class_names[j] for j in results[i].indices]
        return results

    def decoded_batches(self, paths: list[str], workers: int | None = None
                        ) -> Iterator[tuple[int, list[tuple[np.ndarray | None, str | None]]]]:
        """(offset, [(uint8 [C, H, W] or None, error or None), ...]) per batch of `paths`, decoded as the model
        expects, in worker processes (`workers`, default one per core) when there is more than one batch."""
        workers = (default_workers() if workers is None else workers) if len(paths) > self.batch_size else 0
        loader = DataLoader(_Decode(paths, self), batch_size=self.batch_size, num_workers=workers,
                            collate_fn=lambda items: items)
        offset = 0
        for chunk in loader:
            yield offset, chunk
            offset += len(chunk)
