"""Input-pipeline throughput: augmented, normalized, ready-to-train images per second.

    python benchmarks/data_pipeline.py [--data-dir ../shared/data/cifar10] [--folder-images 5000]

1. CIFAR-10 training batches (random crop with 4-pixel padding, horizontal flip, normalization), in one
   run: resnetlab's batched pipeline (the uint8 set in memory, whole batches augmented at once) against
   the usual per-image pipeline (a Pillow image per sample, crop/flip/to-tensor/normalize per image,
   torch DataLoader with worker processes, as torchvision's transforms do it).
2. Image-folder decoding: CIFAR-10 training images written as JPEG files into class folders, then read
   by resnetlab's file pipeline (worker processes): the pre-training scan, an evaluation pass (decode,
   resize) and a training pass (decode, random-resized-crop, flip), with 0 and with all workers.

Prints a table and writes JSON (median of --repeats timed passes after a warm-up pass).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset

from resnetlab.data import load_dataset
from resnetlab.data.augment import Augment
from resnetlab.data.dataset import DatasetSplits
from resnetlab.data.loader import BatchLoader
from resnetlab.data.scan import default_workers, scan_files
from resnetlab.data.stats import CIFAR10_MEAN, CIFAR10_STD
from resnetlab.data.stream import FileLoader

from common import SHARED_DATA, write_report

SHARED = SHARED_DATA / "cifar10"


class PerImageCifar(Dataset):
    """The per-image baseline: what RandomCrop(32, 4) + RandomHorizontalFlip + ToTensor + Normalize do."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels  # uint8 [N, 32, 32, 3]
        self.mean = np.array(CIFAR10_MEAN, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.array(CIFAR10_STD, dtype=np.float32).reshape(3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = ImageOps.expand(Image.fromarray(self.images[index]), border=4, fill=0)
        top, left = np.random.randint(0, 9, size=2)
        image = image.crop((left, top, left + 32, top + 32))
        if np.random.rand() < 0.5:
            image = ImageOps.mirror(image)
        array = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0
        return torch.from_numpy((array - self.mean) / self.std), int(self.labels[index])


def timed_passes(batches, count: int, repeats: int) -> list[float]:
    """Images/s of `repeats` full passes over an iterable of batches (after one warm-up pass)."""
    rates = []
    for attempt in range(repeats + 1):
        started = time.perf_counter()
        seen = 0
        for images, _ in batches:  # a fresh pass each time (loaders are re-iterable)
            seen += len(images)
        elapsed = time.perf_counter() - started
        if attempt:  # the first pass warms caches and worker start-up
            rates.append(seen / elapsed)
        assert seen == count, (seen, count)
    return rates


def cifar_batches(data: DatasetSplits, repeats: int, batch: int, workers: int) -> dict:
    count = len(data.train)
    loader = BatchLoader(data.train, batch, mean=data.mean, std=data.std, shuffle=True,
                         augment=Augment(crop_padding=4, flip=True))
    ours = timed_passes(loader, count, repeats)
    images = data.train.images.permute(0, 2, 3, 1).numpy()
    baseline_set = PerImageCifar(images, data.train.labels.numpy())
    baseline = DataLoader(baseline_set, batch_size=batch, shuffle=True, num_workers=workers,
                          persistent_workers=workers > 0)
    theirs = timed_passes(baseline, count, repeats)
    return {"images": count, "batch_size": batch, "baseline_workers": workers,
            "resnetlab_images_per_s": statistics.median(ours), "resnetlab_runs": ours,
            "per_image_images_per_s": statistics.median(theirs), "per_image_runs": theirs,
            "ratio": statistics.median(ours) / statistics.median(theirs)}


def write_jpeg_folder(data: DatasetSplits, root: Path, count: int) -> None:
    for index in range(count):
        label = int(data.train.labels[index])
        folder = root / data.class_names[label]
        folder.mkdir(parents=True, exist_ok=True)
        array = data.train.images[index].permute(1, 2, 0).numpy()
        Image.fromarray(array).save(folder / f"{index:05d}.jpg", quality=90)


def folder_decoding(data: DatasetSplits, count: int, repeats: int, batch: int) -> dict:
    results: dict = {"images": count}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "cifar-jpeg"
        write_jpeg_folder(data, root, count)
        os.environ["RESNETLAB_CACHE"] = str(Path(tmp) / "cache")  # a cold scan, not a cached one
        paths = sorted(str(p) for p in root.rglob("*.jpg"))
        started = time.perf_counter()
        scan_files(paths, root=root)
        results["scan_images_per_s"] = count / (time.perf_counter() - started)
        files = load_dataset(str(root), val_fraction=0).train  # cached scan now
        for workers in sorted({0, default_workers()}):
            for mode in ("eval", "train"):
                loader = FileLoader(files, batch, input_size=(3, 32, 32), mean=CIFAR10_MEAN, std=CIFAR10_STD,
                                    train=mode == "train", shuffle=mode == "train", flip=mode == "train",
                                    workers=workers)
                rates = timed_passes(loader, count, repeats)
                results[f"{mode}_workers{workers}_images_per_s"] = statistics.median(rates)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(SHARED))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--folder-images", type=int, default=5000)
    parser.add_argument("--out", default="benchmarks/results/data_pipeline.json")
    args = parser.parse_args()
    workers = default_workers()
    torch.set_num_threads(os.cpu_count() or 1)

    data = load_dataset("cifar10", data_dir=args.data_dir, val_fraction=0, download=False,
                        verify=False)  # the shared CIFAR-10 is a JPEG copy, not the official bytes
    cifar = cifar_batches(data, args.repeats, args.batch_size, workers)
    print(f"CIFAR-10 training batches ({cifar['images']:,} images, crop+flip+normalize, batch {args.batch_size}):")
    print(f"  resnetlab batched pipeline       {cifar['resnetlab_images_per_s']:>10,.0f} images/s")
    print(f"  per-image Pillow + DataLoader({workers}) {cifar['per_image_images_per_s']:>10,.0f} images/s")
    print(f"  ratio                            {cifar['ratio']:>10.1f}x")

    folder = folder_decoding(data, args.folder_images, args.repeats, 256)
    print(f"Image folder of {folder['images']:,} CIFAR-10 JPEGs (32x32):")
    for key, value in folder.items():
        if key.endswith("_per_s"):
            print(f"  {key:<32} {value:>10,.0f}")
    write_report({"benchmark": "data_pipeline", "cifar10_batches": cifar, "folder_decoding": folder}, args.out)


if __name__ == "__main__":
    main()
