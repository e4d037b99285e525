"""In-memory labelled image sets and the splits a dataset source returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import DataError


@dataclass
class ImageSet:
    """Labelled images held in memory, ready to be moved to the training device whole.

    images: uint8 [N, C, H, W] in 0..255, or float32 [N, C, H, W] in 0..1
    labels: int64 [N] class indices
    weights: float32 [N] per-image loss weights (Keras' sample_weight), or None for all 1
    """

    images: torch.Tensor
    labels: torch.Tensor
    weights: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise DataError(f"images must be [N, C, H, W], got shape {tuple(self.images.shape)}")
        if self.images.dtype not in (torch.uint8, torch.float32):
            raise DataError(f"images must be uint8 or float32, got {self.images.dtype}")
        if self.labels.ndim != 1 or len(self.labels) != len(self.images):
            raise DataError(f"{len(self.images)} images but labels of shape {tuple(self.labels.shape)}; "
                            f"give one integer label per image")
        if self.weights is not None:
            if self.weights.shape != (len(self.images),):
                raise DataError(f"{len(self.images)} images but sample weights of shape {tuple(self.weights.shape)}; "
                                "give one weight per image")
            if not bool(torch.isfinite(self.weights).all()) or bool((self.weights < 0).any()):
                raise DataError("sample weights must be finite and >= 0")

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
        return ImageSet(self.images[indices], self.labels[indices],
                        None if self.weights is None else self.weights[indices])


@dataclass
class ImageFiles:
    """Labelled image files of any size, decoded on the fly (folders, CSV manifests).

    paths: file paths as strings; labels: int64 [N] class indices.
    """

    paths: list[str]
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.labels.ndim != 1 or len(self.labels) != len(self.paths):
            raise DataError(f"{len(self.paths)} files but labels of shape {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices: torch.Tensor | np.ndarray) -> ImageFiles:
        index = np.asarray(indices, dtype=np.int64)
        return ImageFiles([self.paths[i] for i in index], self.labels[torch.from_numpy(index)])


Split = ImageSet | ImageFiles


@dataclass
class DatasetSplits:
    """What a dataset source returns: the splits plus how to treat them.

    mean/std are per channel in 0..1 units; they travel into the model file so prediction
    normalizes exactly as training did.
    """

    name: str
    train: Split
    val: Split | None
    test: Split | None
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int = 0  # default random-crop padding for training, in pixels
    pad_mode: str = "zeros"  # how that padding is filled: zeros | reflect | edge
    flip: bool = False  # default random horizontal flips for training
    interpolation: str = "bilinear"  # how `predict` resizes a file to the input size
    crop_pct: float = 1.0  # evaluation resize rule (see ModelInfo): 1.0 resizes straight to the input size
    file_input_size: tuple[int, int, int] | None = None  # (C, H, W) files are decoded to; None for arrays
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason) left out (on_bad_image=skip)
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) the model sees."""
        if isinstance(self.train, ImageFiles):
            return self.file_input_size
        return self.train.image_shape

    def split(self, name: str) -> Split:
        """Return the named split, or raise naming the ones that exist."""
        data = {"train": self.train, "val": self.val, "test": self.test}.get(name)
        if data is None:
            have = [n for n in ("train", "val", "test") if getattr(self, n) is not None]
            raise DataError(f"dataset {self.name!r} has no {name!r} split; it has {', '.join(have)}")
        return data


def stratified_split(labels: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held out), holding out `fraction` of every class; sorted, seeded.

    round(N * fraction) images are held out in all, shared among classes in proportion (largest
    remainders first), so small datasets still get a validation split. The seed is fixed by
    default so a dataset's validation split is the same for every run.
    """
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    total = int(round(len(labels) * fraction))
    exact = counts * fraction
    quota = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - quota), kind="stable")[: max(0, total - quota.sum())]:
        quota[i] += 1
    held = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota)]
    held_out = np.sort(np.concatenate(held)) if held else np.array([], dtype=np.int64)
    kept = np.setdiff1d(np.arange(len(labels)), held_out)
    return kept, held_out


MAX_CLASSES = 100_000  # ImageNet-21k has 21,841; a larger integer label is a typo or a damaged file
DEFAULT_VAL_FRACTION = 0.1  # validation share of a source's training data unless it says otherwise (digits)


def split_train_val(train: Split, fraction: float | None) -> tuple[Split, Split | None]:
    """Hold out a stratified `fraction` of `train` for validation (None: DEFAULT_VAL_FRACTION, 0: none)."""
    fraction = DEFAULT_VAL_FRACTION if fraction is None else fraction
    if not fraction:
        return train, None
    kept, held = stratified_split(train.labels.numpy(), fraction)
    if not len(held):  # too few images for round(N * fraction) to hold one out: no validation split
        return train, None
    return train.subset(torch.from_numpy(kept)), train.subset(torch.from_numpy(held))
