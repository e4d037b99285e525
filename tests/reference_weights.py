"""Deterministic synthetic weights and inputs, computed the same way with or without torchvision.

Used to check that our ImageNet ResNets compute exactly what torchvision's do: the fixture generator
(tests/fixtures/make_torchvision_fixtures.py, run once in an environment that has torchvision) loads
these weights into torchvision's models and records their logits; the tests load the same weights
into ours and compare. No RNG is involved, so torch/numpy versions cannot change the numbers.
"""

from __future__ import annotations

import math

import torch


def _wave(numel: int, phase: float) -> torch.Tensor:
    return torch.sin(torch.arange(numel, dtype=torch.float64) * 0.7351 + phase)


def synthetic_state_dict(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """A well-scaled state dict for the given key -> shape map (keys in state-dict order)."""
    state = {}
    for index, (key, shape) in enumerate(shapes.items()):
        numel = math.prod(shape)
        wave = _wave(numel, phase=index * 0.113)
        if key.endswith("num_batches_tracked"):
            tensor = torch.tensor(0, dtype=torch.int64)
        elif key.endswith("running_var"):
            tensor = (1.0 + 0.5 * wave.abs()).float().reshape(shape)
        elif key.endswith("running_mean") or key.endswith(".bias"):
            tensor = (0.1 * wave).float().reshape(shape)
        elif len(shape) == 1:  # norm scale
            tensor = (1.0 + 0.2 * wave).float().reshape(shape)
        else:  # conv / linear weight: variance ~ 2 / fan_in keeps activations bounded through depth
            fan_in = math.prod(shape[1:])
            tensor = (wave * math.sqrt(2.0 / fan_in)).float().reshape(shape)
        state[key] = tensor
    return state


def synthetic_images(batch: int = 2, size: int = 64) -> torch.Tensor:
    """Normalized-looking float images [batch, 3, size, size]."""
    return _wave(batch * 3 * size * size, phase=0.5).float().reshape(batch, 3, size, size)
