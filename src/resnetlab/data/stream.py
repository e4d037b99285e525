"""Batches decoded from image files in worker processes (folder and CSV datasets).

Training: random-resized-crop and flip per image (torchvision's ImageNet recipe); evaluation: resize
and center-crop as the model file says. Each image's randomness comes from (seed, epoch, index), so a
run is reproducible whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from PIL import ImageOps
from torch.utils.data import DataLoader, Dataset

from .augment import alternating_flips
from .dataset import ImageFiles, ImageSet
from .images import image_to_array, load_image, random_resized_crop, read_for_model
from .loader import EpochBatches, Normalize, batch_generator, epoch_order
from .mix import BatchAugment
from .scan import default_workers


class DecodedFiles(Dataset):
    """Decode one file into uint8 [C, H, W] (training or evaluation transform) with its label.

    Items are keyed by index or by (epoch, index); the epoch seeds training's augmentation and travels
    with the key because worker processes keep their own copy of this object for the whole run."""

    def __init__(self, files: ImageFiles, input_size: tuple[int, int, int], *, train: bool, flip: bool = False,
                 interpolation: str = "bilinear", crop_pct: float = 1.0, scale: tuple[float, float] = (0.08, 1.0),
                 alternate_flip: bool = False, seed: int = 0):
        self.paths, self.labels = files.paths, files.labels.tolist()
        self.channels, self.size = input_size[0], (input_size[1], input_size[2])
        self.train, self.flip, self.scale, self.alternate_flip = train, flip, scale, alternate_flip
        self.interpolation, self.crop_pct = interpolation, crop_pct
        self.seed = seed  # the run seed: each image's randomness comes from (seed, epoch, index)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        path = self.paths[index]  # a bad file raises BadImageError naming it
        if not self.train:
            array = read_for_model(path, (self.channels, *self.size), self.interpolation, self.crop_pct)
            return torch.from_numpy(array.copy()), self.labels[index]
        image = load_image(path, channels=self.channels)
        rng = np.random.default_rng([self.seed, epoch, index])
        image = random_resized_crop(image, self.size, rng, scale=self.scale, interpolation=self.interpolation)
        if self.flip and self._flipped(epoch, index, rng):
            image = ImageOps.mirror(image)
        return torch.from_numpy(image_to_array(image).copy()), self.labels[index]

    def _flipped(self, epoch: int, index: int, rng: np.random.Generator) -> bool:
        if not self.alternate_flip:
            return bool(rng.random() < 0.5)
        return alternating_flips(bool(np.random.default_rng([self.seed, index, 1]).random() < 0.5), epoch)


class _QueuedBatches:
    """FileLoader's batch sampler: yields whatever batches FileLoader queued for the current pass.

    DataLoader re-reads its sampler at every pass, so one DataLoader, and one set of worker processes,
    serves the whole run."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, int]]] = []

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class FileLoader(EpochBatches):
    """Yield (images float32 [B, C, H, W] normalized, labels) on `device`, decoding in worker processes.

    The epoch order and each batch's augmentation are seeded as in BatchLoader (resumable mid-epoch);
    with `shard=(rank, world)` each process decodes only its slice of every global batch.
    """

    def __init__(self, data: ImageFiles, batch_size: int, *, input_size: tuple[int, int, int],
                 mean: Sequence[float], std: Sequence[float], device: torch.device | str = "cpu", train: bool = False,
                 shuffle: bool = False, flip: bool = False, interpolation: str = "bilinear", crop_pct: float = 1.0,
                 workers: int | None = None, seed: int = 0, drop_last: bool = False,
                 batch_augment: BatchAugment | None = None, shard: tuple[int, int] = (0, 1),
                 alternate_flip: bool = False):
        self._setup(len(data), batch_size, drop_last, seed, shard)
        self.device = torch.device(device)
        self.dataset = DecodedFiles(data, input_size, train=train, flip=flip, interpolation=interpolation,
                                    crop_pct=crop_pct, alternate_flip=alternate_flip, seed=seed)
        self.shuffle = shuffle
        self.workers = default_workers() if workers is None else workers
        self._queued = _QueuedBatches()
        self._loader: DataLoader | None = None  # made at the first pass; its workers then live until this object goes
        self.normalize = Normalize(mean, std, 1.0 / 255.0, self.device)
        self.batch_augment = batch_augment if batch_augment is not None and batch_augment.active else None

    def _batches(self, first: int) -> list[list[int]]:
        """Index lists of this process's part of batches first.. of the epoch."""
        count = len(self.dataset)
        order = epoch_order(count, self.seed, self.epoch) if self.shuffle else torch.arange(count)
        batches = []
        for batch in range(first, len(self)):
            window = order[batch * self.batch_size:(batch + 1) * self.batch_size]
            part = len(window) // self.world  # equal parts: a short last batch drops its remainder
            if part:
                batches.append(window[self.rank * part:(self.rank + 1) * part].tolist())
        return batches

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        first, self.start_batch = self.start_batch, 0
        self._queued.batches = [[(self.epoch, index) for index in batch] for batch in self._batches(first)]
        if self._loader is None:
            # persistent workers: no fork per epoch. A pass abandoned midway (a stop) leaves up to
            # 4 x workers batches in flight, which the next pass waits for and drops.
            self._loader = DataLoader(
                self.dataset, batch_sampler=self._queued, num_workers=self.workers,
                pin_memory=self.device.type == "cuda", prefetch_factor=4 if self.workers else None,
                persistent_workers=self.workers > 0,
            )
        loader = self._loader
        for batch, (images, labels) in enumerate(loader, start=first):
            images = images.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            normalized = self.normalize(images)
            if self.batch_augment is not None:
                # this process holds only its slice of the global batch: per-image draws (cutout boxes) must
                # differ between processes, so the rank goes into the seed (unchanged in one process)
                normalized, labels = self.batch_augment(
                    normalized, labels, batch_generator(self.seed, self.epoch, batch * self.world + self.rank))
            yield normalized, labels


def decode_files(data: ImageFiles, input_size: tuple[int, int, int], *, interpolation: str = "bilinear",
                 crop_pct: float = 1.0, workers: int | None = None, batch_size: int = 256) -> ImageSet:
    """Decode every file once with the evaluation transform into an in-memory uint8 ImageSet."""
    dataset = DecodedFiles(data, input_size, train=False, interpolation=interpolation, crop_pct=crop_pct)
    workers = default_workers() if workers is None else workers
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers if len(dataset) > batch_size else 0)
    images, labels = [torch.empty((0, *input_size), dtype=torch.uint8)], [torch.empty(0, dtype=torch.long)]
    for batch, batch_labels in loader:  # (an empty split, e.g. every file skipped, decodes to an empty set)
        images.append(batch)
        labels.append(batch_labels)
    return ImageSet(torch.cat(images), torch.cat(labels).long())
