"""Device choice: the one home for `device=auto|cpu|cuda|cuda:N|mps`."""

from __future__ import annotations

import torch

from .errors import ConfigError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Return the torch device for a setting; `auto` prefers CUDA, then Apple's MPS, then the CPU."""
    if isinstance(name, torch.device):
        return name
    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={name} but no CUDA GPU is visible to PyTorch; use device=auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device={name} but only {torch.cuda.device_count()} CUDA GPU(s) are visible")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={name} but MPS is not available; use device=auto or cpu")
    return device
