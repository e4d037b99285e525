"""Datasets saved as NumPy `.npz` archives (Keras' `x_train, y_train, x_test, y_test` convention)."""

from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from .arrays import arrays_to_imageset, label_count
from .dataset import DatasetSplits, ImageSet, split_train_val
from .stats import channel_stats

PAIRS = {"train": (("x_train", "y_train"), ("images", "labels"), ("x", "y")),
         "val": (("x_val", "y_val"),), "test": (("x_test", "y_test"),)}


HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
READ_ERRORS = (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, MemoryError)


def _check_sizes(path: Path) -> None:
    """Each .npy member's header against the bytes it holds, before NumPy allocates the shape a header claims."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as member:
                reader = HEADER_READERS.get(np.lib.format.read_magic(member))
                if reader is None:  # a newer format version: NumPy's own checks apply
                    continue
                shape, _, dtype = reader(member)
                needed = math.prod(shape) * dtype.itemsize  # Python ints: no int64 wrap-around
                if not dtype.hasobject and member.tell() + needed > info.file_size:
                    raise DataError(f"{path}: {info.filename} claims an array {shape} of {dtype} ({needed:,} bytes) "
                                    f"but holds {info.file_size - member.tell():,} bytes; the archive is damaged")


def _read_arrays(path: Path) -> tuple[dict, list[str] | None, set[str]]:
    """(split -> (images, labels, key pair), class names or None, keys) from the archive."""
    with np.load(path, allow_pickle=False) as archive:
        keys = set(archive.files)
        arrays = {}
        for split, options in PAIRS.items():
            pair = next((p for p in options if set(p) <= keys), None)
            if pair is not None:
                arrays[split] = (_member(path, archive, pair[0]), _member(path, archive, pair[1]), pair)
        names = None
        if "class_names" in keys:
            names = [str(n) for n in np.atleast_1d(_member(path, archive, "class_names"))]
    return arrays, names, keys


def _member(path: Path, archive: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise
        raise DataError(f"{path}: {key} is an object array (images of different sizes?); store fixed-size numeric "
                        f"arrays, or use an image folder instead (object arrays need pickle, refused here)") from None


def load_npz(path: str | Path, *, val_fraction: float | None = None) -> DatasetSplits:
    """Load image/label arrays from an .npz (no pickles: object arrays are refused)."""
    path = Path(path).expanduser()
    try:
        _check_sizes(path)
        arrays, names, keys = _read_arrays(path)
    except DataError:
        raise
    except READ_ERRORS as exc:
        raise DataError(f"{path} is not a readable .npz archive ({type(exc).__name__}: {exc})") from None
    if "train" not in arrays:
        raise DataError(f"{path} holds {', '.join(sorted(keys)) or 'nothing'}; expected x_train and y_train "
                        f"(optionally x_val/y_val, x_test/y_test, class_names)")
    num_classes = len(names) if names is not None else max(label_count(labels, name=f"{path.name}:{pair[1]}")
                                                           for _, labels, pair in arrays.values())
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
