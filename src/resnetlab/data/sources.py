"""Dataset sources: the one place that maps `data=NAME_OR_PATH` to a loader."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from ..errors import DataError, did_you_mean
from .cifar import load_cifar
from .dataset import DatasetSplits
from .digits import load_digits_splits
from .folder import check_columns_setting, load_files_dataset
from .idx import load_idx_dataset
from .npz import load_npz

Loader = Callable[..., DatasetSplits]

# name -> (loader taking data_dir, val_fraction, download, verify; one-line description)
DATASETS: dict[str, tuple[Loader, str]] = {
    "digits": (lambda data_dir=None, val_fraction=None, download=True, verify=True: load_digits_splits(val_fraction),
               "8x8 handwritten digits shipped with scikit-learn (1,797 images, 10 classes); embedded"),
    "cifar10": (partial(load_cifar, "cifar10"), "CIFAR-10: 50,000 + 10,000 32x32 colour images, 10 classes"),
    "cifar100": (partial(load_cifar, "cifar100"), "CIFAR-100: 50,000 + 10,000 32x32 colour images, 100 classes"),
    "cifar100-coarse": (partial(load_cifar, "cifar100", coarse=True), "CIFAR-100 with its 20 superclasses"),
    "mnist": (partial(load_idx_dataset, "mnist"), "MNIST: 60,000 + 10,000 28x28 handwritten digits"),
    "fashion-mnist": (partial(load_idx_dataset, "fashion-mnist"), "Fashion-MNIST: 60,000 + 10,000 28x28 clothes"),
    "kmnist": (partial(load_idx_dataset, "kmnist"), "Kuzushiji-MNIST: 60,000 + 10,000 28x28 cursive Japanese"),
}
ALIASES = {"cifar-10": "cifar10", "cifar-100": "cifar100", "fashion_mnist": "fashion-mnist",
           "fashionmnist": "fashion-mnist", "k-mnist": "kmnist"}


def load_dataset(name: str, *, data_dir: str | None = None, val_fraction: float | None = None,
                 download: bool = True, img_size: int | None = None, channels: int | None = None,
                 on_bad_image: str = "error", in_memory: bool = False, workers: int | None = None,
                 verify: bool = True, path_column: str | None = None,
                 label_column: str | None = None) -> DatasetSplits:
    """Load a dataset by name (`resnetlab datasets`), or from a path: an image folder, a CSV manifest or an .npz.

    Args:
        data_dir: where a named dataset's files are (or go); default the resnetlab cache.
        val_fraction: share of the training data held out for validation; None: the source's default.
        download: fetch missing files of a named dataset from their official addresses.
        verify: check a named dataset's files against their published checksums, wherever they were found;
            false accepts a non-official copy on purpose (the result's notes say "verify": "off").
        img_size, channels, on_bad_image, in_memory, workers: for image folders and manifests only.
        path_column, label_column: a CSV manifest's header names for its path and label columns.
    """
    check_columns_setting(name, path_column, label_column)
    key = ALIASES.get(name.lower(), name.lower())
    if key in DATASETS:
        loader, _ = DATASETS[key]
        return loader(data_dir=data_dir, val_fraction=val_fraction, download=download, verify=verify)
    path = Path(name).expanduser()
    official = official_layout(path)
    if official is not None:  # data=~/datasets/cifar10 means data=cifar10 data_dir=~/datasets/cifar10
        loader, _ = DATASETS[official]
        return loader(data_dir=str(path), val_fraction=val_fraction, download=False, verify=verify)
    if path.is_dir() or (path.is_file() and path.suffix.lower() == ".csv"):
        return load_files_dataset(path, val_fraction=val_fraction, img_size=img_size, channels=channels,
                                  on_bad_image=on_bad_image, in_memory=in_memory, workers=workers,
                                  path_column=path_column, label_column=label_column)
    if path.is_file() and path.suffix.lower() == ".npz":
        return load_npz(path, val_fraction=val_fraction)
    if path.exists():
        raise DataError(f"{path} is neither an image folder, a .csv manifest nor an .npz archive")
    raise DataError(f"unknown dataset {name!r}{did_you_mean(key, DATASETS)}; give one of {', '.join(DATASETS)}, "
                    f"or a path to an image folder, .csv manifest or .npz file")


# files that tell an official dataset's own layout (flat, or in its archive's subfolder) from an image folder
OFFICIAL_FILES = {
    "cifar10": ("data_batch_1.bin", "cifar-10-batches-bin/data_batch_1.bin", "data_batch_1",
                "cifar-10-batches-py/data_batch_1"),
    "cifar100": ("train.bin", "cifar-100-binary/train.bin", "cifar-100-python/train"),
}
IDX_TRAIN_LABELS = "train-labels-idx1-ubyte"


def official_layout(path: Path) -> str | None:
    """The dataset name whose official files `path` holds (CIFAR-10/100 batches, MNIST-family IDX), else None.

    The MNIST family share file names: the training labels' MD5 says which one it is (MNIST when the
    file is not an official one, so a modified copy still loads, and verify= has its say)."""
    if not path.is_dir():
        return None
    for name, markers in OFFICIAL_FILES.items():
        if any((path / marker).is_file() for marker in markers):
            return name
    if (path / "train").is_file() and (path / "meta").is_file():  # CIFAR-100 python version, extracted flat
        return "cifar100"
    for stem in (IDX_TRAIN_LABELS + ".gz", IDX_TRAIN_LABELS, "raw/" + IDX_TRAIN_LABELS + ".gz"):
        if (path / stem).is_file():
            from .idx import SOURCES
            from .verify import cached_digest

            digest = cached_digest(path / stem, "md5")
            for name, (_, md5s, _, _) in SOURCES.items():
                if digest in md5s:
                    return name
            return "mnist"
    return None
