"""Inference: batched logits for in-memory images, and top-k predictions for image files.

Preprocessing comes from the model file (input size, channels, mean/std, resize rule), so a user
never repeats it. Nothing here imports training code.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .data.arrays import images_to_tensor
from .data.images import IMAGE_SUFFIXES, BadImageError, read_for_model
from .data.loader import Normalize
from .data.scan import default_workers
from .device import resolve_device
from .errors import ConfigError, DataError
from .info import ModelInfo

TTA_MODES = ("none", "flip", "flip+shift")


def _shift(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Translate a batch by (dy, dx) pixels, filling with the border (replicate padding)."""
    pad = max(abs(dy), abs(dx))
    padded = torch.nn.functional.pad(images, (pad,) * 4, mode="replicate")
    height, width = images.shape[-2:]
    return padded[..., pad - dy:pad - dy + height, pad - dx:pad - dx + width]


@dataclass(frozen=True)
class Inference:
    """How a model is run for predictions: autocast dtype (None: fp32), memory layout, test-time augmentation.

    tta="flip" averages the class probabilities of each image and its mirror image; "flip+shift" also
    of both translated by one pixel per 32 (down-right and up-left), six views in all (airbench's TTA).
    The logarithm of the averaged probabilities is returned as the logits (so losses and arg-maxes stay
    meaningful).
    """

    dtype: torch.dtype | None = None
    channels_last: bool = False
    tta: str = "none"

    def __post_init__(self) -> None:
        if self.tta not in TTA_MODES:
            raise ConfigError(f"unknown tta {self.tta!r}; choose one of {', '.join(TTA_MODES)}")

    def __call__(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(images.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            if self.tta == "none":
                return model(images).float()
            views = [images, images.flip(3)]
            if self.tta == "flip+shift":
                step = max(1, images.shape[-1] // 32)
                views += [_shift(view, d, d) for view in views[:2] for d in (step, -step)]
            probs = torch.stack([torch.softmax(model(view).float(), 1) for view in views]).mean(0)
        return probs.clamp_min(1e-12).log()


def model_device(model: nn.Module) -> torch.device:
    """Where a model's weights are; the CPU for a parameterless one (an ONNX Runtime or OpenVINO runner)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


FP32 = Inference()  # plain fp32, no test-time augmentation: what `predict` does unless asked otherwise


@torch.no_grad()
def batched_logits(model: nn.Module, images: torch.Tensor, info: ModelInfo, *, batch_size: int = 256,
                   device: torch.device | str | None = None, inference: Inference = FP32) -> torch.Tensor:
    """Run `model` over images uint8 or float [N, C, H, W] in batches; return float32 logits [N, K] on the CPU."""
    device = torch.device(device) if device is not None else model_device(model)
    scale = 1.0 / 255.0 if images.dtype == torch.uint8 else 1.0
    normalize = Normalize(info.mean, info.std, scale, device)
    was_training = model.training
    model.eval()
    outputs = []
    try:
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].to(device, non_blocking=True)
            outputs.append(inference(model, normalize(batch)).cpu())
    finally:
        model.train(was_training)
    if not outputs:
        return torch.empty(0, info.num_classes)
    return torch.cat(outputs)


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


def expand_paths(inputs: list[str | Path]) -> list[str]:
    """Files as given, folders as every image file below them (sorted), shell patterns expanded (`**` too).

    A name that matches nothing stays in the list, so the caller reports it like any unreadable file;
    a folder without image files raises DataError (there is nothing to report per file).
    """
    found: list[str] = []
    for item in inputs:
        text = str(item)
        path = Path(text).expanduser()
        if path.is_dir():
            images = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise DataError(f"{path} holds no image files (looked for {', '.join(sorted(IMAGE_SUFFIXES))}, "
                                f"in subfolders too)")
            found += images
        elif any(ch in text for ch in "*?[") and not path.exists():
            matches = sorted(glob.glob(text, recursive=True))
            found += [m for m in matches if Path(m).is_file()] or [text]
        else:
            found.append(text)
    return found


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
        from .weights.load import open_model

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
