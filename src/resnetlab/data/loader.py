"""Batches from an in-memory ImageSet: the whole set sits on the device as uint8, batches are
sliced, augmented and normalized there (no per-image Python work, no worker processes)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import torch

from .augment import Augment, alternating_flips
from .dataset import ImageSet
from .mix import BatchAugment


class Batches(Protocol):
    """What the training loop iterates: BatchLoader (in memory) or FileLoader (decoded from files)."""

    device: torch.device

    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...
    def set_epoch(self, epoch: int) -> None: ...
    def set_position(self, epoch: int, batch: int) -> None: ...

    @property
    def num_samples(self) -> int: ...


class Normalize:
    """Map stored pixels to (x / 255 - mean) / std in one fused multiply-add.

    `mean` is per channel [C], or per pixel [C][H][W] (He et al.'s per-pixel mean subtraction).
    """

    def __init__(self, mean: Sequence, std: Sequence[float], scale: float, device: torch.device):
        std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device)
        mean_t = mean_t.view(1, -1, 1, 1) if mean_t.ndim == 1 else mean_t.unsqueeze(0)
        self.mul = scale / std_t  # pixels * scale / std ...
        self.add = -mean_t / std_t  # ... - mean / std

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.add, images.float(), self.mul)


def batch_generator(seed: int, epoch: int, batch: int) -> torch.Generator:
    """The CPU generator for one batch: its draws depend on (seed, epoch, batch) only, so any batch can be
    replayed (resume mid-epoch) and every process of a distributed run draws the same numbers."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + epoch) * 1_000_003 + batch) % 2**63)


def epoch_order(count: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of an epoch (the same in every process)."""
    return torch.randperm(count, generator=batch_generator(seed, epoch, -1))


def needs_drop_last(count: int, batch_size: int, processes: int = 1) -> bool:
    """Whether an epoch's last batch must be left out: it would give some process fewer than 2 images, and
    BatchNorm cannot train on one (the CLI's runs and the Keras facade both ask here)."""
    remainder = count % batch_size
    return 0 < remainder < max(2, processes)


class EpochBatches:
    """What both loaders share: how many batches an epoch has, which epoch and batch come next, and
    which slice of each global batch this process takes."""

    def _setup(self, count: int, batch_size: int, drop_last: bool, seed: int, shard: tuple[int, int]) -> None:
        self.count, self.batch_size, self.drop_last, self.seed = count, batch_size, drop_last, seed
        self.rank, self.world = shard
        if batch_size % self.world:
            raise ValueError(f"batch_size {batch_size} does not split evenly over {self.world} processes")
        self.epoch, self.start_batch = 0, 0
        self.max_batches: int | None = None  # Keras' steps_per_epoch: the epoch ends after this many batches

    def __len__(self) -> int:
        full, rest = divmod(self.count, self.batch_size)
        batches = full if (self.drop_last or rest == 0) else full + 1
        return batches if self.max_batches is None else min(batches, self.max_batches)

    @property
    def num_samples(self) -> int:
        """Images per epoch over all processes."""
        limited = self.max_batches is not None and self.max_batches * self.batch_size < self.count
        return len(self) * self.batch_size if self.drop_last or limited else self.count

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.start_batch = epoch, 0

    def set_position(self, epoch: int, batch: int) -> None:
        """Start the next iteration at `batch` of `epoch` (for resuming)."""
        self.epoch, self.start_batch = epoch, batch


class BatchLoader(EpochBatches):
    """Yield (images float32 [B, C, H, W] normalized, labels int64 [B] or soft targets [B, K]) on `device`, and
    the images' sample weights float32 [B] third when the data has them.

    The epoch order comes from (seed, epoch) and each batch's augmentation from (seed, epoch, batch),
    so any batch is reproducible on its own: `set_position` resumes mid-epoch exactly. With
    `shard=(rank, world)` each process yields its slice of every global batch of `batch_size`,
    augmented as the whole batch would be in a single process.
    """

    def __init__(
        self,
        data: ImageSet,
        batch_size: int,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device | str = "cpu",
        shuffle: bool = False,
        augment: Augment | None = None,
        drop_last: bool = False,
        seed: int = 0,
        batch_augment: BatchAugment | None = None,
        shard: tuple[int, int] = (0, 1),
        alternate_flip: bool = False,
    ):
        self._setup(len(data), batch_size, drop_last, seed, shard)
        self.device = torch.device(device)
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        self.weights = None if getattr(data, "weights", None) is None else data.weights.float().to(self.device)
        self.shuffle = shuffle
        self.augment = augment if augment is not None and augment.active else None
        self.normalize = Normalize(mean, std, data.scale, self.device)
        self.batch_augment = batch_augment if batch_augment is not None and batch_augment.active else None
        self.flip_start = None  # alternate_flip: whether each image is mirrored in odd epochs
        if alternate_flip and self.augment is not None and self.augment.flip:
            start = torch.randint(2, (len(data),), generator=batch_generator(seed, -1, -1))
            self.flip_start = start.bool().to(self.device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        count = len(self.images)
        order = epoch_order(count, self.seed, self.epoch) if self.shuffle else torch.arange(count)
        order = order.to(self.device)
        first, self.start_batch = self.start_batch, 0
        for batch in range(first, len(self)):
            generator = batch_generator(self.seed, self.epoch, batch)
            index = order[batch * self.batch_size:(batch + 1) * self.batch_size]
            images, labels = self.images[index], self.labels[index]
            if self.augment is not None:
                flips = alternating_flips(self.flip_start[index], self.epoch) if self.flip_start is not None else None
                images = self.augment(images, generator, flips)
            normalized = self.normalize(images)
            if self.batch_augment is not None:  # cutout/erasing/mixup/cutmix; labels may become soft targets
                normalized, labels = self.batch_augment(normalized, labels, generator)
            weights = None if self.weights is None else self.weights[index]
            if self.world > 1:
                part = len(labels) // self.world  # equal parts: a short last batch drops its remainder
                if part == 0:
                    continue
                mine = slice(self.rank * part, (self.rank + 1) * part)
                normalized, labels = normalized[mine], labels[mine]
                weights = None if weights is None else weights[mine]
            yield (normalized, labels) if weights is None else (normalized, labels, weights)
