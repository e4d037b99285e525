"""Dataset sources by name: the one place that maps `data=NAME` to a loader."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import DataError, did_you_mean
from .dataset import DatasetSplits
from .digits import load_digits_splits

Loader = Callable[..., DatasetSplits]

# name -> (loader, one-line description). Loaders take data_dir and val_fraction keywords.
DATASETS: dict[str, tuple[Loader, str]] = {
    "digits": (lambda data_dir=None, val_fraction=None: load_digits_splits(val_fraction),
               "8x8 handwritten digits shipped with scikit-learn (1,797 images, 10 classes); embedded"),
}


def load_dataset(name: str, *, data_dir: str | None = None, val_fraction: float | None = None) -> DatasetSplits:
    """Load a dataset by name; an unknown name raises with the closest match."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}{did_you_mean(name, DATASETS)}; available: "
                        f"{', '.join(sorted(DATASETS))}")
    loader, _ = DATASETS[name]
    return loader(data_dir=data_dir, val_fraction=val_fraction)
