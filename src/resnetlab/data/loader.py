"""Batches from an in-memory ImageSet: the whole set sits on the device as uint8, batches are
sliced, augmented and normalized there (no per-image Python work, no worker processes)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import torch

from .augment import Augment
from .dataset import ImageSet
from .mix import BatchAugment


class Batches(Protocol):
    """What the training loop iterates: BatchLoader (in memory) or FileLoader (decoded from files)."""

    device: torch.device

    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...
    def set_epoch(self, epoch: int) -> None: ...

    @property
    def num_samples(self) -> int: ...


class Normalize:
    """Map stored pixels to (x / 255 - mean) / std in one fused multiply-add."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], scale: float, device: torch.device):
        std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.mul = scale / std_t  # pixels * scale / std ...
        self.add = -mean_t / std_t  # ... - mean / std

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.add, images.float(), self.mul)


class BatchLoader:
    """Yield (images float32 [B, C, H, W] normalized, labels int64 [B] or soft targets [B, K]) on `device`.

    Shuffling and augmentation draw from a CPU generator seeded by (seed, epoch), so an epoch's
    batches are the same whenever it is replayed.
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
    ):
        self.device = torch.device(device)
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        self.batch_size = batch_size
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed
        self.augment = augment if augment is not None and augment.active else None
        self.normalize = Normalize(mean, std, data.scale, self.device)
        self.batch_augment = batch_augment if batch_augment is not None and batch_augment.active else None
        self.epoch = 0

    def __len__(self) -> int:
        full, rest = divmod(len(self.images), self.batch_size)
        return full if (self.drop_last or rest == 0) else full + 1

    @property
    def num_samples(self) -> int:
        return len(self) * self.batch_size if self.drop_last else len(self.images)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        count = len(self.images)
        order = torch.randperm(count, generator=generator).to(self.device) if self.shuffle else None
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            if order is None:
                images = self.images[start:start + self.batch_size]
                labels = self.labels[start:start + self.batch_size]
            else:
                index = order[start:start + self.batch_size]
                images, labels = self.images[index], self.labels[index]
            if self.augment is not None:
                images = self.augment(images, generator)
            normalized = self.normalize(images)
            if self.batch_augment is not None:  # cutout/erasing/mixup/cutmix; labels may become soft targets
                normalized, labels = self.batch_augment(normalized, labels, generator)
            yield normalized, labels
