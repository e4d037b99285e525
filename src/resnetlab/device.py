"""Device choice: the one home for `device=auto|cpu|cuda|cuda:N|mps`."""

from __future__ import annotations

import ctypes
import os
import sys

import torch

from .errors import ConfigError

# glibc's mallopt parameters (malloc.h). Tensors above the mmap threshold (at most 32 MiB by default) get
# fresh pages from the kernel on every allocation and return them on every free; a bf16 training step of
# resnet8_airbench at batch 1024 mapped 974 MiB afresh, 1215 ms a step against 985 ms with this setting on
# this project's 2-core VM (benchmarks/train_step_profile.py, docs/benchmarks.md).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
LARGEST_MALLOPT = 2**31 - 1  # mallopt takes an int
_allocator_tuned: bool | None = None


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of handing it back to the kernel.

    Large blocks then come from the heap (no mmap threshold) and the heap is never trimmed, so the next
    step reuses pages that are already mapped: the process's resident memory stays at its peak, as
    under PyTorch's CUDA caching allocator or the jemalloc/tcmalloc that torch.backends.xeon.run_cpu
    preloads. Called once per process for CPU devices; RESNETLAB_MALLOC=system leaves malloc as it is.
    Returns whether it applied (False off glibc, e.g. on macOS, Windows or musl).
    """
    global _allocator_tuned
    if _allocator_tuned is None:
        _allocator_tuned = False
        if sys.platform.startswith("linux") and os.environ.get("RESNETLAB_MALLOC", "").lower() != "system":
            try:
                libc = ctypes.CDLL(None)
                libc.gnu_get_libc_version  # noqa: B018 (AttributeError off glibc: musl has its own allocator)
                _allocator_tuned = libc.mallopt(M_MMAP_THRESHOLD, LARGEST_MALLOPT) == 1 and \
                    libc.mallopt(M_TRIM_THRESHOLD, LARGEST_MALLOPT) == 1
            except (OSError, AttributeError):
                pass
    return _allocator_tuned


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Return the torch device for a setting; `auto` prefers CUDA, then Apple's MPS, then the CPU.
    A CPU device also makes malloc keep freed memory (`keep_freed_memory`)."""
    device = _device(name)
    if device.type == "cpu":
        keep_freed_memory()
    return device


def _device(name: str | torch.device) -> torch.device:
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
