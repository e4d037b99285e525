"""The embedded default dataset: scikit-learn's handwritten digits (UCI optdigits test set).

1,797 real scans of digits written by 43 people, 8x8 pixels, shipped inside scikit-learn, so nothing
is downloaded. Each pixel counts the ink in a 4x4 block of a 32x32 bitmap (0..16). We store them as
ordinary grayscale images, dark ink on white paper, so a photo or scan of a digit given to `predict`
looks like the training data once it is reduced to 8x8 with a box filter (block averaging, which is
how the originals were made).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DataError
from .dataset import DatasetSplits, ImageSet
from .stats import channel_stats

SPLIT_SEED = 0  # fixed: the train/val/test split is the same on every machine and every run
TEST_FRACTION = 0.2  # 360 test images
VAL_FRACTION = 0.1  # of all images: 180 validation images, leaving 1,257 for training


def load_digits_splits(val_fraction: float | None = None) -> DatasetSplits:
    """Return the digits as uint8 [N, 1, 8, 8] train/val/test splits, stratified by class."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    ink = bunch.images  # float64 [1797, 8, 8], 0..16 = share of the block covered by ink
    images = np.round(255.0 - ink * (255.0 / 16.0)).astype(np.uint8)[:, None]  # dark ink on white
    labels = bunch.target.astype(np.int64)
    index = np.arange(len(labels))
    rest, test = train_test_split(index, test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED)
    val_share = VAL_FRACTION if val_fraction is None else val_fraction
    held = int(np.ceil(len(rest) * val_share / (1 - TEST_FRACTION)))  # as scikit-learn counts it
    if val_share > 0 and not (10 <= held <= len(rest) - 10):  # stratification needs one image per class
        low, high = 10 / len(labels), (1 - TEST_FRACTION) - 10 / len(labels)
        raise DataError(f"val_fraction={val_share} does not fit the digits: use 0 (no validation) or a value "
                        f"from {low:.3f} to {high:.2f} (the fixed test split takes 20%)")
    if val_share > 0:
        train, val = train_test_split(rest, test_size=val_share / (1 - TEST_FRACTION),
                                      stratify=labels[rest], random_state=SPLIT_SEED)
    else:
        train, val = rest, None

    def subset(idx: np.ndarray | None) -> ImageSet | None:
        if idx is None:
            return None
        return ImageSet(torch.from_numpy(images[np.sort(idx)]), torch.from_numpy(labels[np.sort(idx)]))

    train_set = subset(train)
    mean, std = channel_stats(train_set)
    return DatasetSplits(
        name="digits", train=train_set, val=subset(val), test=subset(test),
        class_names=[str(d) for d in range(10)], mean=mean, std=std,
        # A 1-pixel shift is 1/8 of the image; pad with the paper (edge), not black ink; no mirroring.
        crop_padding=1, pad_mode="edge", flip=False,
        interpolation="box",
        notes={"source": "sklearn.datasets.load_digits (UCI optdigits)"},
    )
