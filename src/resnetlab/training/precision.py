"""Numeric precision and memory layout for training: the one place that decides them per device.

Measured on the reference 2-core CPU (AVX-512 with bf16), resnet20 training step at batch 128, images/s:
fp32 NCHW 508, fp32 channels_last 621, bf16 NCHW 930, bf16 channels_last 970 (docs/benchmarks.md).
bf16 keeps fp32's exponent range, so it needs no loss scaling; fp16 (older GPUs) does.
"""

from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import dataclass

import torch

from ..errors import ConfigError


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True when bf16 matrix products run clearly faster than fp32 on this CPU, by measurement.

    CPUs with bf16 dot-product instructions (AVX-512 BF16, AMX) run them 3-4x faster; others only
    emulate bf16 and gain nothing. Timing a 768x768 product both ways (about 0.1 s, once per process)
    tells them apart on any CPU, where flag names and PyTorch's probes vary by version.
    """
    mkldnn_ops = getattr(torch.ops, "mkldnn", None)
    try:
        if mkldnn_ops is not None and not mkldnn_ops._is_mkldnn_bf16_supported():
            return False
    except (AttributeError, RuntimeError):
        pass
    a = torch.randn(768, 768, generator=torch.Generator().manual_seed(0))  # leaves the run's RNG alone

    def best_time(x: torch.Tensor) -> float:
        x @ x  # warm-up: oneDNN builds its kernel on first use
        times = []
        for _ in range(3):
            started = time.perf_counter()
            x @ x
            times.append(time.perf_counter() - started)
        return min(times)

    return best_time(a) / best_time(a.bfloat16()) >= 1.5


@dataclass(frozen=True)
class Precision:
    """How a training step computes: autocast dtype (None = fp32), loss scaling, memory layout."""

    dtype: torch.dtype | None
    channels_last: bool
    device_type: str

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    @property
    def needs_scaler(self) -> bool:
        return self.dtype is torch.float16

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def layout(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images


def resolve_precision(name: str, channels_last: bool | None, device: torch.device) -> Precision:
    """Pick the precision for `precision=auto|fp32|bf16|fp16` on `device`; check the choice is possible.

    auto: bf16 on CUDA GPUs that support it (Ampere and later) and on CPUs with bf16 instructions;
    fp16 with loss scaling on older CUDA GPUs; fp32 elsewhere. channels_last defaults to on for CPU
    and CUDA (faster in every measured case), off for MPS.
    """
    kind = device.type
    if name == "auto":
        if kind == "cuda":
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif kind == "cpu":
            name = "bf16" if cpu_has_fast_bf16() else "fp32"
        else:
            name = "fp32"
    dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if name not in dtypes:
        raise ConfigError(f"unknown precision {name!r}; choose auto, fp32, bf16 or fp16")
    if name == "fp16" and kind != "cuda":
        raise ConfigError(f"precision=fp16 needs a CUDA GPU (loss scaling); on {kind} use bf16 or fp32")
    if name == "bf16" and kind == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("this GPU has no bf16 support; use precision=fp16 or fp32")
    if channels_last is None:
        channels_last = kind in ("cpu", "cuda")
    return Precision(dtypes[name], channels_last, kind)


def grad_scaler(precision: Precision) -> torch.amp.GradScaler | None:
    """A loss scaler for fp16 (None otherwise)."""
    return torch.amp.GradScaler(precision.device_type) if precision.needs_scaler else None
