"""Keras' defaults and `compile` arguments, stated once, turned into the library's typed TrainConfig.

Keras 3's defaults for the same things: Adam at 1e-3, SGD at 0.01 without momentum, a constant lr, no
weight decay, batch 32 for fit. The names `compile` accepts for losses and metrics map to what the loop
computes; everything else is checked by the library's own config (ranges, "did you mean").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..config import TrainConfig, load_config
from ..errors import did_you_mean
from ..training.lr_scale import LrScale
from .optimizers import Optimizer as KerasOptimizer
from .optimizers import torch_optimizer_name

LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy", "cross_entropy")
# compile's metric names (Keras' strings, and its class names) -> the kind analysis/metrics.py computes
METRICS = {"accuracy": "accuracy", "acc": "accuracy", "sparse_categorical_accuracy": "accuracy",
           "categorical_accuracy": "accuracy", "top5": "top5", "top_5_accuracy": "top5",
           "sparse_top_k_categorical_accuracy": "top5", "top_k_categorical_accuracy": "top5",
           "precision": "precision", "Precision": "precision", "recall": "recall", "Recall": "recall",
           "f1_score": "f1", "F1Score": "f1", "f1": "f1", "auc": "auc", "AUC": "auc",
           "per_class_accuracy": "per_class"}
LOOP_KINDS = ("accuracy", "top5")  # what the training loop itself sums per epoch (the rest: keras/metrics.py)
# Keras 3's default learning rates for the same optimizers (keras.optimizers.*)
DEFAULT_LR = {"sgd": 0.01, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3, "nadam": 1e-3, "adagrad": 1e-3}
NO_MOMENTUM = ("sgd", "rmsprop")  # Keras' SGD and RMSprop default to momentum 0; Adam's and NAdam's beta1 is 0.9
DEFAULT_BATCH_SIZE = 32  # Keras' default for fit (batch_size=None)
EVAL_BATCH_SIZE = 256  # evaluate and predict: the results do not depend on it (eval mode), and larger is faster


@dataclass
class Compiled:
    """What `compile` decided, and the lr state a Classifier carries from one fit call to the next."""

    train: TrainConfig
    optimizer: torch.optim.Optimizer | None
    metrics: dict[str, str]  # the names given to compile (Keras keys results by them) -> their kind (METRICS)
    weighted_metrics: dict[str, str] = field(default_factory=dict)  # the same, weighted by sample_weight
    spec: KerasOptimizer | None = None  # a resnetlab.optimizers object: builds `optimizer` at the first fit
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None  # None: the built-in cross-entropy
    # callbacks' and `learning_rate`'s changes to the schedule, kept from one fit call to the next (its
    # `pending`: an lr set between fit calls, where the next fit starts)
    lr_scale: LrScale = field(default_factory=LrScale)


def default_compiled() -> Compiled:
    """What an uncompiled Classifier trains with: `compile()`'s defaults."""
    return compiled_settings()


def compiled_settings(optimizer: str | torch.optim.Optimizer | KerasOptimizer = "adam",
                      loss: str | Callable = "sparse_categorical_crossentropy",
                      metrics: list[str] | tuple[str, ...] = ("accuracy",), *, learning_rate: float | None = None,
                      weight_decay: float = 0.0, momentum: float | None = None, label_smoothing: float = 0.0,
                      schedule: str = "constant", weighted_metrics: list[str] | tuple[str, ...] = (),
                      precision: str = "auto") -> Compiled:
    """`compile`'s arguments checked and turned into settings (an optimizer instance is checked by the caller)."""
    loss_fn = None
    if isinstance(loss, torch.nn.CrossEntropyLoss) and loss.weight is None and loss.reduction == "mean" \
            and loss.ignore_index < 0:  # the built-in loss: its label smoothing becomes the setting
        label_smoothing = label_smoothing or loss.label_smoothing
    elif callable(loss):  # a torch loss module or a function (logits, targets) -> scalar, used as given
        loss_fn = loss
    elif loss not in LOSSES:
        raise ValueError(f"unsupported loss {loss!r}{did_you_mean(str(loss), LOSSES)}; use one of "
                         f"{', '.join(LOSSES)} (integer and one-hot labels both work with either), a torch loss "
                         "module, or a function (logits, targets) -> loss")
    unknown = [m for m in (*metrics, *weighted_metrics) if m not in METRICS]
    if unknown:
        raise ValueError(f"unsupported metric {unknown[0]!r}{did_you_mean(unknown[0], METRICS)}; use one of "
                         "accuracy, top_k_categorical_accuracy (top 5), precision, recall, f1_score, auc, "
                         "per_class_accuracy")
    instance, spec, given = None, None, {}
    if isinstance(optimizer, torch.optim.Optimizer):  # its own hyperparameters, recorded from its first group
        instance, name = optimizer, torch_optimizer_name(optimizer)
        group = optimizer.param_groups[0]
        given = {"lr": group["lr"], "weight_decay": group.get("weight_decay", 0.0),
                 "momentum": group.get("momentum", group.get("betas", (0.0,))[0]), "nesterov": group.get("nesterov")}
    elif isinstance(optimizer, KerasOptimizer):  # resnetlab.optimizers.SGD(learning_rate=...), as keras.optimizers
        spec, given = optimizer, optimizer.settings()
        name = given.pop("optimizer")
    else:
        name = str(optimizer).lower()
        if name not in DEFAULT_LR:
            raise ValueError(f"unknown optimizer {optimizer!r}{did_you_mean(name, DEFAULT_LR)}; use one of "
                             f"{', '.join(DEFAULT_LR)} or a torch.optim.Optimizer")
    if given and (learning_rate is not None or momentum is not None or weight_decay):
        raise ValueError("compile's learning_rate, momentum and weight_decay are for an optimizer given by name; "
                         "an optimizer object carries its own: set them on it")
    # The library's own typed checks ("did you mean", ranges); ConfigError is a ValueError.
    cfg = load_config(overrides={
        "optimizer": name, "lr": DEFAULT_LR[name] if learning_rate is None else learning_rate,
        "weight_decay": weight_decay, "momentum": momentum if momentum is not None else (
            0.0 if name in NO_MOMENTUM else 0.9),
        "nesterov": False, "label_smoothing": label_smoothing, "schedule": schedule, "precision": precision,
        "batch_size": DEFAULT_BATCH_SIZE, "epochs": 1, **{k: v for k, v in given.items() if v is not None}}).train
    return Compiled(cfg, instance, {m: METRICS[m] for m in metrics}, {m: METRICS[m] for m in weighted_metrics},
                    spec=spec, loss_fn=loss_fn)


def input_shape_to_chw(input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Keras' (height, width, channels), or (height, width) for grayscale -> (C, H, W)."""
    shape = tuple(int(v) for v in input_shape)
    if len(shape) == 2:
        return (1, *shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be (height, width, channels) as in Keras, got {input_shape}")
    height, width, channels = shape
    if channels > 4 and height <= 4:
        raise ValueError(f"input_shape is (height, width, channels) as in Keras; got {input_shape}, did you mean "
                         f"{(width, channels, height)}?")
    return channels, height, width


def class_weight_tensor(class_weight: dict[int, float] | None, num_classes: int) -> torch.Tensor | None:
    """Keras' {class index: weight} as a weight per class (1 for classes not named)."""
    if class_weight is None:
        return None
    unknown = [k for k in class_weight if not (isinstance(k, (int, np.integer)) and 0 <= k < num_classes)]
    if unknown:
        raise ValueError(f"class_weight has key {unknown[0]!r}; its keys must be class indices 0.."
                         f"{num_classes - 1}")
    return torch.tensor([float(class_weight.get(i, 1.0)) for i in range(num_classes)])


def check_optimizer(model: torch.nn.Module | None, optimizer: torch.optim.Optimizer) -> None:
    """An optimizer instance given to compile must hold this model's parameters and only them."""
    if model is None:
        raise ValueError("build the model first (give num_classes and input_shape) so the optimizer can be "
                         "created from clf.model.parameters()")
    own = {id(p) for p in model.parameters()}
    given = [p for group in optimizer.param_groups for p in group["params"]]
    if not given or any(id(p) not in own for p in given):
        raise ValueError("the optimizer holds parameters that are not this model's; build it from "
                         "clf.model.parameters()")
