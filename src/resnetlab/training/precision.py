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


def _onednn_has_bf16() -> bool:
    """False when PyTorch's oneDNN says it has no bf16 kernels for this CPU (True when it cannot say)."""
    mkldnn_ops = getattr(torch.ops, "mkldnn", None)
    try:
        return mkldnn_ops is None or bool(mkldnn_ops._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True


def _cpu_bf16_flags() -> bool | None:
    """True/False where the CPU's feature flags answer whether it computes bf16 natively, else None.

    x86: AVX-512 BF16 or AMX (what oneDNN's bf16 kernels use; without them bf16 is emulated and no faster).
    Other CPUs (ARM's BF16 extension, Apple) are not reported through PyTorch, so their flags do not answer.
    """
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return None
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    probes = [probe for probe in probes if probe is not None]
    if not probes:  # a PyTorch without the probes (older than 2.3)
        return None
    return any(probe() for probe in probes)


def _bf16_measures_faster() -> bool:
    """Time a 768x768 product in fp32 and bf16 (about 0.1 s): True when bf16 is at least 1.5x faster."""
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


@functools.lru_cache(maxsize=1)
def cpu_bf16_choice() -> tuple[bool, str]:
    """(use bf16 on this CPU, why), by a rule that gives the same answer in every process on this machine.

    The CPU's feature flags decide where they answer (x86): a timing near its threshold once flipped between
    the start and the resume of a run. Elsewhere a short measurement decides, and the run records the result
    (config.yaml and every checkpoint), so a resumed run never decides again.
    """
    if not _onednn_has_bf16():
        return False, "oneDNN has no bf16 kernels for this CPU"
    flags = _cpu_bf16_flags()
    if flags is not None:
        return flags, "CPU has AVX-512 BF16/AMX" if flags else "CPU lacks AVX-512 BF16 and AMX"
    fast = _bf16_measures_faster()
    return fast, "bf16 matrix product measured " + ("at least" if fast else "less than") + " 1.5x faster"


def cpu_has_fast_bf16() -> bool:
    """True when this CPU runs bf16 matrix products natively (see cpu_bf16_choice)."""
    return cpu_bf16_choice()[0]


def auto_precision(device: torch.device) -> tuple[str, str]:
    """(the precision `precision=auto` means on `device`, why): decided once per run and recorded."""
    if device.type == "cuda":
        return ("bf16", "GPU supports bf16") if torch.cuda.is_bf16_supported() else \
            ("fp16", "GPU lacks bf16: fp16 with loss scaling")
    if device.type == "cpu":
        fast, why = cpu_bf16_choice()
        return ("bf16" if fast else "fp32"), why
    return "fp32", f"no reduced precision on {device.type}"


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
        name = auto_precision(device)[0]
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
