"""Keras' defaults and `compile` arguments, stated once, turned into the library's typed TrainConfig.

Keras 3's defaults for the same things: Adam at 1e-3, SGD at 0.01 without momentum, a constant lr, no
weight decay, batch 32 for fit. The names `compile` accepts for losses and metrics map to what the loop
computes; everything else is checked by the library's own config (ranges, "did you mean").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..config import TrainConfig, load_config
from ..errors import did_you_mean
from ..training.lr_scale import LrScale

LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy", "cross_entropy")
METRICS = {"accuracy": "accuracy", "acc": "accuracy", "sparse_categorical_accuracy": "accuracy",
           "categorical_accuracy": "accuracy", "top5": "top5", "top_5_accuracy": "top5",
           "sparse_top_k_categorical_accuracy": "top5", "top_k_categorical_accuracy": "top5"}
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
    metrics: dict[str, str]  # the names given to compile (Keras keys results by them) -> accuracy | top5
    # callbacks' and `learning_rate`'s changes to the schedule, kept from one fit call to the next (its
    # `pending`: an lr set between fit calls, where the next fit starts)
    lr_scale: LrScale = field(default_factory=LrScale)


def default_compiled() -> Compiled:
    """What an uncompiled Classifier trains with: `compile()`'s defaults."""
    return compiled_settings()


def compiled_settings(optimizer: str | torch.optim.Optimizer = "adam", loss: str = "sparse_categorical_crossentropy",
                      metrics: list[str] | tuple[str, ...] = ("accuracy",), *, learning_rate: float | None = None,
                      weight_decay: float = 0.0, momentum: float | None = None, label_smoothing: float = 0.0,
                      schedule: str = "constant") -> Compiled:
    """`compile`'s arguments checked and turned into settings (an optimizer instance is checked by the caller)."""
    if loss not in LOSSES:
        raise ValueError(f"unsupported loss {loss!r}{did_you_mean(str(loss), LOSSES)}; use one of "
                         f"{', '.join(LOSSES)} (integer and one-hot labels both work with either)")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unsupported metric {unknown[0]!r}{did_you_mean(unknown[0], METRICS)}; use "
                         f"'accuracy' or 'top5'")
    instance = None
    if isinstance(optimizer, torch.optim.Optimizer):
        instance, name = optimizer, "sgd"
    else:
        name = str(optimizer).lower()
        if name not in DEFAULT_LR:
            raise ValueError(f"unknown optimizer {optimizer!r}{did_you_mean(name, DEFAULT_LR)}; use one of "
                             f"{', '.join(DEFAULT_LR)} or a torch.optim.Optimizer")
    # The library's own typed checks ("did you mean", ranges); ConfigError is a ValueError.
    cfg = load_config(overrides={
        "optimizer": name, "lr": DEFAULT_LR[name] if learning_rate is None else learning_rate,
        "weight_decay": weight_decay, "momentum": momentum if momentum is not None else (
            0.0 if name in NO_MOMENTUM else 0.9),
        "nesterov": False, "label_smoothing": label_smoothing, "schedule": schedule,
        "batch_size": DEFAULT_BATCH_SIZE, "epochs": 1}).train
    return Compiled(cfg, instance, {m: METRICS[m] for m in metrics})


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
