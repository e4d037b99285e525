"""MNIST, Fashion-MNIST and KMNIST from their original IDX files (gzipped or not)."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from ..cache import cache_dir
from ..errors import DataError
from .dataset import DatasetSplits, ImageSet, split_train_val
from .download import CHUNK, Resource, ensure_resource, missing_message
from .stats import FASHION_MNIST_MEAN, FASHION_MNIST_STD, MNIST_MEAN, MNIST_STD, channel_stats
from .verify import verify_file

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
# published MD5s of the uncompressed files, FILES order (the same data as the .gz files above, gunzipped);
# KMNIST publishes only its .gz files, so an uncompressed KMNIST file is checked for structure only
RAW_MD5 = {
    "mnist": ("6bbc9ace898e44ae57da46a324031adb", "a25bea736e30d166cdddb491f175f624",
              "2646ac647ad5339dbf082846283269ea", "27ae3e4e09519cfbb04c329615203637"),
    "fashion-mnist": ("f4a8712d7a061bf5bd6d2ca38dc4d50a", "9018921c3c673c538a1fc5bad174d6f9",
                      "8181f5470baa50b63fa0f6fddb340f0a", "15d484375f8d13e6eb1aabb0c3f46965"),
}
IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"),
             0x0E: np.dtype(">f8")}
MAX_IDX_BYTES = 1 << 31  # 2 GiB; the MNIST family's largest file is 47 MB
GZIP_MAX_RATIO = 1032  # deflate expands at most about 1032:1 (zlib's technical details)


def _magic(path: Path, head: bytes) -> tuple[np.dtype, int]:
    """(element type, rank) from an IDX file's first 4 bytes."""
    if not head:
        raise DataError(f"{path} is empty (an IDX file starts with a 4-byte magic number)")
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in IDX_TYPES or head[3] == 0:
        raise DataError(f"{path} is not an IDX file (bad magic number {head.hex()})")
    return np.dtype(IDX_TYPES[head[2]]), head[3]


def _read_body(handle: BinaryIO, size: int) -> bytearray:
    """Up to `size` bytes, in CHUNK blocks: memory follows the data present, not the size a header claims."""
    body = bytearray()
    while len(body) < size:
        block = handle.read(min(CHUNK, size - len(body)))
        if not block:
            break
        body += block
    return body


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (Y. LeCun's format: 2 zero bytes, a type byte, a rank byte, big-endian sizes).

    The sizes in the header are checked against the file's size before any data is read, so a
    header claiming 65536^4 elements fails at once instead of allocating.
    """
    gzipped = path.suffix == ".gz"
    try:
        stored = path.stat().st_size
        with (gzip.open if gzipped else open)(path, "rb") as handle:
            dtype, rank = _magic(path, handle.read(4))
            dims = handle.read(4 * rank)
            header = 4 + 4 * rank
            if len(dims) < 4 * rank:
                raise DataError(f"{path} ends inside its IDX header ({4 + len(dims)} of {header} bytes); it is "
                                f"truncated")
            shape = tuple(int.from_bytes(dims[4 * i: 4 * i + 4], "big") for i in range(rank))
            size = math.prod(shape) * dtype.itemsize  # Python ints: 65536^4 does not wrap to 0 as in int64
            room = stored * GZIP_MAX_RATIO if gzipped else stored - header
            if size > min(room, MAX_IDX_BYTES):
                held = f"a {stored:,}-byte .gz file cannot hold that" if gzipped else f"the file holds {stored:,}"
                raise DataError(f"{path}: its IDX header {shape} needs {header + size:,} bytes but {held} (at most "
                                f"{MAX_IDX_BYTES:,} are read); it is truncated or not an IDX file")
            body = _read_body(handle, size)
            trailing = handle.read(1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path} could not be read ({exc}); the file is truncated or not gzip data") from None
    if len(body) != size or trailing:
        raise DataError(f"{path} holds {header + len(body)}{'+' if trailing else ''} bytes but its header {shape} "
                        f"needs {header + size}; it is truncated or not an IDX file")
    return np.frombuffer(body, dtype=dtype).reshape(shape)


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem, folder / "raw" / f"{stem}.gz", folder / "raw" / stem):
        if candidate.is_file():
            return candidate
    return None


def _known_files() -> dict[str, str]:
    """MD5 -> which official file has it, to name what a wrong file is (Fashion-MNIST given as MNIST)."""
    known = {}
    for dataset, (_, md5s, _, _) in SOURCES.items():
        known.update({md5: f"{dataset}'s {stem}.gz" for stem, md5 in zip(FILES, md5s)})
    for dataset, md5s in RAW_MD5.items():
        known.update({md5: f"{dataset}'s {stem}" for stem, md5 in zip(FILES, md5s)})
    return known


def _official_md5(name: str, index: int, path: Path) -> str | None:
    if path.suffix == ".gz":
        return SOURCES[name][1][index]
    return RAW_MD5[name][index] if name in RAW_MD5 else None


def _check_pair(path: Path, images: np.ndarray, labels: np.ndarray, classes: int) -> None:
    """Structure of one split: uint8 images [N, H, W], integer labels [N] in 0..classes-1."""
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{path.parent}: {path.name} images {images.shape} and labels {labels.shape} do not match")
    if images.dtype != np.uint8 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path.parent}: {path.name}: expected uint8 images and integer labels, got {images.dtype} "
                        f"and {labels.dtype}")
    if not len(labels):
        raise DataError(f"{path.parent}: {path.name} holds no images")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= classes:
        raise DataError(f"{path.parent}: {path.name} has labels from {low} to {high}; they must be 0..{classes - 1}")


def load_idx_dataset(name: str, data_dir: str | None = None, val_fraction: float | None = None,
                     download: bool = True, verify: bool = True) -> DatasetSplits:
    """Load an MNIST-style dataset: 60,000 train (less the validation share) and 10,000 test images.

    verify: check every file against its published MD5 (false accepts a non-official copy).
    """
    mirrors, md5s, class_names, stats = SOURCES[name]
    folder = Path(data_dir).expanduser() if data_dir else cache_dir() / name
    paths = []
    missing: list[Resource] = []
    first_failure = ""
    for index, (stem, md5) in enumerate(zip(FILES, md5s)):
        found = _find(folder, stem)
        if found is None:
            resource = Resource(f"{stem}.gz", tuple(m + f"{stem}.gz" for m in mirrors), md5)
            try:
                found = ensure_resource(resource, folder, download=download)  # checked as it is fetched
            except DataError as exc:  # go on: the message lists every file that is missing, not the first
                missing.append(resource)
                first_failure = first_failure or str(exc).partition("\n  tried:")[2]
                continue
        elif verify and (expected := _official_md5(name, index, found)) is not None:
            verify_file(found, expected, what=f"{name} {found.name}", known=_known_files())
        paths.append(found)
    if missing:
        raise DataError(missing_message(missing, folder) + (f"\n  tried:{first_failure}" if first_failure else ""))
    train_images, train_labels, test_images, test_labels = (read_idx(p) for p in paths)
    _check_pair(paths[1], train_images, train_labels, len(class_names))
    _check_pair(paths[3], test_images, test_labels, len(class_names))

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
        notes={"source": str(folder), "verify": "on" if verify else "off"},
    )
