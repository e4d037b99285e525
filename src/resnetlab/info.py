"""What a model file says about its model besides the weights: architecture, classes, preprocessing.

Preprocessing travels with the weights (as torchvision/timm pretrained configs do), so evaluate,
predict, export and serve never ask the user to repeat it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .data.dataset import MAX_CLASSES  # the bound on class counts, for datasets and model files alike
from .errors import ModelFileError
from .registry import ArchSpec

INTERPOLATIONS = ("nearest", "box", "bilinear", "bicubic", "lanczos")
# Bounds on what a model file may claim: every reader sizes its buffers by these numbers, so a file
# claiming input_size [1, 100000, 100000] would have predict allocate tens of gigabytes per image.
MAX_CHANNELS = 4  # image files are 1 or 3 channels, arrays 1 to 4 (data.arrays)
MAX_SIDE = 4096  # pixels a side of input_size
MIN_CROP_PCT = 0.25  # files are resized to side / crop_pct: at most 4x (torchvision's ImageNet 0.875)
MAX_DEPTH = 32  # levels of JSON nesting; a resolved training config is a few deep
REQUIRED = ("arch", "class_names", "input_size", "mean", "std")


@dataclass
class ModelInfo:
    """Metadata stored in every model file.

    input_size: (C, H, W) the model was trained at.
    mean, std: normalization in 0..1 units, applied after scaling pixels to 0..1: mean per channel
        [C] or per pixel [C][H][W] (He et al.'s per-pixel mean subtraction); std per channel.
    crop_pct: files are resized to size / crop_pct and center-cropped (torchvision's 0.875 for
        ImageNet); 1.0 resizes straight to the input size.
    training: summary of the run that made the weights (dataset, epochs, metrics, resolved config).
    pretrained: where the weights started: the published weights' name, source, URL, license and the
        file's SHA-256 (empty for weights trained from scratch).
    """

    arch: ArchSpec
    class_names: list[str]
    input_size: tuple[int, int, int]
    mean: tuple  # [C] floats, or [C][H][W] nested lists
    std: tuple[float, ...]
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    training: dict[str, Any] = field(default_factory=dict)
    pretrained: dict[str, Any] = field(default_factory=dict)
    version: str = __version__

    def __post_init__(self) -> None:
        self.input_size = tuple(int(v) for v in self.input_size)  # type: ignore[assignment]
        if len(self.input_size) != 3:
            raise ModelFileError(f"inconsistent model metadata: input_size must be [channels, height, width], got "
                                 f"{list(self.input_size)}")
        per_pixel = len(self.mean) > 0 and isinstance(self.mean[0], (list, tuple))
        self.mean = tuple(self.mean) if per_pixel else tuple(map(float, self.mean))
        self.std = tuple(map(float, self.std))
        self.class_names = [str(c) for c in self.class_names]
        problems = self._problems(per_pixel)
        if problems:
            raise ModelFileError("inconsistent model metadata: " + "; ".join(problems))

    def _problems(self, per_pixel: bool) -> list[str]:
        channels, height, width = self.input_size
        problems = []
        if len(self.class_names) != self.arch.num_classes:
            problems.append(f"class_names: {len(self.class_names)} class names for {self.arch.num_classes} outputs")
        if not 1 <= self.arch.in_chans <= MAX_CHANNELS:
            problems.append(f"arch.in_chans must be 1..{MAX_CHANNELS}, got {self.arch.in_chans}")
        if channels != self.arch.in_chans:
            problems.append(f"input_size has {channels} channels but the model takes {self.arch.in_chans}")
        if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
            problems.append(f"input_size {height}x{width} is outside 1..{MAX_SIDE} pixels a side")
        if len(self.mean) != channels or len(self.std) != channels:
            problems.append(f"mean/std need {channels} values each, got {len(self.mean)}/{len(self.std)}")
        if per_pixel and not all(len(plane) == height and all(len(row) == width for row in plane)
                                 for plane in self.mean):
            problems.append(f"a per-pixel mean must be {self.input_size[1]}x{self.input_size[2]} per channel")
        elif not all(math.isfinite(v) for v in _flat(self.mean)):
            problems.append("mean values must be finite numbers")
        if not all(math.isfinite(s) and s > 0 for s in self.std):
            problems.append(f"std values must be positive, got {self.std}")
        if self.interpolation not in INTERPOLATIONS:
            problems.append(f"unknown interpolation {self.interpolation!r}")
        if not MIN_CROP_PCT <= self.crop_pct <= 1:
            problems.append(f"crop_pct must be in [{MIN_CROP_PCT}, 1], got {self.crop_pct}")
        return problems

    @property
    def num_classes(self) -> int:
        return self.arch.num_classes

    def trained_data(self) -> tuple[str | None, str | None]:
        """(dataset, data_dir) the weights were trained on: the words as typed where they still resolve from the
        current folder (a dataset name always does), else the absolute paths recorded beside them."""
        config = self.training.get("config", {}).get("data", {})
        chosen = []
        for typed, absolute in ((self.training.get("dataset"), self.training.get("dataset_path")),
                                (config.get("data_dir"), self.training.get("data_dir_path"))):
            moved = typed and absolute and not Path(str(typed)).expanduser().exists() and Path(str(absolute)).exists()
            chosen.append(str(absolute) if moved else typed)
        return chosen[0], chosen[1]

    def preprocessing(self) -> dict[str, Any]:
        """timm's pretrained_cfg keys: what inputs these weights expect, and where they came from."""
        cfg = {"input_size": self.input_size, "crop_pct": self.crop_pct, "interpolation": self.interpolation,
               "mean": self.mean, "std": self.std, "num_classes": self.num_classes}
        cfg.update({key: self.pretrained[key] for key in ("name", "source", "url", "hf_hub_id", "license")
                    if key in self.pretrained})
        return cfg

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["arch"] = self.arch.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Any) -> ModelInfo:
        """Rebuild from a model file's JSON, naming the field that is missing or malformed."""
        if not isinstance(data, dict):
            raise ModelFileError(f"resnetlab metadata must be a JSON object, got {_shown(data)}")
        if _depth(data) > MAX_DEPTH:
            raise ModelFileError(f"resnetlab metadata nests more than {MAX_DEPTH} levels deep")
        missing = [name for name in REQUIRED if name not in data]
        if missing:
            raise ModelFileError(f"resnetlab metadata lacks the field(s) {', '.join(missing)}")
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["arch"] = _arch(fields["arch"])
        for name, (wanted, valid) in FIELD_TYPES.items():
            if name in fields and not valid(fields[name]):
                raise _malformed(name, wanted, fields[name])
        return cls(**fields)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _malformed(name: str, wanted: str, value: Any) -> ModelFileError:
    return ModelFileError(f"metadata field {name} must be {wanted}, got {_shown(value)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numbers(value: Any) -> bool:
    return isinstance(value, list) and all(_is_number(v) for v in value)


def _mean(value: Any) -> bool:
    """[C] numbers, or [C][H][W] (a per-pixel mean)."""
    if isinstance(value, list) and value and isinstance(value[0], list):
        return all(isinstance(plane, list) and all(_numbers(row) for row in plane) for plane in value)
    return _numbers(value)


def _flat(mean: tuple) -> list[float]:
    if mean and isinstance(mean[0], (list, tuple)):
        return [v for plane in mean for row in plane for v in row]
    return list(mean)


# What each JSON field must hold (ranges and agreement with the architecture are checked in __post_init__)
FIELD_TYPES = {
    "class_names": ("a list of strings", lambda v: isinstance(v, list) and all(isinstance(c, str) for c in v)),
    "input_size": ("[channels, height, width] whole numbers", lambda v: isinstance(v, list) and len(v) == 3
                   and all(_is_int(n) for n in v)),
    "mean": ("a list of numbers per channel (or per pixel: [C][H][W])", _mean),
    "std": ("a list of numbers per channel", _numbers),
    "interpolation": (f"one of {', '.join(INTERPOLATIONS)}", lambda v: v in INTERPOLATIONS),
    "crop_pct": (f"a number in [{MIN_CROP_PCT}, 1]", lambda v: _is_number(v) and MIN_CROP_PCT <= v <= 1),
    "training": ("an object", lambda v: isinstance(v, dict)),
    "pretrained": ("an object", lambda v: isinstance(v, dict)),
    "version": ("a string", lambda v: isinstance(v, str)),
}


def _arch(value: Any) -> ArchSpec:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise _malformed("arch", "an object {name, num_classes, in_chans, options}", value)
    num_classes, in_chans = value.get("num_classes"), value.get("in_chans")
    if not (_is_int(num_classes) and 1 <= num_classes <= MAX_CLASSES):
        raise _malformed("arch.num_classes", f"a whole number in 1..{MAX_CLASSES:,}", num_classes)
    if not (_is_int(in_chans) and 1 <= in_chans <= MAX_CHANNELS):
        raise _malformed("arch.in_chans", f"a whole number in 1..{MAX_CHANNELS}", in_chans)
    options = value.get("options", {})
    if not isinstance(options, dict):
        raise _malformed("arch.options", "an object", options)
    return ArchSpec(value["name"], num_classes, in_chans, dict(options))


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in `value`, without recursion (the depth is what is in doubt)."""
    deepest, stack = 0, [(value, 1)]
    while stack and deepest <= MAX_DEPTH:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest
