"""In-memory labelled image sets and the splits a dataset source returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import DataError


@dataclass
class ImageSet:
    """Labelled images held in memory, ready to be moved to the training device whole.

    images: uint8 [N, C, H, W] in 0..255, or float32 [N, C, H, W] in 0..1
    labels: int64 [N] class indices
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise DataError(f"images must be [N, C, H, W], got shape {tuple(self.images.shape)}")
        if self.images.dtype not in (torch.uint8, torch.float32):
            raise DataError(f"images must be uint8 or float32, got {self.images.dtype}")
        if self.labels.ndim != 1 or len(self.labels) != len(self.images):
            raise DataError(f"{len(self.images)} images but labels of shape {tuple(self.labels.shape)}; "
                            f"give one integer label per image")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def scale(self) -> float:
        """Factor that maps stored values to 0..1."""
        return 1.0 / 255.0 if self.images.dtype == torch.uint8 else 1.0

    def subset(self, indices: torch.Tensor) -> ImageSet:
        return ImageSet(self.images[indices], self.labels[indices])


@dataclass
class DatasetSplits:
    """What a dataset source returns: the splits plus how to treat them.

    mean/std are per channel in 0..1 units; they travel into the model file so prediction
    normalizes exactly as training did.
    """

    name: str
    train: ImageSet
    val: ImageSet | None
    test: ImageSet | None
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int = 0  # default random-crop padding for training, in pixels
    pad_mode: str = "zeros"  # how that padding is filled: zeros | reflect | edge
    flip: bool = False  # default random horizontal flips for training
    interpolation: str = "bilinear"  # how `predict` resizes a file to the input size
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.train.image_shape

    def split(self, name: str) -> ImageSet:
        """Return the named split, or raise naming the ones that exist."""
        data = {"train": self.train, "val": self.val, "test": self.test}.get(name)
        if data is None:
            have = [n for n in ("train", "val", "test") if getattr(self, n) is not None]
            raise DataError(f"dataset {self.name!r} has no {name!r} split; it has {', '.join(have)}")
        return data
