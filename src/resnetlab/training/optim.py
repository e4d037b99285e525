"""Optimizers by name, parameter groups, per-iteration learning-rate schedules, class weights."""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn

from ..config import OptimizerName, ScheduleName, TrainConfig
from ..errors import ConfigError, UserError, did_you_mean

OPTIMIZERS = typing.get_args(OptimizerName)
SCHEDULES = typing.get_args(ScheduleName)
Schedule = Callable[[int], float]  # iteration -> multiplier of the peak learning rate
ONECYCLE_START = 1 / 25  # onecycle starts at lr / 25 (Smith & Topin 2018; torch's OneCycleLR div_factor)


def head_parameters(model: nn.Module) -> set[int]:
    """ids of the classifier's parameters (`get_classifier()`, the layer `reset_classifier` replaces);
    none for a model without that interface or with num_classes=0."""
    get_classifier = getattr(model, "get_classifier", None)
    return {id(p) for p in get_classifier().parameters()} if callable(get_classifier) else set()


NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def norm_biases(model: nn.Module) -> set[int]:
    """ids of the norm layers' biases (the shifts of BatchNorm, GroupNorm and LayerNorm)."""
    return {id(m.bias) for m in model.modules() if isinstance(m, NORM_LAYERS) and m.bias is not None}


def param_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool,
                 backbone_lr_scale: float = 1.0, norm_bias_lr_scale: float = 1.0) -> list[dict]:
    """Parameter groups by (backbone or head) x (decayed or not) x (norm bias or not).

    Norm scales/shifts and biases (1-D parameters) get no weight decay unless asked (timm's default).
    Each group carries `lr_scale`, the share of the scheduled lr it trains at: `backbone_lr_scale`
    for everything but the classifier, 1 for the classifier, times `norm_bias_lr_scale` for norm biases,
    whose weight decay is divided by as much: torch multiplies the decay by the lr, and the multiplier is
    meant for the biases' steps, not their decay (airbench's bias_scaler).
    """
    head, shifts = head_parameters(model), norm_biases(model) if norm_bias_lr_scale != 1.0 else set()
    groups: dict[tuple[bool, bool, bool], list[nn.Parameter]] = {}
    for param in model.parameters():
        decayed = weight_decay > 0 and (decay_norm_and_bias or param.ndim > 1)
        groups.setdefault((id(param) in head, decayed, id(param) in shifts), []).append(param)
    result = []
    for (is_head, decayed, is_shift), params in groups.items():
        scale = (1.0 if is_head else backbone_lr_scale) * (norm_bias_lr_scale if is_shift else 1.0)
        decay = weight_decay / (norm_bias_lr_scale if is_shift else 1.0) if decayed else 0.0
        result.append({"params": params, "weight_decay": decay, "lr_scale": scale, "is_head": is_head})
    return result


def torch_sgd_hyperparameters(cfg: TrainConfig) -> tuple[float, float]:
    """(lr, weight_decay) for torch's SGD on the mean loss of `cfg.batch_size` images.

    decoupled=true reads cfg.lr and cfg.weight_decay in airbench94's units (Jordan 2024, its `train`): with
    kilostep = 1024 (1 + 1/(1 - momentum)), airbench sums the loss and steps lr / kilostep, so on the mean
    loss the step is lr x batch / kilostep; it decays by weight_decay x batch / kilostep per step, which torch
    (decay x lr per step) gets from weight_decay / lr."""
    if not cfg.decoupled:
        return cfg.lr, cfg.weight_decay
    kilostep = 1024 * (1 + 1 / (1 - cfg.momentum))
    return cfg.lr * cfg.batch_size / kilostep, cfg.weight_decay / cfg.lr


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Create the optimizer named by `cfg.optimizer` over all of `model`'s parameters."""
    name = cfg.optimizer.lower()
    lr, weight_decay = torch_sgd_hyperparameters(cfg) if name == "sgd" else (cfg.lr, cfg.weight_decay)
    groups = param_groups(model, weight_decay, cfg.decay_norm_and_bias, cfg.backbone_lr_scale,
                          cfg.norm_bias_lr_scale)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))
    # Keras 3's defaults: rho 0.9, epsilon 1e-7, Adagrad's initial accumulator 0.1 (torch's: 0.99, 1e-8, 0). The
    # update is torch's; where exactly epsilon enters may differ from Keras' kernels, which matters only near 0
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr, alpha=0.9, eps=1e-7, momentum=cfg.momentum)
    if name == "nadam":
        return torch.optim.NAdam(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999), eps=1e-7)
    if name == "adagrad":
        return torch.optim.Adagrad(groups, lr=cfg.lr, initial_accumulator_value=0.1, eps=1e-7)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}{did_you_mean(name, OPTIMIZERS)}; "
                      f"choose one of {', '.join(OPTIMIZERS)}")


def cycles(cfg: TrainConfig, steps_per_epoch: int, total_steps: int) -> list[tuple[int, int]]:
    """The schedule's cycles as (first step, end step): one for the run, or split at restart_epochs."""
    bounds = [0, *(int(round(r * steps_per_epoch)) for r in cfg.restart_epochs), cfg.epochs * steps_per_epoch]
    pairs = [(a, min(b, total_steps)) for a, b in zip(bounds, bounds[1:]) if a < min(b, total_steps)]
    return pairs or [(0, max(1, total_steps))]


def build_schedule(cfg: TrainConfig, steps_per_epoch: int, total_steps: int | None = None) -> Schedule:
    """Return iteration -> lr multiplier: linear warm-up, then cosine, onecycle, step, multistep or constant.

    onecycle (Smith & Topin 2018, as airbench uses it) rises linearly from lr x start_lr_factor (default
    1/25) over the warm-up (warmup_epochs, default 25% of training) and falls linearly to lr x end_lr_factor
    (default 0) at the end: airbench94's triangle is start 0.2, peak at 23%, end 0.07. With restart_epochs,
    each cycle is that schedule over the cycle's steps, its warm-up the same share of them.
    """
    if cfg.schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {cfg.schedule!r}{did_you_mean(cfg.schedule, SCHEDULES)}; choose one of "
                          f"{', '.join(SCHEDULES)}")
    total = total_steps or cfg.epochs * steps_per_epoch
    if cfg.restart_epochs:
        one = replace(cfg, restart_epochs=[], epochs=1, warmup_epochs=cfg.warmup_epochs / cfg.epochs)
        parts = [(a, build_schedule(one, b - a)) for a, b in cycles(cfg, steps_per_epoch, total)]

        def restarted(step: int) -> float:
            start, part = next((a, f) for a, f in reversed(parts) if step >= a)
            return part(step - start)
        return restarted
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    if cfg.schedule == "onecycle" and not warmup:
        warmup = int(round(0.25 * total))
    milestones = sorted(cfg.milestones) or [cfg.epochs // 2, (cfg.epochs * 3) // 4]
    milestone_steps = sorted(cfg.milestone_steps) or [m * steps_per_epoch for m in milestones]

    def after_warmup(step: int) -> float:
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if cfg.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if cfg.schedule == "onecycle":
            return 1.0 - (1.0 - cfg.end_lr_factor) * progress
        if cfg.schedule == "step":
            return cfg.gamma ** int(step / steps_per_epoch // cfg.step_size)
        if cfg.schedule == "multistep":
            return cfg.gamma ** sum(step >= m for m in milestone_steps)
        return 1.0

    def schedule(step: int) -> float:
        if step < warmup:
            start = 0.0 if cfg.schedule != "onecycle" else \
                ONECYCLE_START if cfg.start_lr_factor is None else cfg.start_lr_factor
            return start + (1.0 - start) * (step + 1) / warmup
        return after_warmup(step)

    return schedule


def set_lr(optimizer: torch.optim.Optimizer, multiplier: float, *, absolute: float | None = None) -> float:
    """Set each group's lr to initial lr x multiplier x its lr_scale (or to `absolute` x lr_scale).

    Returns the lr to report (`reported_lr`).
    """
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
        base = group["initial_lr"] * multiplier if absolute is None else absolute
        group["lr"] = base * group.get("lr_scale", 1.0)
    return reported_lr(optimizer)


def _full_scale_group(optimizer: torch.optim.Optimizer) -> dict:
    """The first group trained at full scale: fine-tuning's backbone group comes first and runs at
    backbone_lr_scale, so group 0 would under-report."""
    groups = optimizer.param_groups
    return next((g for g in groups if g.get("lr_scale", 1.0) == 1.0), groups[0])


def reported_lr(optimizer: torch.optim.Optimizer) -> float:
    """The lr the latest step used, at full scale."""
    return _full_scale_group(optimizer)["lr"]


def base_lr(optimizer: torch.optim.Optimizer) -> float:
    """The lr a schedule multiplier of 1 gives, at full scale (`set_lr`'s initial lr)."""
    group = _full_scale_group(optimizer)
    return group.get("initial_lr", group["lr"]) * group.get("lr_scale", 1.0)


def class_weights(cfg: TrainConfig, labels: torch.Tensor, num_classes: int) -> torch.Tensor | None:
    """Loss weights per class: explicit `class_weights`, or "balanced" N / (K * count_k) (scikit-learn's rule)."""
    if cfg.class_weights:
        if len(cfg.class_weights) != num_classes:
            raise ConfigError(f"class_weights has {len(cfg.class_weights)} values for {num_classes} classes")
        return torch.tensor(cfg.class_weights, dtype=torch.float32)
    if cfg.class_weight == "balanced":
        counts = torch.bincount(labels, minlength=num_classes).float()
        if (counts == 0).any():
            missing = (counts == 0).nonzero().flatten().tolist()
            raise ConfigError(f"class_weight=balanced: classes {missing} have no training images")
        return len(labels) / (num_classes * counts)
    return None


def whiten_bias(model: nn.Module) -> nn.Parameter:
    """The bias of the model's whitening stem (`model.whiten_bias()`, resnet9 with stem=whiten)."""
    found = getattr(model, "whiten_bias", None)
    bias = found() if callable(found) else None
    if bias is None:
        raise UserError(f"whiten_bias_epochs trains the bias of a whitening stem, which this "
                        f"{type(model).__name__} does not have; use a model with stem=whiten (resnet9_airbench) "
                        "or set whiten_bias_epochs=0")
    return bias
