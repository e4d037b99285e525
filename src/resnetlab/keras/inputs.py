"""What `Classifier.fit` is given, checked and turned into training and validation sets: Keras' arguments
(validation_data with or without weights, validation_split, steps and frequencies) with its meanings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.arrays import hold_out_last, with_weights
from ..data.dataset import ImageSet


def check_fit_arguments(*, epochs: int, batch_size: int, validation_split: float, initial_epoch: int,
                        steps_per_epoch: int | None, validation_steps: int | None, validation_freq: int) -> None:
    """Keras' fit arguments in range, or a ValueError that says what is allowed."""
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be at least 1, got {epochs} and {batch_size}")
    if not 0 <= initial_epoch < epochs:  # Keras would train nothing; say why instead
        raise ValueError(f"initial_epoch={initial_epoch} must be in 0..{epochs - 1}: as in Keras, epochs is the "
                         f"index to train up to, not a count")
    for name, value in (("steps_per_epoch", steps_per_epoch), ("validation_steps", validation_steps)):
        if value is not None and not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be a whole number >= 1 (batches), or None for all, got {value!r}")
    if not (isinstance(validation_freq, int) and validation_freq >= 1):
        raise ValueError(f"validation_freq must be a whole number >= 1 (validate every that many epochs), "
                         f"got {validation_freq!r}")


def fit_splits(clf: Any, x: Any, y: Any, *, sample_weight: Any, validation_data: tuple | None,
               validation_split: float, names: tuple[str, str] = ("x", "y")) -> tuple[ImageSet, ImageSet | None]:
    """(training set, validation set or None) from fit's arguments; builds the model at the first fit."""
    y = clf._labels(y, names[1])
    clf._ensure_built(x, y)
    train = with_weights(clf._imageset(x, y, names), sample_weight)
    if validation_data is not None:
        if len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be a tuple (x_val, y_val) or (x_val, y_val, sample_weight_val)")
        val = clf._imageset(validation_data[0], clf._labels(validation_data[1], "validation_data[1]"),
                            names=("validation_data[0]", "validation_data[1]"))
        return train, with_weights(val, validation_data[2], "validation_data[2]") if len(validation_data) == 3 else val
    if validation_split > 0:
        return hold_out_last(train, validation_split)
    return train, None


def fit_loader(clf: Any, train: ImageSet, stream: Any, *, batch_size: int, shuffle: bool, augment: Any, seed: int,
               steps_per_epoch: int | None) -> Any:
    """The training batches: `stream` (a StreamBatches, normalized as the model now is) or a BatchLoader over
    `train`, ending each epoch after `steps_per_epoch` batches of a fresh shuffle."""
    from ..data.loader import BatchLoader, needs_drop_last

    if stream is not None:
        stream.normalize_with(clf.info.mean, clf.info.std)
        return stream
    loader = BatchLoader(train, batch_size, mean=clf.info.mean, std=clf.info.std, device=clf.device, shuffle=shuffle,
                         augment=augment, seed=seed, drop_last=needs_drop_last(len(train), batch_size))
    if steps_per_epoch is not None:
        if steps_per_epoch > len(loader):  # Keras stops with "your input ran out of data"; say it first
            raise ValueError(f"steps_per_epoch={steps_per_epoch}, but {len(train)} images make {len(loader)} "
                             f"batches of {batch_size}; give at most {len(loader)}")
        loader.max_batches = steps_per_epoch
    return loader


def first_batches(data: Any, sample_weight: Any, steps: int | None, batch_size: int) -> tuple[Any, Any]:
    """Keras' `steps=` / `validation_steps=`: only the first `steps` batches of the data (an ImageSet or a
    tensor; None: all) and their weights."""
    if steps is None or data is None:
        return data, sample_weight
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"steps must be a whole number >= 1 (batches to evaluate), got {steps!r}")
    count = min(len(data), steps * batch_size)
    if count == len(data):
        return data, sample_weight
    weights = None if sample_weight is None else list(sample_weight)[:count]
    return (data.subset(slice(0, count)) if hasattr(data, "subset") else data[:count]), weights


def batch_parts(batch: Any, name: str) -> tuple[Any, Any, Any]:
    """(x, y, sample_weight or None) of one batch or item: a tuple/list of 2 or 3."""
    if isinstance(batch, (tuple, list)) and len(batch) in (2, 3):
        return batch[0], batch[1], batch[2] if len(batch) == 3 else None
    raise ValueError(f"{name} must yield (x, y) or (x, y, sample_weight) tuples, as Keras requires; got "
                     f"{type(batch).__name__}")


def _join(parts: list[Any], items: bool) -> Any:
    """Single images (`items`: tensors CHW, arrays HWC or PIL images) stacked, or batches concatenated."""
    import numpy as np
    import torch

    if isinstance(parts[0], torch.Tensor):
        return torch.stack(parts) if items else torch.cat(parts)
    arrays = [np.asarray(p) for p in parts]  # PIL images too: [H, W, C] uint8
    return np.stack(arrays) if items else np.concatenate(arrays)


def _labels(parts: list[Any], items: bool) -> Any:
    import numpy as np
    import torch

    values = [p.cpu().numpy() if isinstance(p, torch.Tensor) else np.asarray(p) for p in parts]
    return np.stack(values) if items else np.concatenate(values)


def join_batches(batches: list[tuple[Any, Any, Any]]) -> tuple[Any, Any, Any]:
    """(x, y, w) batches as one (x, y, w or None), w None unless every batch has one."""
    import numpy as np

    xs, ys, ws = zip(*batches)
    weights = None if any(w is None for w in ws) else np.concatenate([np.asarray(w, dtype=np.float32) for w in ws])
    return _join(list(xs), False), _labels(list(ys), False), weights


def item_batches(x: Any, batch_size: int | None) -> Any:
    """A torch IterableDataset yields single (image, label) items: batched by a DataLoader (PyTorch's collate)
    so that it reads as a DataLoader does; anything else as given."""
    import torch

    if isinstance(x, torch.utils.data.IterableDataset):
        from .settings import DEFAULT_BATCH_SIZE

        return torch.utils.data.DataLoader(x, batch_size=batch_size or DEFAULT_BATCH_SIZE)
    return x


def gather(x: Any, y: Any, sample_weight: Any, *, steps: int | None, name: str = "x") -> tuple[Any, Any, Any]:
    """Keras' other inputs as arrays (x, y, sample_weight): a torch Dataset of (image, label) items, a DataLoader
    or any iterable/generator of (x, y[, w]) batches (the first `steps` batches, or until it ends), a folder of
    class subfolders or a resnetlab dataset name (its training split; labels as class names). Arrays and tensors
    come back as given."""
    import numpy as np
    import torch

    from ..data.arrays import is_arraylike

    if y is not None or is_arraylike(x):
        if y is None:
            raise ValueError(f"{name} is an array: give its labels as y (only datasets, generators, folders and "
                             "dataset names carry their own)")
        return x, y, sample_weight
    if sample_weight is not None:
        raise ValueError("sample_weight goes with arrays; a dataset or generator yields (x, y, sample_weight)")
    if isinstance(x, (str, Path)):
        return _from_dataset_name(str(x))
    x = item_batches(x, None)
    if isinstance(x, torch.utils.data.Dataset) and hasattr(x, "__len__"):  # map-style: (image, label) items
        xs, ys, ws = zip(*(batch_parts(x[i], f"{name}[{i}]") for i in range(len(x))))
        return _join(list(xs), True), _labels(list(ys), True), \
            None if ws[0] is None else np.asarray(ws, dtype=np.float32)
    if hasattr(x, "__iter__") or hasattr(x, "__next__"):  # a DataLoader, a generator: (x, y[, w]) batches
        batches = []
        for batch in x:
            batches.append(batch_parts(batch, name))
            if steps is not None and len(batches) >= steps:
                break
        if not batches:
            raise ValueError(f"{name} yielded no batch")
        return join_batches(batches)
    raise ValueError(f"{name} must be images (an array or tensor), a torch Dataset or DataLoader, a generator of "
                     f"(x, y) batches, a folder or a dataset name; got {type(x).__name__}")


def _from_dataset_name(source: str) -> tuple[Any, Any, None]:
    """A folder of class subfolders (or .csv/.npz, or a dataset name) as uint8 images and class-name labels."""
    import numpy as np

    from ..data.dataset import ImageFiles
    from ..data.sources import load_dataset
    from ..data.stream import decode_files

    splits = load_dataset(source, val_fraction=0)
    data = splits.train
    if isinstance(data, ImageFiles):
        data = decode_files(data, splits.image_shape, interpolation=splits.interpolation, crop_pct=splits.crop_pct)
    names = np.asarray(splits.class_names, dtype=object)[data.labels.numpy()]
    return data.images, names, None


def gather_images(x: Any, steps: int | None) -> Any:
    """`predict`'s other inputs: a torch Dataset, DataLoader or generator of batches (x, or tuples whose first item
    is x, as Keras takes them) as one batch; anything else as given (arrays, one image, PIL, paths)."""
    import torch
    from PIL import Image

    if isinstance(x, (str, Path, Image.Image, list)) or not (hasattr(x, "__iter__") or hasattr(x, "__next__")) \
            or hasattr(x, "shape"):
        return x
    x = item_batches(x, None)
    if isinstance(x, torch.utils.data.Dataset) and hasattr(x, "__len__"):
        items = [x[i] for i in range(len(x))]
        return _join([item[0] if isinstance(item, (tuple, list)) else item for item in items], True)
    batches = []
    for batch in x:
        batches.append(batch[0] if isinstance(batch, (tuple, list)) else batch)
        if steps is not None and len(batches) >= steps:
            break
    return _join(batches, False)
