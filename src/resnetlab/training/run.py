"""A whole training run from a Config: data, model, Trainer, run folder, resume, final test evaluation.

Each run gets its own folder `<project>/<name>/`: `config.yaml` (the resolved settings), `metrics.csv`,
`curves.png`, `best.safetensors` (the model file with the best validation accuracy, EMA weights when
on), `last.safetensors` (a training checkpoint: resume from it), `results.json`, TensorBoard events
with tensorboard=true, and `skipped.txt` (JSON lines: path, reason) when bad images were left out.
"""

from __future__ import annotations

import copy
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..analysis.evaluation import EvalResult, evaluate_model
from ..checkpoint import load_model, read_info, save_model
from ..config import Config, apply_overrides, changed_settings, config_from_dict, flatten_settings, load_config
from ..data.augment import Augment
from ..data.dataset import DatasetSplits, ImageFiles
from ..data.loader import Batches, BatchLoader, needs_drop_last
from ..data.mix import BatchAugment
from ..data.sample import normalized_sample
from ..data.sources import load_dataset
from ..data.stats import pixel_mean
from ..data.stream import FileLoader
from ..device import resolve_device
from ..errors import ConfigError, FileWriteError
from ..info import ModelInfo
from ..registry import create_model
from ..runtime import Inference
from .callbacks import Callback, check_callbacks
from .distributed import Distributed, barrier, broadcast_text, init_distributed, shutdown
from .divergence import TrainingError
from .history import History
from .loop import Trainer
from .optim import class_weights
from .precision import auto_precision, resolve_precision
from .progress import ProgressCallback, make_progress
from .state import restore_training
from .writer import RunWriter


@dataclass
class TrainResult:
    run_dir: Path | None  # None in the processes of a multi-process run other than rank 0
    history: History
    best_path: Path | None
    last_path: Path | None
    info: ModelInfo  # of the best model (of the last state on ranks other than 0)
    test: EvalResult | None  # of the best model on the test split, when the dataset has one
    stopped: str | None = None  # why the run stopped before its end (SIGINT, SIGTERM), if it did


def call_seed(seed: int, call: int) -> int:
    """The seed of the `call`-th training call on the same model (the Keras facade's repeated `fit`): the
    first uses `seed` itself, later ones a draw from (seed, call), so they are reproducible and never repeat."""
    return int(np.random.SeedSequence([seed, call]).generate_state(1)[0]) if call else seed


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


def load_run_data(config: Config) -> DatasetSplits:
    """The dataset a config names, with every data setting applied."""
    d = config.data
    data = load_dataset(d.name, data_dir=d.data_dir, val_fraction=d.val_fraction, download=d.download,
                        img_size=d.img_size, channels=d.channels, on_bad_image=d.on_bad_image, in_memory=d.in_memory,
                        workers=d.workers, verify=d.verify, path_column=d.path_column, label_column=d.label_column)
    if data.notes.get("verify") == "off":  # config.yaml records verify: false as well
        print(f"warning: verify=false: the {data.name} files in {data.notes.get('source')} were not checked against "
              f"their published checksums; results may not match the official dataset's")
    return data


def build_train_loader(data: DatasetSplits, config: Config, device: torch.device,
                       shard: tuple[int, int] = (0, 1)) -> Batches:
    """Shuffled, augmented training batches: in memory (BatchLoader) or decoded from files (FileLoader).

    Each item is one forward pass: batch_size / accumulate images over all processes.
    """
    d, t = config.data, config.train
    micro = t.batch_size // t.accumulate
    flip = data.flip if d.flip is None else d.flip
    if d.alternate_flip and not flip:
        raise ConfigError("alternate_flip=true changes how images are flipped, but flips are off for this dataset; "
                          "add flip=true (or leave alternate_flip off)")
    batch_augment = BatchAugment(cutout=d.cutout, random_erasing=d.random_erasing, mixup_alpha=d.mixup_alpha,
                                 cutmix_alpha=d.cutmix_alpha, mix_prob=d.mix_prob, num_classes=len(data.class_names))
    drop_last = needs_drop_last(len(data.train), micro, shard[1])
    if micro % shard[1]:
        raise ConfigError(f"batch_size / accumulate = {micro} does not split evenly over {shard[1]} processes")
    if isinstance(data.train, ImageFiles):
        return FileLoader(data.train, micro, input_size=data.image_shape, mean=data.mean, std=data.std,
                          device=device, train=True, shuffle=True, flip=flip, interpolation=data.interpolation,
                          workers=d.workers, seed=config.run.seed, drop_last=drop_last, batch_augment=batch_augment,
                          shard=shard, alternate_flip=d.alternate_flip)
    augment = Augment(
        crop_padding=data.crop_padding if d.crop_padding is None else d.crop_padding,
        pad_mode=data.pad_mode if d.pad_mode is None else d.pad_mode, flip=flip,
    )
    return BatchLoader(data.train, micro, mean=data.mean, std=data.std, device=device, shuffle=True,
                       augment=augment, seed=config.run.seed, drop_last=drop_last, batch_augment=batch_augment,
                       shard=shard, alternate_flip=d.alternate_flip)


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
    # one JSON object per line: a file name may hold a newline or a tab and still be one entry
    lines = [json.dumps({"path": path, "reason": reason}, ensure_ascii=False) for path, reason in skipped]
    (run_dir / "skipped.txt").write_text("\n".join(lines) + "\n")
    print(f"warning: skipped {len(skipped)} bad image file(s), listed in {run_dir / 'skipped.txt'}:")
    for path, reason in skipped[:10]:
        print(f"  {path if path.isprintable() else repr(path)}: {reason}")
    if len(skipped) > 10:
        print(f"  ... and {len(skipped) - 10} more")


def resume_target(resume: str) -> tuple[Path, Path]:
    """(run folder, checkpoint) for `resume=` given as a run folder or a checkpoint file."""
    path = Path(resume).expanduser()
    checkpoint = path / "last.safetensors" if path.is_dir() else path
    if not checkpoint.is_file():
        raise ConfigError(f"resume={resume}: no checkpoint at {checkpoint}; give a run folder holding "
                          f"last.safetensors (the run must have finished at least one checkpoint)")
    return checkpoint.parent, checkpoint


def _settings_on_disk(path: Path) -> Config | None:
    """The settings in a run's config.yaml; None when it is missing or empty (a write that never finished)."""
    if not path.is_file() or not path.read_bytes().strip():
        return None
    return load_config(path)


def saved_run_config(run_dir: Path, checkpoint: Path) -> Config:
    """The settings a run trained with: the resolved config recorded in its checkpoint, which must agree with
    the run's config.yaml (a checkpoint from before resnetlab recorded them: config.yaml alone)."""
    recorded = read_info(checkpoint).training.get("config")
    yaml_path = run_dir / "config.yaml"
    on_disk = _settings_on_disk(yaml_path)
    if recorded is None:
        if on_disk is None:
            raise ConfigError(f"resume: {checkpoint} records no settings and {yaml_path} is missing or empty; "
                              f"start a new run")
        return on_disk
    saved = config_from_dict(recorded, f"the settings recorded in {checkpoint}")
    if on_disk is None:
        print(f"note: {yaml_path} is missing or empty; resuming with the settings recorded in {checkpoint.name}")
        return saved
    ignored = ("run.resume",)  # how the run is resumed, not what it trains
    theirs, ours = flatten_settings(on_disk), flatten_settings(saved)
    differ = [key for key in ours if key not in ignored and ours[key] != theirs.get(key)]
    if differ:
        shown = ", ".join(f"{key.split('.')[-1]}: {theirs.get(key)!r} there, {ours[key]!r} in the checkpoint"
                          for key in differ[:4]) + (f" and {len(differ) - 4} more" if len(differ) > 4 else "")
        raise ConfigError(f"resume: {yaml_path} disagrees with the settings recorded in {checkpoint.name} "
                          f"({shown}); the checkpoint holds what the run trained with: delete or restore config.yaml, "
                          f"and give settings to change as words (resume={run_dir} epochs=...)")
    return saved


def _resumed_config(config: Config, overrides: dict[str, Any]) -> Config:
    """The run's own saved settings, with the settings given now on top: those of `config` that differ from
    the defaults (a caller's prebuilt Config, e.g. with more epochs), then `overrides` (which also carry
    settings given at their default value)."""
    run_dir, checkpoint = resume_target(config.run.resume)
    saved = saved_run_config(run_dir, checkpoint)
    given = {**changed_settings(config), **overrides}
    rest = {k: v for k, v in given.items() if k not in ("resume", "run.resume", "recipe", "run.recipe")}
    resumed = apply_overrides(saved, rest)
    resumed.run.resume = config.run.resume
    return resumed.validate()


def resolve_auto_settings(config: Config, device: torch.device, distributed: Distributed | None) -> str:
    """Replace every `auto` that changes the numbers (precision, memory layout, device) by what it means here,
    so config.yaml and every checkpoint record it and a resumed run reuses it; return a line saying so.

    Several processes take rank 0's choice (a measured one could differ between them)."""
    t, r = config.train, config.run
    why = ""
    if t.precision == "auto":
        name, why = auto_precision(device)
        t.precision = broadcast_text(name, distributed)
        why = f" (auto: {why})"
    t.channels_last = resolve_precision(t.precision, t.channels_last, device).channels_last
    if r.device == "auto":
        r.device = device.type
    return (f"device {r.device}, precision {t.precision}{why}, channels_last "
            f"{'on' if t.channels_last else 'off'}, seed {r.seed}")


def train(config: Config | None = None, *, display: str = "auto", callbacks: Sequence[Callback] = (),
          **overrides: Any) -> TrainResult:
    """Train as `config` says, with `overrides` (setting names as on the CLI, e.g. `epochs=5`) applied on top.

    Args:
        display: progress display: auto (a bar on a terminal, else one line per epoch), rich, plain, none.
        callbacks: Callbacks (training/callbacks.py; `LambdaHooks` makes one from functions), called after the
            progress display and the run folder, on every process (`trainer.distributed` says which):
            logging, custom stopping (`trainer.stop.request("reason")` ends the run cleanly with a checkpoint).
            Their `state_dict()` is saved in the checkpoints and given back on resume.
    """
    if config is None:
        config = load_config(overrides=overrides)  # a recipe= among the overrides applies first
    elif "recipe" in overrides:
        raise ConfigError("recipe= applies before all other settings: pass it in load_config(overrides=...) or "
                          "to train() without a config")
    else:
        config = apply_overrides(copy.deepcopy(config), overrides).validate()
    if config.run.resume:
        config = _resumed_config(config, overrides)
    make_progress(display)  # an unknown display fails before any work
    check_callbacks(list(callbacks))
    distributed, device = init_distributed(resolve_device(config.run.device))
    try:
        return _train(config, display, distributed, device, callbacks)
    finally:
        shutdown(distributed)


def build_model(config: Config, data: DatasetSplits, *, pretrained: bool = True
                ) -> tuple[torch.nn.Module, ModelInfo, list[str]]:
    """The model of `config` for `data`, its metadata (normalization, resize rule) and notes on the pretrained
    weights it was started from; what train and lr-find both run."""
    if config.data.normalize == "pixel_mean":
        if isinstance(data.train, ImageFiles):
            raise ConfigError("normalize=pixel_mean needs images of one size in memory; add in_memory=true")
        data.mean, data.std = pixel_mean(data.train), (1.0,) * data.image_shape[0]
    channels, height, width = data.image_shape
    started_from: dict[str, Any] = {}
    if config.model.weights and pretrained:
        model, notes, started_from = _pretrained(config, data)
    else:
        model = create_model(config.model.name, num_classes=len(data.class_names), in_chans=channels,
                             img_size=height, **config.model.options())
        notes = []
        if config.model.weights:  # resuming: the checkpoint holds the weights, and says where they came from
            recorded = read_info(resume_target(config.run.resume)[1])
            started_from = recorded.pretrained
            if started_from.get("source", "file") != "file" and config.data.normalize == "channel":
                data.mean, data.std = recorded.mean, recorded.std  # as _pretrained chose at the start
                data.interpolation, data.crop_pct = recorded.interpolation, recorded.crop_pct
    info = ModelInfo(arch=model.arch, class_names=data.class_names, input_size=(channels, height, width),
                     mean=data.mean, std=data.std, interpolation=data.interpolation, crop_pct=data.crop_pct,
                     pretrained=started_from)
    if model.init_images and not config.model.weights and not config.run.resume:  # a resumed run has its weights
        model.init_from_data(normalized_sample(data.train, info, model.init_images, seed=config.run.seed))
    return model, info, notes


def _pretrained(config: Config, data: DatasetSplits) -> tuple[torch.nn.Module, list[str], dict[str, Any]]:
    """The model started from `weights=` (a published name, hf-hub:, or a file), and where they came from.

    Published weights bring their normalization (ImageNet's mean/std for torchvision's): the features were
    learned on inputs normalized that way, so the run uses it rather than the new data's statistics; on image
    files at the weights' own input size their resize rule (crop_pct, interpolation) applies too."""
    from ..weights.load import build_from, get_weights

    channels, height, _ = data.image_shape
    source = get_weights(config.model.name, config.model.weights)
    if source.arch and source.arch != config.model.name:
        raise ConfigError(f"weights={config.model.weights} are for {source.arch}, not {config.model.name}: give "
                          f"model={source.arch}")
    model, adopted, notes = build_from(config.model.name, source, num_classes=len(data.class_names),
                                       in_chans=channels, img_size=height, **config.model.options())
    published = source.provenance.get("source") != "file" and source.preprocess
    if published and config.data.normalize == "channel":
        data.mean, data.std = adopted.mean, adopted.std
        notes.append(f"inputs normalized as the weights were trained: mean {adopted.mean}, std {adopted.std}")
        if isinstance(data.train, ImageFiles) and source.preprocess["input_size"][1] == height:
            data.interpolation, data.crop_pct = adopted.interpolation, adopted.crop_pct
    return model, notes, dict(source.provenance)


def _train(config: Config, display: str, distributed: Distributed | None, device: torch.device,
           callbacks: Sequence[Callback]) -> TrainResult:
    main = distributed is None or distributed.is_main
    if config.train.head_epochs and not (config.model.weights or config.run.resume):
        raise ConfigError("head_epochs trains the classifier on a frozen pretrained backbone: give weights=NAME "
                          "(`resnetlab weights` lists them) or weights=FILE (a model file or a torchvision/timm "
                          "state dict), or set head_epochs=0")
    seed_everything(config.run.seed)
    data = load_run_data(config)  # every bad file is found here, before any training
    model, info, notes = build_model(config, data, pretrained=not config.run.resume)
    shard = (distributed.rank, distributed.world) if distributed else (0, 1)
    loader = build_train_loader(data, config, device, shard)
    resolve_data_defaults(config, data)  # config.yaml records what was used, not "the dataset's default"
    settings_line = resolve_auto_settings(config, device, distributed)  # before the Trainer reads them
    weights = class_weights(config.train, data.train.labels, len(data.class_names))
    trainer = Trainer(model, info, loader, config.train, val_data=data.val, class_weight=weights,
                      distributed=distributed, sync_bn=config.run.sync_bn)

    if config.run.resume:
        run_dir, checkpoint = resume_target(config.run.resume)
        restore_training(checkpoint, trainer)
        stopped_early = (trainer.state.stop_reason or "").startswith("early stopping")
        if trainer.state.done and not trainer.finished() and not stopped_early:  # given more epochs: trains on
            trainer.state.done, trainer.state.stop_reason = False, None
    else:
        name = config.run.name or f"{config.model.name}-{Path(config.data.name).name}"
        run_dir = Path(broadcast_text(str(make_run_dir(config.run.project, name)) if main else None, distributed))
    writer = RunWriter(run_dir, config, resumed=bool(config.run.resume)) if main else None
    if writer is not None:
        if display != "none":
            print(f"{'resuming' if config.run.resume else 'run'} {run_dir}: {settings_line}")
        if config.run.tensorboard and writer.tensorboard is None:  # the package is optional: say so, once
            print("warning: tensorboard=true, but the tensorboard package is not installed: no TensorBoard event "
                  "files. Install it with `pip install tensorboard` (or `pip install 'resnetlab[tensorboard]'`), "
                  "or set tensorboard=false")
        if not config.run.resume:
            _write_skipped(run_dir, data.skipped)
            for note in notes:
                print(f"weights from {config.model.weights}: {note}")
        trainer.checkpoint_minutes = config.run.checkpoint_minutes
    shown = make_progress((display if config.run.progress else "plain") if main else "none")
    trainer.callbacks = [ProgressCallback(shown), *([writer] if writer is not None else []), *callbacks]
    started = time.perf_counter()
    try:
        history = trainer.run()
    except (TrainingError, FileWriteError) as exc:  # say what the run folder holds, which the loop does not know
        if writer is None:
            raise
        raise type(exc)(f"{exc}. {writer.describe_checkpoints()}") from None
    seconds = time.perf_counter() - started
    if trainer.state.stop_reason and not trainer.state.done:
        return TrainResult(run_dir if main else None, history, writer and writer.best_path,
                           writer and writer.last_path, info, None, stopped=trainer.state.stop_reason)
    if not main:
        barrier(distributed)
        return TrainResult(None, history, None, None, info, None)
    result = _finish(config, data, writer, history, seconds, device, trainer)
    barrier(distributed)
    return result


def _finish(config: Config, data: DatasetSplits, writer: RunWriter, history: History, seconds: float,
            device: torch.device, trainer: Trainer) -> TrainResult:
    """Evaluate the best model on the test split (fp32, as `predict` runs it, or as training ran: test_precision)
    and write results.json."""
    best_model, best_info = load_model(writer.best_path, device=device)
    test = None
    if data.test is not None:
        same = config.run.test_precision == "train"
        inference = Inference(trainer.precision.dtype if same else None, same and trainer.precision.channels_last,
                              tta=config.run.tta)
        test = evaluate_model(best_model, data.test, best_info, device=device, workers=config.data.workers,
                              inference=inference)
        best_info.training.update(test_accuracy=test.accuracy, test_loss=test.loss, test_top5=test.top5,
                                  test_tta=config.run.tta, test_precision=trainer.precision.name if same else "fp32")
        save_model(writer.best_path, best_model, best_info)  # the model file records its test result too
    best_epoch = writer.best_epoch
    best_row = history.rows[best_epoch - 1] if 0 < best_epoch <= len(history.rows) else None
    results = {"run_dir": str(writer.run_dir), "best_epoch": best_epoch, "train_seconds": round(seconds, 2),
               "device": str(device), "precision": trainer.precision.name, "steps": trainer.state.step,
               "val_accuracy": best_row.val_accuracy if best_row else None,
               "test": test.to_dict() if test is not None else None, "skipped_files": len(data.skipped),
               "stopped_early": trainer.state.stop_reason}
    (writer.run_dir / "results.json").write_text(json.dumps(results, indent=2))
    return TrainResult(writer.run_dir, history, writer.best_path, writer.last_path, best_info, test)
