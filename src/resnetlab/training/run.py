"""A whole training run from a Config: data, model, fit, run folder, final test evaluation.

Each run gets its own folder `<project>/<name>/` holding `config.yaml` (the resolved settings),
`metrics.csv` (one row per epoch), `best.safetensors` (the model file with the best validation
accuracy), `last.safetensors` (a training checkpoint, optimizer included) and `results.json`.
"""

from __future__ import annotations

import copy
import csv
import json
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoint import load_model, save_checkpoint, save_model
from ..config import Config, apply_overrides, save_config
from ..data.augment import Augment
from ..data.dataset import DatasetSplits, ImageFiles
from ..data.loader import Batches, BatchLoader
from ..data.mix import BatchAugment
from ..data.sources import load_dataset
from ..data.stream import FileLoader
from ..device import resolve_device
from ..evaluate import EvalResult, evaluate_model
from ..info import ModelInfo
from ..registry import create_model
from .loop import EpochMetrics, History, fit
from .progress import make_progress


@dataclass
class TrainResult:
    run_dir: Path
    history: History
    best_path: Path
    last_path: Path
    info: ModelInfo  # of the best model
    test: EvalResult | None  # of the best model on the test split, when the dataset has one


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_run_dir(project: str | Path, name: str) -> Path:
    """Create `project/name`, or `name-2`, `name-3`, ... when taken (an earlier run is never overwritten)."""
    project = Path(project)
    candidate, number = project / name, 1
    while True:
        try:
            candidate.mkdir(parents=True, exist_ok=False)
            return candidate
        except FileExistsError:
            number += 1
            candidate = project / f"{name}-{number}"


class RunWriter:
    """Epoch callback: append to metrics.csv, write `last` every epoch and `best` when validation improves."""

    def __init__(self, run_dir: Path, info: ModelInfo, config: Config):
        self.run_dir, self.info, self.config = run_dir, info, config
        self.best: tuple[float, float] | None = None  # (val accuracy, -val loss): higher is better
        self.best_epoch = 0
        self.csv_path = run_dir / "metrics.csv"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.safetensors"

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.safetensors"

    def _append_csv(self, metrics: EpochMetrics) -> None:
        row = metrics.as_row()
        new = not self.csv_path.exists()
        with open(self.csv_path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})

    def _training_summary(self, metrics: EpochMetrics) -> dict[str, Any]:
        return {"dataset": self.config.data.name, "epoch": metrics.epoch, "epochs": self.config.train.epochs,
                "train_loss": metrics.train_loss, "train_accuracy": metrics.train_accuracy,
                "val_loss": metrics.val_loss, "val_accuracy": metrics.val_accuracy,
                "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"), "config": self.config.to_dict()}

    def __call__(self, metrics: EpochMetrics, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self._append_csv(metrics)
        self.info.training = self._training_summary(metrics)
        save_checkpoint(self.last_path, model, self.info, optimizer, {"epoch": metrics.epoch})
        score = (metrics.val_accuracy, -metrics.val_loss) if metrics.val_loss is not None else None
        if score is None or self.best is None or score > self.best:
            self.best, self.best_epoch = score, metrics.epoch
            save_model(self.best_path, model, self.info)


def load_run_data(config: Config) -> DatasetSplits:
    """The dataset a config names, with every data setting applied."""
    d = config.data
    return load_dataset(d.name, data_dir=d.data_dir, val_fraction=d.val_fraction, download=d.download,
                        img_size=d.img_size, channels=d.channels, on_bad_image=d.on_bad_image, in_memory=d.in_memory,
                        workers=d.workers)


def build_train_loader(data: DatasetSplits, config: Config, device: torch.device) -> Batches:
    """Shuffled, augmented training batches: in-memory (BatchLoader) or decoded from files (FileLoader)."""
    d, batch_size = config.data, config.train.batch_size
    flip = data.flip if d.flip is None else d.flip
    batch_augment = BatchAugment(cutout=d.cutout, random_erasing=d.random_erasing, mixup_alpha=d.mixup_alpha,
                                 cutmix_alpha=d.cutmix_alpha, mix_prob=d.mix_prob, num_classes=len(data.class_names))
    drop_last = len(data.train) % batch_size == 1  # BatchNorm cannot train on a batch of one image
    if isinstance(data.train, ImageFiles):
        return FileLoader(data.train, batch_size, input_size=data.image_shape, mean=data.mean, std=data.std,
                          device=device, train=True, shuffle=True, flip=flip, interpolation=data.interpolation,
                          workers=d.workers, seed=config.run.seed, drop_last=drop_last, batch_augment=batch_augment)
    augment = Augment(
        crop_padding=data.crop_padding if d.crop_padding is None else d.crop_padding,
        pad_mode=data.pad_mode if d.pad_mode is None else d.pad_mode, flip=flip,
    )
    return BatchLoader(data.train, batch_size, mean=data.mean, std=data.std, device=device, shuffle=True,
                       augment=augment, seed=config.run.seed, drop_last=drop_last, batch_augment=batch_augment)


def resolve_data_defaults(config: Config, data: DatasetSplits) -> None:
    """Replace "the dataset's default" (None) in the data settings by the values the dataset chose."""
    d = config.data
    d.crop_padding = data.crop_padding if d.crop_padding is None else d.crop_padding
    d.pad_mode = data.pad_mode if d.pad_mode is None else d.pad_mode
    d.flip = data.flip if d.flip is None else d.flip
    if data.file_input_size is not None:
        d.channels, d.img_size = data.file_input_size[0], data.file_input_size[1]


def _write_skipped(run_dir: Path, skipped: list[tuple[str, str]]) -> None:
    """List the files on_bad_image=skip left out, with reasons, in the run folder and on the console."""
    if not skipped:
        return
    lines = [f"{path}\t{reason}" for path, reason in skipped]
    (run_dir / "skipped.txt").write_text("\n".join(lines) + "\n")
    print(f"warning: skipped {len(skipped)} bad image file(s), listed in {run_dir / 'skipped.txt'}:")
    for path, reason in skipped[:10]:
        print(f"  {path}: {reason}")
    if len(skipped) > 10:
        print(f"  ... and {len(skipped) - 10} more")


def train(config: Config | None = None, *, display: str = "auto", **overrides: Any) -> TrainResult:
    """Train as `config` says, with `overrides` (setting names as on the CLI, e.g. `epochs=5`) applied on top.

    Args:
        display: progress display: auto (a bar on a terminal, else one line per epoch), rich, plain, none.
    """
    config = apply_overrides(copy.deepcopy(config) if config is not None else Config(), overrides).validate()
    progress = make_progress(display if config.run.progress else "plain")  # an unknown display fails here
    seed_everything(config.run.seed)
    device = resolve_device(config.run.device)
    data = load_run_data(config)  # every bad file is found here, before any training
    channels, height, width = data.image_shape
    model = create_model(config.model.name, num_classes=len(data.class_names), in_chans=channels, img_size=height,
                         **config.model.options()).to(device)
    info = ModelInfo(arch=model.arch, class_names=data.class_names, input_size=(channels, height, width),
                     mean=data.mean, std=data.std, interpolation=data.interpolation, crop_pct=data.crop_pct)

    loader = build_train_loader(data, config, device)
    resolve_data_defaults(config, data)  # config.yaml records what was used, not "the dataset's default"
    run_dir = make_run_dir(config.run.project, config.run.name or f"{config.model.name}-{Path(config.data.name).name}")
    save_config(config, run_dir / "config.yaml")
    _write_skipped(run_dir, data.skipped)
    writer = RunWriter(run_dir, info, config)
    started = time.perf_counter()
    history = fit(model, info, loader, config.train, val_data=data.val, callbacks=[writer], progress=progress)
    seconds = time.perf_counter() - started

    best_model, best_info = load_model(writer.best_path, device=device)
    test = None
    if data.test is not None:
        test = evaluate_model(best_model, data.test, best_info, device=device, workers=config.data.workers)
        best_info.training.update(test_accuracy=test.accuracy, test_loss=test.loss, test_top5=test.top5)
        save_model(writer.best_path, best_model, best_info)  # the model file records its test result too
    results = {"run_dir": str(run_dir), "best_epoch": writer.best_epoch, "train_seconds": round(seconds, 2),
               "device": str(device), "val_accuracy": history.rows[writer.best_epoch - 1].val_accuracy,
               "test": test.to_dict() if test is not None else None, "skipped_files": len(data.skipped)}
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    return TrainResult(run_dir, history, writer.best_path, writer.last_path, best_info, test)
