"""Datasets saved as NumPy `.npz` archives (Keras' `x_train, y_train, x_test, y_test` convention)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError
from .arrays import arrays_to_imageset, label_count
from .dataset import DatasetSplits, ImageSet, split_train_val
from .stats import channel_stats

PAIRS = {"train": (("x_train", "y_train"), ("images", "labels"), ("x", "y")),
         "val": (("x_val", "y_val"),), "test": (("x_test", "y_test"),)}


def load_npz(path: str | Path, *, val_fraction: float | None = None) -> DatasetSplits:
    """Load image/label arrays from an .npz (no pickles: object arrays are refused)."""
    path = Path(path).expanduser()
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is not a readable .npz archive ({exc})") from None
    with archive:
        keys = set(archive.files)
        arrays = {}
        for split, options in PAIRS.items():
            pair = next((p for p in options if set(p) <= keys), None)
            if pair is not None:
                try:
                    arrays[split] = (archive[pair[0]], archive[pair[1]], pair)
                except ValueError:
                    raise DataError(f"{path}: {pair[0]} is an object array (images of different sizes?); store "
                                    f"fixed-size numeric arrays, or use an image folder instead") from None
        names = [str(n) for n in archive["class_names"]] if "class_names" in keys else None
    if "train" not in arrays:
        raise DataError(f"{path} holds {', '.join(sorted(keys)) or 'nothing'}; expected x_train and y_train "
                        f"(optionally x_val/y_val, x_test/y_test, class_names)")
    num_classes = len(names) if names is not None else max(label_count(labels) for _, labels, _ in arrays.values())
    sets: dict[str, ImageSet] = {}
    for split, (images, labels, pair) in arrays.items():
        expected = sets["train"].image_shape if "train" in sets else None
        sets[split] = arrays_to_imageset(images, labels, expected=expected, num_classes=num_classes,
                                         names=(f"{path.name}:{pair[0]}", f"{path.name}:{pair[1]}"))
    if len(set(sets["train"].labels.tolist())) < 2:
        raise DataError(f"{path}: y_train holds a single class; a classifier needs at least two")
    train, val = sets["train"], sets.get("val")
    if val is None:
        train, val = split_train_val(train, val_fraction)
    mean, std = channel_stats(train)
    side = train.image_shape[1]
    return DatasetSplits(
        name=str(path), train=train, val=val, test=sets.get("test"),
        class_names=names or [str(i) for i in range(num_classes)], mean=mean, std=std,
        crop_padding=max(1, side // 8), pad_mode="zeros", flip=False,  # content unknown: no mirroring
        notes={"source": str(path)},
    )
