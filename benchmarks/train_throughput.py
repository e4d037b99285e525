"""Training throughput: images/s of a full training step, resnetlab's defaults against plain PyTorch.

    python benchmarks/train_throughput.py [--data-dir ../shared/data/cifar10] [--steps 20] [--repeats 3] [--compile]

For resnet20 and resnet18 (stem=small) at 32x32 on CIFAR-10, and resnet50 at 224x224 on a folder of
JPEGs, in one run:
- baseline: what a plain PyTorch script does: eager fp32, NCHW, per-image Pillow transforms
  (random crop or random-resized-crop, flip, to-tensor, normalize) in a DataLoader with worker
  processes, SGD with momentum;
- resnetlab: the Trainer with every default (precision auto, channels_last auto, the batched or
  worker pipeline), i.e. what `resnetlab train` runs.
The setups run the same number of timed steps after warm-up steps on the same data, taking
turns window by window (`--repeats` rounds; `--compile` adds resnetlab with compile=true as a third);
the table gives the median window, their ratio, and the achieved GFLOP/s (a multiply-add = 2 FLOPs,
3x the forward pass for a training step) against this machine's measured matmul peak in fp32 and
bf16. Between turns every setup keeps its data pipeline as it is (resnetlab's loop waits in its own
thread), so worker processes may top up their prefetched batches while the others run. Writes JSON.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset

import resnetlab
from resnetlab.config import load_config
from resnetlab.data import load_dataset
from resnetlab.data.images import random_resized_crop
from resnetlab.data.scan import default_workers
from resnetlab.data.stats import IMAGENET_MEAN, IMAGENET_STD
from resnetlab.models.summary import count_flops
from resnetlab.training.callbacks import LambdaHooks
from resnetlab.training.loop import Trainer
from resnetlab.training.run import build_model, build_train_loader, load_run_data

from common import SHARED_DATA, write_report
from data_pipeline import PerImageCifar  # the per-image CIFAR baseline pipeline

SHARED = SHARED_DATA / "cifar10"


def matmul_peak(dtype: torch.dtype, size: int = 2048, repeats: int = 5, trials: int = 5) -> float:
    """GFLOP/s of a large square matrix product: this machine's practical peak for `dtype`.

    The best of `trials` timings: a peak, and single timings on this shared machine vary by 20%."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    a @ b
    best = 0.0
    for _ in range(trials):
        started = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = max(best, 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9)
    return best


class PerImageFolder(Dataset):
    """Baseline for 224x224: decode, RandomResizedCrop(224), flip, to-tensor, normalize, per image."""

    def __init__(self, paths: list[str], labels: list[int]):
        self.paths, self.labels = paths, labels
        self.mean = np.array(IMAGENET_MEAN, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.array(IMAGENET_STD, dtype=np.float32).reshape(3, 1, 1)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        with Image.open(self.paths[index]) as image:
            image = image.convert("RGB")
        image = random_resized_crop(image, (224, 224), np.random.default_rng())
        if np.random.rand() < 0.5:
            image = ImageOps.mirror(image)
        array = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0
        return torch.from_numpy((array - self.mean) / self.std), self.labels[index]


class Contestant:
    """One training setup, timed a window of steps at a time so the setups can take turns."""

    def __init__(self, name: str, run_steps, close=lambda: None):
        self.name, self.run_steps, self.close, self.rates = name, run_steps, close, []

    def window(self, batch: int, steps: int) -> None:
        self.rates.append(batch * steps / self.run_steps(steps))


def race(contestants: list[Contestant], batch: int, warmup: int, steps: int, repeats: int = 3) -> None:
    """Warm every contestant up, then time `repeats` rounds in which each runs one window of `steps` steps.

    Taking turns window by window exposes every setup to the same drift of this shared machine (its
    speed changes by 20% over minutes); back-to-back blocks of windows would not."""
    for contestant in contestants:
        contestant.run_steps(warmup)
    for _ in range(repeats):
        for contestant in contestants:
            contestant.window(batch, steps)
    for contestant in contestants:
        contestant.close()


def baseline_steps(model_name: str, options: dict, loader: DataLoader):
    """A plain PyTorch training step: eager fp32, NCHW, SGD with momentum; returns run(n) -> seconds."""
    torch.manual_seed(0)
    model = resnetlab.create_model(model_name, num_classes=10, **options).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    batches = iter(loader)

    def step() -> None:
        nonlocal batches
        try:
            images, labels = next(batches)
        except StopIteration:
            batches = iter(loader)
            images, labels = next(batches)
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def run(steps: int) -> float:
        started = time.perf_counter()
        for _ in range(steps):
            step()
        return time.perf_counter() - started

    return run


def resnetlab_steps(model_name: str, options: dict, data_overrides: dict, batch: int, **train: object):
    """resnetlab's real training loop (what `resnetlab train` builds); returns (run(n) -> seconds, close, precision).

    `train` are extra settings (compile=True). The loop runs in its own thread and never stops between
    windows: after a window's last step it waits in a step callback for its next turn, so its data
    pipeline is paused as the baseline's DataLoader is (both keep their prefetched batches)."""
    config = load_config(overrides={"model": model_name, "batch_size": batch, "lr": 0.05, **options,
                                    **data_overrides, **train})  # options are model settings (stem=small)
    data = load_run_data(config)
    model, info, _ = build_model(config, data)
    trainer = Trainer(model, info, build_train_loader(data, config, torch.device("cpu")), config.train)
    turn, finished = threading.Event(), threading.Event()
    window = {"left": 0, "end": 0.0, "closing": False}

    def stamp(t: Trainer) -> None:  # after every optimizer step, in the training thread
        window["left"] -= 1
        if window["left"] == 0:
            window["end"] = time.perf_counter()
            finished.set()
            turn.wait()  # the other setups take their turns
            turn.clear()
            if window["closing"]:
                t.stop.request("benchmark over")

    def train() -> None:
        while not trainer.stop.requested:
            if trainer.train_epoch():
                trainer.finish_epoch()

    trainer.callbacks.append(LambdaHooks(on_batch_end=stamp))
    thread = threading.Thread(target=train, name=f"train-{model_name}", daemon=True)

    def run(steps: int) -> float:
        window["left"] = steps
        finished.clear()
        started = time.perf_counter()
        if thread.is_alive():
            turn.set()
        else:
            thread.start()
        finished.wait()
        return window["end"] - started

    def close() -> None:
        window["closing"] = True
        turn.set()
        thread.join()

    return run, close, trainer.precision.name


def jpeg_folder(root: Path, count: int = 256) -> tuple[list[str], list[int]]:
    rng = np.random.default_rng(0)
    paths, labels = [], []
    for index in range(count):
        label = index % 10
        folder = root / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        base = (rng.integers(0, 255, (8, 8, 3)) // 2 + label * 12).astype(np.uint8)
        image = Image.fromarray(base).resize((320, 256), Image.Resampling.BICUBIC)
        path = folder / f"{index:04d}.jpg"
        image.save(path, quality=90)
        paths.append(str(path))
        labels.append(label)
    return paths, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(SHARED))
    parser.add_argument("--steps", type=int, default=20, help="timed steps per window (32x32 models)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (the table gives the median)")
    parser.add_argument("--compile", action="store_true",
                        help="also time resnet20 with compile=true, taking turns with eager in every round")
    parser.add_argument("--out", default="benchmarks/results/train_throughput.json")
    args = parser.parse_args()
    workers = default_workers()
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"matmul peak: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s")

    cifar = load_dataset("cifar10", data_dir=args.data_dir, val_fraction=0, download=False,
                         verify=False)  # the shared CIFAR-10 is a JPEG copy, not the official bytes
    cifar_images = cifar.train.images.permute(0, 2, 3, 1).numpy()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["RESNETLAB_CACHE"] = str(Path(tmp) / "cache")
        paths, labels = jpeg_folder(Path(tmp) / "photos")
        cases = [
            ("resnet20", {}, 128, 32, args.steps,
             {"data": "cifar10", "data_dir": args.data_dir, "verify": False, "val_fraction": 0},
             DataLoader(PerImageCifar(cifar_images, cifar.train.labels.numpy()), batch_size=128, shuffle=True,
                        num_workers=workers, persistent_workers=True, drop_last=True)),
            ("resnet18", {"stem": "small"}, 128, 32, max(3, args.steps // 8),
             {"data": "cifar10", "data_dir": args.data_dir, "verify": False, "val_fraction": 0},
             DataLoader(PerImageCifar(cifar_images, cifar.train.labels.numpy()), batch_size=128, shuffle=True,
                        num_workers=workers, persistent_workers=True, drop_last=True)),
            ("resnet50", {}, 16, 224, 2, {"data": str(Path(tmp) / "photos"), "val_fraction": 0, "img_size": 224},
             DataLoader(PerImageFolder(paths, labels), batch_size=16, shuffle=True, num_workers=workers,
                        persistent_workers=True, drop_last=True)),
        ]
        for name, options, batch, size, steps, data_overrides, base_loader in cases:
            with torch.device("meta"):
                meta = resnetlab.create_model(name, num_classes=10, **options)
            step_flops = 3 * count_flops(meta, (3, size, size))  # forward + backward (2x forward) per image
            base = Contestant("baseline", baseline_steps(name, options, base_loader))
            run, close, precision = resnetlab_steps(name, options, data_overrides, batch)
            contestants = [base, Contestant("resnetlab", run, close)]
            if args.compile and name == "resnet20":
                run, close, _ = resnetlab_steps(name, options, data_overrides, batch, compile=True)
                contestants.append(Contestant("compile", run, close))
            race(contestants, batch, warmup=3 if args.compile else 2, steps=steps, repeats=args.repeats)
            base, ours = contestants[0].rates, contestants[1].rates
            row = {"model": name, "options": options, "input": size, "batch_size": batch,
                   "baseline_images_per_s": statistics.median(base), "baseline_runs": base,
                   "resnetlab_images_per_s": statistics.median(ours), "resnetlab_runs": ours,
                   "resnetlab_precision": precision}
            if len(contestants) == 3:
                row["compile_runs"] = contestants[2].rates
                row["compile_images_per_s"] = statistics.median(contestants[2].rates)
                row["compile_ratio"] = row["compile_images_per_s"] / row["baseline_images_per_s"]
                row["compile_vs_eager_per_round"] = [c / e for c, e in zip(contestants[2].rates, ours)]
            row["ratio"] = row["resnetlab_images_per_s"] / row["baseline_images_per_s"]
            row["baseline_gflops"] = row["baseline_images_per_s"] * step_flops / 1e9
            row["resnetlab_gflops"] = row["resnetlab_images_per_s"] * step_flops / 1e9
            row["baseline_share_of_fp32_peak"] = row["baseline_gflops"] / peaks["fp32"]
            row["resnetlab_share_of_peak"] = row["resnetlab_gflops"] / peaks["bf16" if precision == "bf16" else "fp32"]
            rows.append(row)
            print(f"{name:>9} {size}x{size} batch {batch}: baseline {row['baseline_images_per_s']:8.1f} img/s "
                  f"({row['baseline_gflops']:5.0f} GFLOP/s, {row['baseline_share_of_fp32_peak']:.0%} of fp32 peak) | "
                  f"resnetlab {row['resnetlab_images_per_s']:8.1f} img/s ({precision}, {row['resnetlab_gflops']:5.0f} "
                  f"GFLOP/s, {row['resnetlab_share_of_peak']:.0%} of {precision} peak) | {row['ratio']:.2f}x",
                  flush=True)
            if "compile_ratio" in row:
                print(f"{'':>9} compile=true: {row['compile_images_per_s']:8.1f} img/s | {row['compile_ratio']:.2f}x; "
                      "compile/eager per round: " + ", ".join(f"{r:.2f}" for r in row["compile_vs_eager_per_round"]),
                      flush=True)
    write_report({"benchmark": "train_throughput", "peaks_gflops": peaks, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
