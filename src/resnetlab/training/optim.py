"""Optimizers by name and per-iteration learning-rate schedules."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from ..config import TrainConfig
from ..errors import ConfigError, did_you_mean

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "step", "multistep", "constant")
Schedule = Callable[[int], float]  # iteration -> multiplier of the peak learning rate


def param_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool) -> list[dict]:
    """Split parameters into decayed weights and (unless asked) undecayed norm scales/shifts and biases."""
    if decay_norm_and_bias or weight_decay == 0:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": weight_decay}]
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)  # 1-D: BN weight/bias, conv/linear bias
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Create the optimizer named by `cfg.optimizer` over `model`'s trainable parameters."""
    name = cfg.optimizer.lower()
    groups = param_groups(model, cfg.weight_decay, cfg.decay_norm_and_bias)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}{did_you_mean(name, OPTIMIZERS)}; "
                      f"choose one of {', '.join(OPTIMIZERS)}")


def build_schedule(cfg: TrainConfig, steps_per_epoch: int) -> Schedule:
    """Return iteration -> lr multiplier: linear warm-up, then cosine, step, multistep or constant."""
    if cfg.schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {cfg.schedule!r}{did_you_mean(cfg.schedule, SCHEDULES)}; choose one of "
                          f"{', '.join(SCHEDULES)}")
    total = cfg.epochs * steps_per_epoch
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    milestones = sorted(cfg.milestones) or [cfg.epochs // 2, (cfg.epochs * 3) // 4]

    def after_warmup(step: int) -> float:
        epoch = step / steps_per_epoch  # fractional epochs, so decays land on the exact iteration
        if cfg.schedule == "cosine":
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        if cfg.schedule == "step":
            return cfg.gamma ** int(epoch // cfg.step_size)
        if cfg.schedule == "multistep":
            return cfg.gamma ** sum(epoch >= m for m in milestones)
        return 1.0

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return after_warmup(step)

    return schedule


def set_lr(optimizer: torch.optim.Optimizer, multiplier: float) -> float:
    """Set every group's lr to its initial lr times `multiplier`; return the first group's lr."""
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
        group["lr"] = group["initial_lr"] * multiplier
    return optimizer.param_groups[0]["lr"]
