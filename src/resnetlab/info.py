"""What a model file says about its model besides the weights: architecture, classes, preprocessing.

Preprocessing travels with the weights (as torchvision/timm pretrained configs do), so evaluate,
predict, export and serve never ask the user to repeat it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from . import __version__
from .errors import ModelFileError
from .registry import ArchSpec

INTERPOLATIONS = ("nearest", "box", "bilinear", "bicubic", "lanczos")


@dataclass
class ModelInfo:
    """Metadata stored in every model file.

    input_size: (C, H, W) the model was trained at.
    mean, std: normalization in 0..1 units, applied after scaling pixels to 0..1: mean per channel
        [C] or per pixel [C][H][W] (He et al.'s per-pixel mean subtraction); std per channel.
    crop_pct: files are resized to size / crop_pct and center-cropped (torchvision's 0.875 for
        ImageNet); 1.0 resizes straight to the input size.
    training: summary of the run that made the weights (dataset, epochs, metrics, resolved config).
    """

    arch: ArchSpec
    class_names: list[str]
    input_size: tuple[int, int, int]
    mean: tuple  # [C] floats, or [C][H][W] nested lists
    std: tuple[float, ...]
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    training: dict[str, Any] = field(default_factory=dict)
    version: str = __version__

    def __post_init__(self) -> None:
        self.input_size = tuple(int(v) for v in self.input_size)  # type: ignore[assignment]
        per_pixel = len(self.mean) > 0 and isinstance(self.mean[0], (list, tuple))
        self.mean = tuple(self.mean) if per_pixel else tuple(map(float, self.mean))
        self.std = tuple(map(float, self.std))
        self.class_names = [str(c) for c in self.class_names]
        channels = self.input_size[0]
        problems = []
        if len(self.class_names) != self.arch.num_classes:
            problems.append(f"{len(self.class_names)} class names for {self.arch.num_classes} outputs")
        if channels != self.arch.in_chans:
            problems.append(f"input_size has {channels} channels but the model takes {self.arch.in_chans}")
        if len(self.mean) != channels or len(self.std) != channels:
            problems.append(f"mean/std need {channels} values each, got {len(self.mean)}/{len(self.std)}")
        if per_pixel and (len(self.mean[0]), len(self.mean[0][0])) != tuple(self.input_size[1:]):
            problems.append(f"a per-pixel mean must be {self.input_size[1]}x{self.input_size[2]}")
        if any(s <= 0 for s in self.std):
            problems.append(f"std values must be positive, got {self.std}")
        if self.interpolation not in INTERPOLATIONS:
            problems.append(f"unknown interpolation {self.interpolation!r}")
        if not 0 < self.crop_pct <= 1:
            problems.append(f"crop_pct must be in (0, 1], got {self.crop_pct}")
        if problems:
            raise ModelFileError("inconsistent model metadata: " + "; ".join(problems))

    @property
    def num_classes(self) -> int:
        return self.arch.num_classes

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["arch"] = self.arch.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        try:
            fields = dict(data)
            fields["arch"] = ArchSpec.from_dict(fields["arch"])
            known = set(cls.__dataclass_fields__)
            return cls(**{k: v for k, v in fields.items() if k in known})
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ModelFileError):
                raise
            raise ModelFileError(f"model metadata is incomplete or malformed ({exc!r})") from None
