"""Parameter and FLOP counts of registered models, measured on the meta device (no memory, no compute)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..registry import create_model, get_model_entry


@dataclass(frozen=True)
class ModelStats:
    name: str
    family: str
    paper: str
    params: int
    input_size: tuple[int, int, int]  # (C, H, W) the FLOPs are counted at
    flops: int | None  # per image, a multiply-add counted as 2 FLOPs


def count_flops(model: torch.nn.Module, input_size: tuple[int, int, int]) -> int:
    """FLOPs of one forward pass of one image (convolutions and matrix products, as torch counts them)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros((1, *input_size), device=device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def model_stats(name: str, *, flops: bool = True, **options) -> ModelStats:
    """Parameters and FLOPs of `name` at its default class count and input size."""
    entry = get_model_entry(name)
    with torch.device("meta"):
        model = create_model(name, **options)
    params = sum(p.numel() for p in model.parameters())
    input_size = tuple(model.default_input_size)
    return ModelStats(name, entry.family, entry.paper, params, input_size,
                      count_flops(model, input_size) if flops else None)
