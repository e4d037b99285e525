"""A Keras-style facade over the library: compile, fit, evaluate, predict, save, load.

    clf = resnetlab.Classifier("resnet20", num_classes=10, input_shape=(28, 28, 3))
    clf.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = clf.fit(X_train, y_train, epochs=10, batch_size=32, validation_data=(X_val, y_val))
    loss, accuracy = clf.evaluate(X_test, y_test)   # or return_dict=True: {"loss": ..., "accuracy": ...}
    clf.predict(X_test)            # probabilities [N, classes]
    clf.save("model.h5"); clf2 = resnetlab.load("model.h5")

Keras' defaults and compile arguments are keras/settings.py's; arrays go through `data.arrays` (the
validation split too), training through `training.loop.Trainer` (Keras' callbacks through one training
Callback, keras/hooks.py), metrics through `analysis`, files through `checkpoint`: the code the CLI calls.
What is left here is Keras' API itself and the state a Classifier carries between calls (the optimizer
and the lr callbacks changed).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..analysis.evaluation import compute_metrics
from ..analysis.report import EvaluationReport, tensor_images
from ..checkpoint import load_model, save_model
from ..data.arrays import (
    arrays_to_imageset,
    as_image_batch,
    encode_labels,
    label_count,
)
from ..data.augment import Augment
from ..data.dataset import ImageSet
from ..data.sample import normalized_sample
from ..data.stats import channel_stats
from ..deploy.predict import Predictor
from ..device import resolve_device
from ..info import ModelInfo
from ..models.summary import layer_table
from ..registry import create_model
from ..runtime import batched_logits
from ..training.loop import Trainer
from ..training.optim import base_lr, build_optimizer
from ..training.progress import ProgressCallback, make_progress
from ..training.run import call_seed
from . import optimizers
from .batch import BatchCalls
from .callbacks import Callback
from .history import History
from .hooks import KerasCallbacks
from .inputs import check_fit_arguments, first_batches, fit_loader, fit_splits, gather, gather_images, item_batches
from .metrics import KerasMetrics, evaluation_logs, keras_line, needs_counts, weighted_names
from .settings import (
    DEFAULT_BATCH_SIZE,
    EVAL_BATCH_SIZE,
    check_optimizer,
    class_weight_tensor,
    compiled_settings,
    default_compiled,
    input_shape_to_chw,
)
from .stream import RanOutOfData, open_stream
from .weights import WeightCalls


class Classifier(BatchCalls, WeightCalls):
    """An image classifier with Keras' workflow on NumPy arrays (NHWC) or torch tensors (NCHW).

    Args:
        model: a registered architecture name (`resnetlab.list_models()`) or a model from `create_model`.
        num_classes: number of classes; inferred from the labels at the first `fit` when omitted.
        input_shape: (height, width, channels); inferred from the images at the first `fit` when omitted.
        class_names: names for the class indices, stored in saved files.
        weights: start from published weights (Keras applications' `weights="imagenet"`): a name from
            `resnetlab.list_weights(model)`, "hf-hub:ORG/NAME", or a weights file. A `num_classes` other
            than the weights' replaces the classifier with a fresh one; inputs are normalized as the weights
            expect (their mean/std), not by the first fit's statistics. Without `num_classes` the model
            keeps the weights' classes (ImageNet's 1,000).
        device: auto | cpu | cuda | mps.
        model_options: architecture options such as `stem="small"` or `drop_path_rate=0.1`.
    """

    def __init__(self, model: str | nn.Module = "resnet20", *, num_classes: int | None = None,
                 input_shape: tuple[int, ...] | None = None, class_names: list[str] | None = None,
                 weights: str | None = None, device: str = "auto", seed: int = 0, **model_options: Any):
        self.device = resolve_device(device)
        self._weights = weights
        self._size_open = False  # True: the input size comes from the first fit (pretrained, no input_shape)
        self.seed = seed
        self.model: nn.Module | None = None
        self.info: ModelInfo | None = None
        self._arch = model
        self._options = model_options
        self._class_names = list(class_names) if class_names is not None else None
        self._measure_stats = True  # the first fit sets mean/std from its training images
        self._compiled = default_compiled()
        self._fits = 0  # fit calls so far: each gets its own shuffling and augmentation draws
        self._trainer: Trainer | None = None  # during fit: the loop the callbacks act on
        self.stop_training = False  # a callback sets it to end fit after the current epoch (as in Keras)
        self.history: History | None = None  # the last fit's
        if weights is not None and isinstance(model, nn.Module):
            raise ValueError("weights= applies to an architecture name; a model instance already has its weights")
        if weights is not None:
            self._build_pretrained(num_classes, input_shape_to_chw(input_shape) if input_shape else None)
        elif isinstance(model, nn.Module):
            if not hasattr(model, "arch"):
                raise ValueError("pass a model built by resnetlab.create_model, or an architecture name")
            shape = input_shape_to_chw(input_shape) if input_shape else model.default_input_size
            self._attach(model, shape)
        elif num_classes is not None and input_shape is not None:
            self._build(num_classes, input_shape_to_chw(input_shape))
        elif class_names is not None and input_shape is not None:
            self._build(len(class_names), input_shape_to_chw(input_shape))
        else:
            self._pending = (num_classes, input_shape_to_chw(input_shape) if input_shape else None)

    # --- building ----------------------------------------------------------------------------

    def _build(self, num_classes: int, shape: tuple[int, int, int]) -> None:
        torch.manual_seed(self.seed)
        model = create_model(self._arch, num_classes=num_classes, in_chans=shape[0], img_size=shape[1],
                             **self._options)
        self._attach(model, shape)

    def _build_pretrained(self, num_classes: int | None, shape: tuple[int, int, int] | None) -> None:
        """The architecture with published weights, normalized as they were trained (their mean/std)."""
        from ..weights import pretrained_model

        if num_classes is None and self._class_names is not None:
            num_classes = len(self._class_names)
        torch.manual_seed(self.seed)  # a replaced classifier starts from the same draw every time
        model, info, notes = pretrained_model(self._arch, self._weights, num_classes=num_classes,
                                              in_chans=shape[0] if shape else None,
                                              img_size=shape[1] if shape else None, **self._options)
        for note in notes:
            print(f"weights {self._weights}: {note}")
        self.model = model.to(self.device)
        self.info = replace(info, class_names=self._class_names or info.class_names,
                            input_size=shape or info.input_size)
        self._measure_stats = False
        self._size_open = shape is None  # a ResNet takes any size: fit on 32x32 arrays keeps 32x32

    def _attach(self, model: nn.Module, shape: tuple[int, int, int]) -> None:
        names = self._class_names or [str(i) for i in range(model.arch.num_classes)]
        # Until `fit` measures the training data, pixels go in as 0..1 (mean 0, std 1).
        self.info = ModelInfo(arch=model.arch, class_names=names, input_size=shape,
                              mean=(0.0,) * shape[0], std=(1.0,) * shape[0])
        self.model = model.to(self.device)

    def _ensure_built(self, x: Any, y: Any) -> None:
        if self.model is not None:
            if self._size_open:  # pretrained weights without input_shape: the first data decides the size
                probe = arrays_to_imageset(x, y)
                if probe.image_shape[0] == self.info.input_size[0] and self.model.arch.name != "tutorial_cnn":
                    self.info = replace(self.info, input_size=probe.image_shape)
                self._size_open = False
            return
        num_classes, shape = self._pending
        probe = arrays_to_imageset(x, y)
        shape = shape or probe.image_shape
        if num_classes is None:  # the class names say it; else the labels (the first fit's may lack the top class)
            num_classes = len(self._class_names) if self._class_names is not None else label_count(y)
        self._build(num_classes, shape)

    # --- Keras API ---------------------------------------------------------------------------

    def compile(self, optimizer: str | torch.optim.Optimizer | optimizers.Optimizer = "adam",
                loss: str | Callable = "sparse_categorical_crossentropy",
                metrics: list[str] | tuple[str, ...] = ("accuracy",), *, learning_rate: float | None = None,
                weight_decay: float = 0.0, momentum: float | None = None, label_smoothing: float = 0.0,
                schedule: str = "constant", weighted_metrics: list[str] | tuple[str, ...] = (),
                precision: str = "auto") -> None:
        """Choose the optimizer (name or a torch.optim instance over `self.model`), loss and metrics (Keras'
        names, keras/settings.py METRICS; `weighted_metrics` are weighted by sample_weight). `precision`:
        training arithmetic, auto (bf16 where the device is fast at it), fp32, bf16 or fp16."""
        if isinstance(optimizer, torch.optim.Optimizer):
            check_optimizer(self.model, optimizer)
        self._compiled = compiled_settings(optimizer, loss, metrics, learning_rate=learning_rate,
                                           weight_decay=weight_decay, momentum=momentum,
                                           label_smoothing=label_smoothing, schedule=schedule,
                                           weighted_metrics=weighted_metrics, precision=precision)

    def _labels(self, y: Any, name: str) -> Any:
        """String labels as indices: the classes are learned from the first ones and kept in saved files."""
        y, names = encode_labels(y, self._class_names, self.info.num_classes if self.info else None, name)
        if names is not None and names != self._class_names:
            self._class_names = names
            self.info = replace(self.info, class_names=names) if self.info is not None else None
        return y

    def _imageset(self, x: Any, y: Any, names: tuple[str, str]) -> ImageSet:
        return arrays_to_imageset(x, y, expected=self.info.input_size, num_classes=self.info.num_classes, names=names)

    def fit(self, x: Any, y: Any = None, *, epochs: int = 1, batch_size: int | None = None,
            validation_data: tuple[Any, ...] | None = None, validation_split: float = 0.0, shuffle: bool = True,
            verbose: int | str = "auto", class_weight: dict[int, float] | None = None, sample_weight: Any = None,
            callbacks: Sequence[Callback] | None = None, augment: Augment | None = None, initial_epoch: int = 0,
            steps_per_epoch: int | None = None, validation_steps: int | None = None,
            validation_batch_size: int | None = None, validation_freq: int = 1) -> History:
        """Train on images `x` and labels `y`; return a History (`history.history["val_accuracy"]`...).

        `class_weight` ({class index: weight}, others 1) weights each image's loss by its class, as Keras
        does; the batch loss is the weighted mean (PyTorch's CrossEntropyLoss(weight=)). `sample_weight` (one
        weight per image; validation_data may carry a third item, its own) makes the loss Keras' sum(weight x
        loss) / batch size and weights compile's weighted_metrics, not its metrics. `callbacks` are
        those of `resnetlab.callbacks` (EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, ... as in Keras).
        Each call continues training with fresh shuffling and augmentation (a loop of fit(..., epochs=1) sees
        new orders), from the optimizer state and lr the last call left. `initial_epoch` (from 0) resumes the
        count as in Keras: epochs initial_epoch+1 .. epochs are trained, and History and callbacks number them so.
        `x` may also be a DataLoader (a pass per epoch, its own shuffling) or a generator of (x, y[, weights])
        batches with steps_per_epoch (that many more each epoch, as Keras), read as training goes; a torch
        Dataset of (image, label) items, a finite generator, a folder of class folders or a dataset name are
        read into memory once. `steps_per_epoch` ends each epoch after that many batches (of arrays: of a
        fresh shuffle; of a DataLoader: the next ones, a new pass when one ends); `validation_steps` and
        `validation_batch_size` (default batch_size) validate on the first batches only; `validation_freq`
        validates every that many epochs (the val_ lists are shorter, as in Keras)."""
        seed, x = call_seed(self.seed, self._fits), item_batches(x, batch_size)
        stream = open_stream(self, x, y, steps=steps_per_epoch, augment=augment, seed=seed,
                             sample_weight=sample_weight, validation_split=validation_split)
        if stream is not None:  # a DataLoader or generator read as training goes: its first batches build
            x, y, sample_weight = stream.peek()
        elif y is None:  # a Dataset, finite generator, folder or name: read into memory (arrays need y)
            x, y, sample_weight = gather(x, None, sample_weight, steps=steps_per_epoch)
        if validation_data is not None and not isinstance(validation_data, (tuple, list)):  # a Dataset, ...
            validation_data = gather(validation_data, None, None, steps=validation_steps, name="validation_data")
            validation_data = validation_data if validation_data[2] is not None else validation_data[:2]
        batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
        check_fit_arguments(epochs=epochs, batch_size=batch_size, validation_split=validation_split,
                            initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch,
                            validation_steps=validation_steps, validation_freq=validation_freq)
        train, val = fit_splits(self, x, y, sample_weight=sample_weight, validation_data=validation_data,
                                validation_split=validation_split, names=stream.peeked if stream else ("x", "y"))
        val = first_batches(val, None, validation_steps, validation_batch_size or batch_size)[0]
        if self._measure_stats:  # first fit: normalize with the training data's statistics, from now on
            mean, std = channel_stats(train)
            self.info = replace(self.info, mean=mean, std=std)
            self._measure_stats = False
            if self.model.init_images:  # a data-dependent initialisation (resnet9_airbench's whitening), as train's
                self.model.init_from_data(normalized_sample(train, self.info, self.model.init_images, seed=self.seed))
        cfg = replace(self._compiled.train, epochs=epochs, batch_size=batch_size)
        loader = fit_loader(self, train, stream, batch_size=batch_size, shuffle=shuffle, augment=augment, seed=seed,
                            steps_per_epoch=steps_per_epoch)
        progress = {0: "none", 2: "plain"}.get(verbose, "auto") if verbose != "auto" else "auto"
        compiled = self._compiled
        if compiled.optimizer is None:  # built once, so Adam's moments carry over between fit calls
            compiled.optimizer = compiled.spec.build(self.model) if compiled.spec else build_optimizer(self.model, cfg)
        weights = class_weight_tensor(class_weight, self.info.num_classes)
        trainer = Trainer(self.model, self.info, loader, cfg, val_data=val, optimizer=compiled.optimizer,
                          class_weight=weights, criterion=compiled.loss_fn,
                          class_counts=needs_counts(compiled.metrics, compiled.weighted_metrics))
        history = History(trainer.history, compiled.metrics, model=self,
                          weighted=weighted_names(compiled.metrics, compiled.weighted_metrics))
        history.params = {"epochs": epochs, "steps": len(loader), "verbose": verbose,
                          "metrics": history.keys(val is not None)}
        keras_callbacks = KerasCallbacks(callbacks or (), self, history)
        trainer.callbacks = [compiled.lr_scale, ProgressCallback(make_progress(progress)),
                             KerasMetrics(history, self.info.class_names), keras_callbacks,
                             *([RanOutOfData(stream, epochs)] if stream is not None else [])]
        trainer.state.epoch = initial_epoch + 1  # 1-based in the loop
        trainer.validate_every = validation_freq
        self.stop_training, self._trainer = False, trainer
        try:
            trainer.run()
        finally:
            self._trainer = None
        self.history = history
        self._fits += 1
        epochs_done = len(history.epoch)  # fewer when stopped early (by a callback, even inside the first epoch)
        samples = len(train) if stream is None else loader.num_samples  # a stream's: its last epoch's images
        self.info.training = {"samples": samples, "epochs": self.info.training.get("epochs", 0) + epochs_done,
                              **history.latest()}
        return history

    @property
    def learning_rate(self) -> float:
        """The lr at full scale: during fit the one the steps use now, between fits the one the next fit's
        schedule is based at (where a constant schedule stays)."""
        if self._trainer is not None:
            return self._trainer.lr
        compiled = self._compiled
        if compiled.lr_scale.pending is not None:
            return compiled.lr_scale.pending
        base = base_lr(compiled.optimizer) if compiled.optimizer is not None else compiled.train.lr
        return base * compiled.lr_scale.factor

    @learning_rate.setter
    def learning_rate(self, lr: float) -> None:
        """Keras' `optimizer.learning_rate = lr`: the steps from here on run at `lr` (a compiled schedule is
        scaled to pass through it)."""
        if not (isinstance(lr, (int, float, np.floating, np.integer)) and math.isfinite(lr) and lr >= 0):
            raise ValueError(f"learning_rate must be a finite number >= 0, got {lr!r}")
        if self._trainer is not None:
            self._compiled.lr_scale.scale_to(self._trainer, float(lr))
        else:
            self._compiled.lr_scale.pending = float(lr)

    def evaluate(self, x: Any, y: Any = None, *, batch_size: int | None = None, verbose: int | str = "auto",
                 sample_weight: Any = None, steps: int | None = None, return_dict: bool = False,
                 report_dir: str | Path | None = None) -> float | list[float] | dict[str, float]:
        """The loss and the compiled metrics on images `x`, labels `y`, as Keras returns them: a list
        [loss, accuracy, ...] in the order given to compile (the loss alone without metrics), or with
        `return_dict=True` a dict keyed by those names ({"loss": ..., "accuracy": ...}).

        `sample_weight` (one weight per image) weights the loss and compile's `weighted_metrics`, as in Keras;
        `steps` evaluates the first `steps` batches only. `verbose` 1 or "auto" prints Keras' closing line
        (batches, seconds, each result), 0 nothing. With `report_dir`, also write the full evaluation report
        there (metrics.json, plots, predictions.csv, report.html).
        """
        self._require_model()
        started = time.perf_counter()
        x, y, sample_weight = gather(x, y, sample_weight, steps=steps)  # fit's inputs too (datasets, folders...)
        batch_size = EVAL_BATCH_SIZE if batch_size is None else batch_size
        data = self._imageset(x, self._labels(y, "y"), ("x", "y"))
        if steps is not None:
            data, sample_weight = first_batches(data, sample_weight, steps, batch_size)
        logits = batched_logits(self.model, data.images, self.info, device=self.device, batch_size=batch_size)
        result = compute_metrics(logits, data.labels, self.info.class_names)
        if report_dir is not None:
            EvaluationReport(result, self.info, f"Classifier({self.info.arch.name})", "arrays", "given", "none",
                             "model", [f"index {i}" for i in range(len(data))], tensor_images(data.images)
                             ).write(report_dir)
        out = evaluation_logs(result, self._compiled, sample_weight, logits)
        if verbose not in (0, "0"):
            print(keras_line(math.ceil(len(data) / batch_size), time.perf_counter() - started, out))
        if return_dict:
            return out
        return list(out.values()) if len(out) > 1 else out["loss"]

    def predict(self, x: Any, *, batch_size: int | None = None, verbose: int | str = "auto",
                steps: int | None = None) -> np.ndarray:
        """Class probabilities float32 [N, num_classes] for a batch, one image (HWC or CHW, or a PIL image), or
        image files (a path or a list of paths). `steps`: only the first `steps` batches; `verbose` 1 or
        "auto" prints Keras' closing line (batches and time), 0 nothing."""
        self._require_model()
        started = time.perf_counter()
        batch_size = EVAL_BATCH_SIZE if batch_size is None else batch_size
        training = self.model.training
        try:  # the model as it is now (it may be mid-training): no export, no backend measurement
            predictor = Predictor(self.model, self.info, device=self.device, backend="torch", batch_size=batch_size)
            pixels = as_image_batch(gather_images(x, steps), self.info.input_size,
                                    interpolation=self.info.interpolation, crop_pct=self.info.crop_pct)
            if steps is not None:
                pixels = first_batches(pixels, None, steps, batch_size)[0]
            probs = torch.softmax(predictor.logits(pixels), dim=1).numpy()
        finally:
            self.model.train(training)  # the Predictor switched it to eval mode
        if verbose not in (0, "0"):
            print(keras_line(math.ceil(len(probs) / batch_size), time.perf_counter() - started, {}))
        return probs

    def save(self, path: str | Path) -> Path:
        """Write a model file: `.h5` (HDF5, as in the Keras tutorial) or `.safetensors`."""
        self._require_model()
        return save_model(path, self.model, self.info)

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto") -> Classifier:
        """Read a model file written by `save` or by `resnetlab train` (either format)."""
        model, info = load_model(path)
        clf = cls(model, input_shape=(info.input_size[1], info.input_size[2], info.input_size[0]),
                  class_names=info.class_names, device=device)
        clf.info, clf._measure_stats = info, False
        return clf

    def summary(self, print_fn: Callable[[str], Any] | None = None, depth: int = 2) -> None:
        """Print Keras' table: each layer (to `depth` levels), its output shape and parameters, then the totals
        (trainable and not: BatchNorm statistics count as non-trainable, as in Keras).

        Returns None, as Keras' `summary()` does; `print_fn` is called with each line instead of `print`
        (`print_fn=lines.append` keeps the text).
        """
        self._require_model()
        c, h, w = self.info.input_size
        for line in [*layer_table(self.model, (c, h, w), depth), f"Input: ({h}, {w}, {c}), "
                     f"{self.info.num_classes} classes"]:
            (print_fn or print)(line)

    def _require_model(self) -> None:
        if self.model is None:
            raise ValueError("the model is not built yet: call fit first, or give num_classes and input_shape")


def load(path: str | Path, *, device: str = "auto") -> Classifier:
    """Read a model file (safetensors or HDF5, told apart by content) as a Classifier."""
    return Classifier.load(path, device=device)
