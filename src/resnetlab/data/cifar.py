"""CIFAR-10 and CIFAR-100 from their official binary or python versions.

The python version is pickled. It is read with a restricted unpickler that admits only the NumPy
array reconstruction those files use, so a crafted file cannot run code.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path

import numpy as np
import torch

from ..cache import cache_dir
from ..errors import DataError
from .dataset import DatasetSplits, ImageSet, split_train_val
from .download import Resource, ensure_resource, extract_tar
from .stats import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD
from .verify import verify_file

TORONTO = "https://www.cs.toronto.edu/~kriz/"
ARCHIVES = {  # published MD5s of the official archives (cs.toronto.edu/~kriz/cifar.html)
    "cifar10": {"binary": ("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530", "cifar-10-batches-bin"),
                "python": ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", "cifar-10-batches-py")},
    "cifar100": {"binary": ("cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8", "cifar-100-binary"),
                 "python": ("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85", "cifar-100-python")},
}
# published checksums of the extracted files: MD5s of the python version (torchvision's cifar.py), SHA-1s of
# the binary version (MXNet's gluon/data/vision/datasets.py). The binary version's label-name .txt files
# have none published; they only name the classes and are read as text.
EXTRACTED = {
    ("cifar10", "python"): {
        "data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888"},
    ("cifar10", "binary"): {
        "data_batch_1.bin": "aadd24acce27caa71bf4b10992e9e7b2d74c2540",
        "data_batch_2.bin": "c0ba65cce70568cd57b4e03e9ac8d2a5367c1795",
        "data_batch_3.bin": "1dd00a74ab1d17a6e7d73e185b69dbf31242f295",
        "data_batch_4.bin": "aab85764eb3584312d3c7f65fd2fd016e36a258e",
        "data_batch_5.bin": "26e2849e66a845b7f1e4614ae70f4889ae604628",
        "test_batch.bin": "67eb016db431130d61cd03c7ad570b013799c88c"},
    ("cifar100", "python"): {"train": "16019d7e3df5f24257cddd939b257f8d", "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
                             "meta": "7973b15100ade9c7d40fb424638fde48"},
    ("cifar100", "binary"): {"train.bin": "e207cd2e05b73b1393c74c7f5e7bea451d63e08e",
                             "test.bin": "8fb6623e830365ff53cf14adec797474f5478006"},
}
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PIXELS = 3 * 32 * 32


class _CifarUnpickler(pickle.Unpickler):
    """Admit only what the official CIFAR pickles contain: dicts, lists, bytes and NumPy arrays."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}")
        if module == "_codecs":  # Python 3's protocol-2 pickles spell bytes as encode(text, "latin1")
            return _latin1_encode
        if module == "numpy.core.multiarray":  # NumPy 2 moved it; the files name the old home
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """The one codec CIFAR pickles use; any other (rot13, zlib, a typo) is refused before it runs."""
    if encoding not in ("latin1", "latin-1", "iso-8859-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refused codec {encoding!r}")
    return codecs.encode(text, "latin1")


def _text(value: object) -> str:
    """A key or class name as text; bytes are decoded leniently (a bad byte must not crash the load)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def safe_unpickle(path: Path) -> dict:
    """Read a CIFAR python-version file, refusing anything but plain data."""
    try:
        with open(path, "rb") as handle:
            data = _CifarUnpickler(io.BytesIO(handle.read()), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path} is not a plain CIFAR data file ({exc}); it was not loaded and nothing in it "
                        f"was run. Download the official archive again") from None
    except MemoryError:  # a length field of 2^62 bytes (BINBYTES8) with no data behind it
        raise DataError(f"{path} is not a CIFAR python file: it declares an object larger than memory") from None
    except Exception as exc:  # the unpickler runs nothing of the file's; any failure means a damaged file
        raise DataError(f"{path} could not be read as a CIFAR python file ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} holds a {type(data).__name__}, not the dict of a CIFAR python file")
    return {_text(k): v for k, v in data.items()}


def _labels(path: Path, value: object, key: str, count: int) -> np.ndarray:
    """A batch's labels as int64 [count]: a flat list of integers, one per image (else one DataError line)."""
    try:
        labels = np.asarray(value)
    except (ValueError, TypeError):  # ragged nesting such as [[1, 2], [3]]
        labels = np.asarray(None)
    if labels.ndim != 1 or not (np.issubdtype(labels.dtype, np.integer) or labels.size == 0):
        raise DataError(f"{path}: '{key}' must be a flat list of integer labels, got {type(value).__name__} "
                        f"{str(value)[:40]!r}")
    if len(labels) != count:
        raise DataError(f"{path}: '{key}' has {len(labels)} labels for {count} images")
    return labels.astype(np.int64)


def _records(path: Path, label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Binary version: records of label byte(s) then 3,072 pixel bytes (R plane, G plane, B plane)."""
    raw = np.fromfile(path, dtype=np.uint8)
    width = label_bytes + PIXELS
    if raw.size == 0 or raw.size % width:
        raise DataError(f"{path} holds {raw.size} bytes, not a whole number of {width}-byte CIFAR records; it is "
                        f"truncated or not a CIFAR binary file")
    records = raw.reshape(-1, width)
    return records[:, label_bytes:].reshape(-1, 3, 32, 32), records[:, :label_bytes]


def _names(path: Path, fallback: list[str]) -> list[str]:
    if not path.is_file():
        return fallback
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return names or fallback


def _read_binary(name: str, folder: Path, coarse: bool) -> tuple[np.ndarray, ...]:
    if name == "cifar10":
        parts = [_records(folder / f"data_batch_{i}.bin", 1) for i in range(1, 6)]
        train_x, train_y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])[:, 0]
        test_x, test_y = _records(folder / "test_batch.bin", 1)
        return train_x, train_y, test_x, test_y[:, 0], _names(folder / "batches.meta.txt", CIFAR10_CLASSES)
    column = 0 if coarse else 1  # CIFAR-100 records: coarse label byte, fine label byte, pixels
    train_x, train_y = _records(folder / "train.bin", 2)
    test_x, test_y = _records(folder / "test.bin", 2)
    names = _names(folder / ("coarse_label_names.txt" if coarse else "fine_label_names.txt"), [])
    return train_x, train_y[:, column], test_x, test_y[:, column], names


def _meta_names(meta: dict, key: str) -> list[str]:
    """Class names from a meta file; [] when absent or not a list (the caller falls back to defaults)."""
    names = meta.get(key)
    return [_text(n) for n in names] if isinstance(names, list) else []


def _read_python(name: str, folder: Path, coarse: bool) -> tuple[np.ndarray, ...]:
    def arrays(files: list[str], key: str) -> tuple[np.ndarray, np.ndarray]:
        images, labels = [], []
        for file in files:
            batch = safe_unpickle(folder / file)
            data = batch.get("data")
            if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or \
                    data.shape[1] != PIXELS or key not in batch:
                raise DataError(f"{folder / file} does not hold CIFAR 'data' (N x 3072 uint8) and '{key}'")
            images.append(data.reshape(-1, 3, 32, 32))
            labels.append(_labels(folder / file, batch[key], key, len(data)))
        return np.concatenate(images), np.concatenate(labels)

    if name == "cifar10":
        train = arrays([f"data_batch_{i}" for i in range(1, 6)], "labels")
        test = arrays(["test_batch"], "labels")
        meta = safe_unpickle(folder / "batches.meta") if (folder / "batches.meta").is_file() else {}
        names = _meta_names(meta, "label_names") or CIFAR10_CLASSES
    else:
        key = "coarse_labels" if coarse else "fine_labels"
        train, test = arrays(["train"], key), arrays(["test"], key)
        meta = safe_unpickle(folder / "meta") if (folder / "meta").is_file() else {}
        names = _meta_names(meta, "coarse_label_names" if coarse else "fine_label_names")
    return (*train, *test, names)


def _locate(name: str, root: Path, download: bool, verify: bool) -> tuple[str, Path]:
    """Find extracted files (binary preferred), else an archive here, else download the binary archive."""
    marker = {"cifar10": ("data_batch_1.bin", "data_batch_1"), "cifar100": ("train.bin", "train")}[name]
    for (version, (_, _, subfolder)), probe in zip(ARCHIVES[name].items(), marker):
        for folder in (root, root / subfolder):
            if (folder / probe).is_file():
                return version, folder
    present = [v for v, (archive, _, _) in ARCHIVES[name].items() if (root / archive).is_file()]
    version = present[0] if present else "binary"
    archive, md5, subfolder = ARCHIVES[name][version]
    path = ensure_resource(Resource(archive, (TORONTO + archive,), md5), root, download=download, verify=verify)
    extract_tar(path, root)
    return version, root / subfolder


def _verify_extracted(name: str, version: str, folder: Path) -> None:
    """Check the extracted files present against their published checksums (missing ones fail when read)."""
    for file, expected in EXTRACTED[(name, version)].items():
        if (folder / file).is_file():
            verify_file(folder / file, expected, what=f"{name} {version}-version {file}")


def load_cifar(name: str, data_dir: str | None = None, val_fraction: float | None = None, download: bool = True,
               coarse: bool = False, verify: bool = True) -> DatasetSplits:
    """Load CIFAR-10 or CIFAR-100 (fine labels, or the 20 superclasses with coarse=True).

    verify: check every official file against its published checksum before reading it; false accepts
    a non-official copy (the JPEG re-encoded CIFAR-10).
    """
    root = Path(data_dir).expanduser() if data_dir else cache_dir() / name
    version, folder = _locate(name, root, download, verify)
    if verify:
        _verify_extracted(name, version, folder)
    reader = _read_binary if version == "binary" else _read_python
    for required in (("data_batch_1.bin", "test_batch.bin") if name == "cifar10" and version == "binary" else ()):
        if not (folder / required).is_file():
            raise DataError(f"{folder} lacks {required}; the CIFAR-10 binary version has data_batch_1..5.bin and "
                            f"test_batch.bin")
    try:
        train_x, train_y, test_x, test_y, names = reader(name, folder, coarse)
    except FileNotFoundError as exc:
        raise DataError(f"{folder} is missing {Path(exc.filename).name} of the official {name} {version} "
                        f"version") from None
    num_classes = 10 if name == "cifar10" else (20 if coarse else 100)
    names = names if len(names) == num_classes else [str(i) for i in range(num_classes)]
    for labels, split in ((train_y, "train"), (test_y, "test")):
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise DataError(f"{folder}: {split} labels range from {labels.min()} to {labels.max()} but {name} has "
                            f"classes 0..{num_classes - 1}")

    def as_set(images: np.ndarray, labels: np.ndarray) -> ImageSet:
        return ImageSet(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels.astype(np.int64)))

    train, val = split_train_val(as_set(train_x, train_y), val_fraction)
    mean, std = (CIFAR10_MEAN, CIFAR10_STD) if name == "cifar10" else (CIFAR100_MEAN, CIFAR100_STD)
    return DatasetSplits(
        name=name + ("-coarse" if coarse else ""), train=train, val=val, test=as_set(test_x, test_y),
        class_names=names, mean=mean, std=std, crop_padding=4, pad_mode="zeros", flip=True,  # He et al. 2015
        notes={"source": str(folder), "version": version, "verify": "on" if verify else "off"},
    )
