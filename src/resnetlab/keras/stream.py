"""Training batches drawn from a DataLoader or a generator as training goes: Keras' generator input.

Keras reads a generator batch by batch, each epoch `steps_per_epoch` more of them; a DataLoader is passed over
once per epoch, with its own shuffling and transforms (with steps_per_epoch an epoch takes the next that many
batches of it, starting a new pass when one ends). `StreamBatches` does the same for the training loop
(the Batches protocol of data/loader.py): each raw batch is checked and converted as arrays are (labels by
class name too), then augmented and normalized on the device with the draws of `batch_generator(seed, epoch,
batch)`, as BatchLoader does. The first batches are read ahead to build the model and measure the
normalization statistics, and trained on first. A stream cannot be replayed, so a run on one resumes at
epoch boundaries only (as Keras', which keeps no position in a generator).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import torch

from ..data.arrays import sample_weights
from ..data.augment import Augment
from ..data.dataset import ImageSet
from ..data.loader import EpochBatches, Normalize, batch_generator
from ..training.callbacks import Callback
from .inputs import batch_parts, join_batches

PEEK_BATCHES = 4  # read ahead to build the model and measure mean/std: 4 batches of 32 are 128 images


def is_stream(x: Any, steps_per_epoch: int | None) -> bool:
    """Whether fit reads `x` batch by batch: a DataLoader (a fresh pass per epoch), or a generator or iterator
    when `steps_per_epoch` says how many of its batches make an epoch (without it a generator, or a DataLoader
    of unknown length, is read to its end once, into memory)."""
    if isinstance(x, torch.utils.data.DataLoader):  # one over an IterableDataset has no length: it needs steps
        return steps_per_epoch is not None or _has_length(x)
    return steps_per_epoch is not None and hasattr(x, "__next__") and iter(x) is x


def _has_length(x: Any) -> bool:
    try:
        len(x)
    except TypeError:
        return False
    return True


class StreamBatches(EpochBatches):
    """Yield (images normalized [B, C, H, W], labels [B][, sample weights [B]]) on `device` from `source`.

    `convert(x, y, name)` turns one raw batch into an ImageSet (the Classifier's checks: image size, label
    range, class names), when it is trained on: `peek` hands the first raw batches over first, to build the
    model from. Epochs end after `steps` batches (None: at the end of a DataLoader's pass). A
    generator that ends sets `ran_out`: the epoch ends there and `RanOutOfData` stops the run after it.
    Batches of one image are skipped: BatchNorm cannot train on them.
    """

    def __init__(self, source: Any, convert: Any, *, steps: int | None, device: torch.device,
                 augment: Augment | None, seed: int, name: str = "x") -> None:
        self.source, self.convert, self.name = source, convert, name
        self.reiterable = not (hasattr(source, "__next__") and iter(source) is source)  # a DataLoader
        if steps is None and not _has_length(source):
            raise ValueError(f"{name} has no length: give steps_per_epoch, the batches that make an epoch")
        batches = steps if steps is not None else len(source)
        self._setup(batches, 1, False, seed, (0, 1))  # counted in batches: __len__ is the batches of an epoch
        self.device = torch.device(device)
        self.mean: Any = None  # normalization: the Classifier's, set once the model is built (`normalize_with`)
        self.std: Any = None
        self._normalizers: dict[float, Normalize] = {}
        self.augment = augment if augment is not None and augment.active else None
        self.images_per_epoch = 0  # images of the last epoch (num_samples)
        self.ran_out = False  # the generator has ended
        self._iterator: Iterator | None = iter(source)
        self._ahead: list[tuple[tuple[Any, Any, Any], str]] = []  # raw batches read, not trained on yet
        self._read = 0  # batches read from the source, for error messages

    def peek(self, count: int = PEEK_BATCHES) -> tuple[Any, Any, Any]:
        """The first `count` batches (fewer if the source has fewer) joined, as (x, y, sample weights or None):
        the model is built from them and they are trained on first."""
        while len(self._ahead) < count and (raw := self._raw()) is not None:
            self._ahead.append(raw)
        if not self._ahead:
            raise ValueError(f"{self.name} yielded no batch")
        return join_batches([parts for parts, _ in self._ahead])

    @property
    def peeked(self) -> tuple[str, str]:
        """What `peek`'s images and labels are called in errors."""
        first = f"the first {len(self._ahead)} batches of {self.name}" if len(self._ahead) > 1 else \
            f"batch 1 of {self.name}"
        return first, f"the labels of {first}"

    def normalize_with(self, mean: Any, std: Any) -> None:
        self.mean, self.std, self._normalizers = mean, std, {}

    def _normalize(self, scale: float) -> Normalize:
        """The Normalize of batches stored at `scale` (uint8 or 0..1 floats), built once each."""
        if scale not in self._normalizers:
            self._normalizers[scale] = Normalize(self.mean, self.std, scale, self.device)
        return self._normalizers[scale]

    def _raw(self) -> tuple[tuple[Any, Any, Any], str] | None:
        """The next raw batch as (x, y, w) with its name for errors; a DataLoader whose pass has ended starts
        its next one."""
        raw = None if self._iterator is None else next(self._iterator, None)
        if raw is None and self.reiterable:
            self._iterator = iter(self.source)
            raw = next(self._iterator, None)
        if raw is None:
            self._iterator = None
            return None
        self._read += 1
        return batch_parts(raw, self.name), f"batch {self._read} of {self.name}"

    def _next(self) -> ImageSet | None:
        """The next batch, converted and checked."""
        item = self._ahead.pop(0) if self._ahead else self._raw()
        if item is None:
            return None
        (x, y, w), where = item
        data = self.convert(x, y, where)
        if w is not None:
            weights = torch.from_numpy(sample_weights(w, len(data), f"the sample weights of {where}"))
            data = ImageSet(data.images, data.labels, weights.float())
        return data

    def __len__(self) -> int:
        return self.count

    @property
    def num_samples(self) -> int:
        return self.images_per_epoch

    def set_position(self, epoch: int, batch: int) -> None:
        if batch:
            raise ValueError(f"{self.name} is a generator or DataLoader: a run on it resumes at an epoch's start only")
        self.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        self.images_per_epoch = 0
        for batch in range(self.count):
            data = self._next()
            if data is None:  # a generator has ended (a DataLoader starts its next pass instead)
                self.ran_out = True
                return
            if len(data) < 2:  # counted as a step, not trained on
                continue
            generator = batch_generator(self.seed, self.epoch, batch)
            images = data.images.to(self.device)
            if self.augment is not None:
                images = self.augment(images, generator)
            normalized = self._normalize(data.scale)(images)
            labels = data.labels.to(self.device)
            self.images_per_epoch += len(labels)
            yield (normalized, labels) if data.weights is None else (normalized, labels, data.weights.to(self.device))
        if not self.reiterable and not self._ahead:  # has the generator just ended? Say so now, not next epoch
            ahead = self._raw()
            self.ran_out = ahead is None
            self._ahead += [] if ahead is None else [ahead]


class RanOutOfData(Callback):
    """Keras' "Your input ran out of data; interrupting training": the run stops after the epoch in which the
    generator ended."""

    def __init__(self, stream: StreamBatches, epochs: int) -> None:
        self.stream, self.epochs = stream, epochs

    def on_epoch_end(self, trainer: Any, metrics: Any) -> None:
        if self.stream.ran_out and not trainer.state.done:
            warnings.warn(f"{self.stream.name} ran out of data; training stopped after epoch {metrics.epoch}. Make "
                          f"sure it can give at least steps_per_epoch x epochs = {len(self.stream)} x {self.epochs} "
                          f"batches", stacklevel=2)
            trainer.state.done, trainer.state.stop_reason = True, "input ran out of data"


def open_stream(clf: Any, x: Any, y: Any, *, steps: int | None, augment: Augment | None, seed: int,
                sample_weight: Any, validation_split: float) -> StreamBatches | None:
    """fit's `x` as a StreamBatches when it is read batch by batch (`is_stream`), checked against Keras' rules;
    None for anything else."""
    if y is not None or not is_stream(x, steps):
        return None
    if validation_split:
        raise ValueError("validation_split needs arrays (as in Keras): a DataLoader or generator cannot be split; "
                         "give validation_data=(x_val, y_val) instead")
    if sample_weight is not None:
        raise ValueError("sample_weight goes with arrays; a DataLoader or generator yields (x, y, sample_weight)")

    def convert(images: Any, labels: Any, name: str) -> ImageSet:
        names = (name, f"the labels of {name}")
        return clf._imageset(images, clf._labels(labels, names[1]), names=names)

    return StreamBatches(x, convert, steps=steps, device=clf.device, augment=augment, seed=seed)
