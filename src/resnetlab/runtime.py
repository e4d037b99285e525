"""How a model is run on tensors: autocast, memory layout, test-time augmentation, batching.

Training's validation, evaluation, prediction and serving all call `batched_logits`, so a model gives
the same numbers wherever it runs. Nothing here knows files or backends (deploy/ does).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

import torch
from torch import nn

from .config import TtaMode
from .data.loader import Normalize
from .errors import ConfigError
from .info import ModelInfo

TTA_MODES = typing.get_args(TtaMode)


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
