"""MNIST, Fashion-MNIST and KMNIST from their original IDX files (gzipped or not)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .dataset import DatasetSplits, ImageSet, split_train_val
from .download import Resource, cache_dir, ensure_resource
from .stats import FASHION_MNIST_MEAN, FASHION_MNIST_STD, MNIST_MEAN, MNIST_STD, channel_stats

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# (mirrors, published MD5 of each .gz in FILES order, class names, mean/std or None to compute)
SOURCES = {
    "mnist": (
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
         "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"),
        [str(d) for d in range(10)], (MNIST_MEAN, MNIST_STD)),
    "fashion-mnist": (
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
         "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"),
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
        (FASHION_MNIST_MEAN, FASHION_MNIST_STD)),
    "kmnist": (
        ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        ("bdb82020997e1d708af4cf47b453dcf7", "e144d726b3acfaa3e44228e80efcd344",
         "5c965bf0a639b31b8f53240b1b52f4d7", "7320c461ea6c1c855c0b718fb2a4b134"),
        ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"], None),
}
IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"),
             0x0E: np.dtype(">f8")}


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (Y. LeCun's format: 2 zero bytes, a type byte, a rank byte, big-endian sizes)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path} could not be read ({exc}); the file is truncated or not gzip data") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number {data[:4].hex()})")
    rank = data[3]
    header = 4 + 4 * rank
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank))
    dtype = np.dtype(IDX_TYPES[data[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(f"{path} holds {len(data)} bytes but its header {shape} needs {expected}; it is truncated")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem, folder / "raw" / f"{stem}.gz", folder / "raw" / stem):
        if candidate.is_file():
            return candidate
    return None


def load_idx_dataset(name: str, data_dir: str | None = None, val_fraction: float | None = None,
                     download: bool = True) -> DatasetSplits:
    """Load an MNIST-style dataset: 60,000 train (less the validation share) and 10,000 test images."""
    mirrors, md5s, class_names, stats = SOURCES[name]
    folder = Path(data_dir).expanduser() if data_dir else cache_dir() / name
    paths = []
    for stem, md5 in zip(FILES, md5s):
        found = _find(folder, stem)
        if found is None:
            resource = Resource(f"{stem}.gz", tuple(m + f"{stem}.gz" for m in mirrors), md5)
            found = ensure_resource(resource, folder, download=download)
        paths.append(found)
    train_images, train_labels, test_images, test_labels = (read_idx(p) for p in paths)
    for images, labels, split in ((train_images, train_labels, "train"), (test_images, test_labels, "t10k")):
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{folder}: {split} images {images.shape} and labels {labels.shape} do not match")
        if labels.max() >= len(class_names):
            raise DataError(f"{folder}: {split} labels go up to {labels.max()}, beyond {len(class_names)} classes")

    def as_set(images: np.ndarray, labels: np.ndarray) -> ImageSet:
        return ImageSet(torch.from_numpy(images.astype(np.uint8)[:, None].copy()),
                        torch.from_numpy(labels.astype(np.int64)))

    full_train = as_set(train_images, train_labels)
    train, val = split_train_val(full_train, val_fraction)
    mean, std = stats if stats is not None else channel_stats(full_train)
    return DatasetSplits(
        name=name, train=train, val=val, test=as_set(test_images, test_labels), class_names=class_names,
        mean=mean, std=std, crop_padding=2, pad_mode="zeros",  # black background: zero padding is background
        flip=name == "fashion-mnist",  # clothes mirror well; digits and characters do not
        notes={"source": str(folder)},
    )
