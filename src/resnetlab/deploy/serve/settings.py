"""Server settings (`resnetlab serve MODEL key=value ...`): their defaults and checks, importable without FastAPI."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ...errors import ConfigError


@dataclass
class ServeConfig:
    """Server settings; `resnetlab serve MODEL key=value ...` sets them."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch_size: int = 32  # images per forward pass
    max_wait_ms: float = 2.0  # how long an idle server waits for company before running a lone image
    max_body_mb: float = 10.0  # request body limit (one upload, or all of a batch)
    max_pixels: int = 40_000_000  # width x height of one image (a 40 MP photo decodes to 120 MB)
    max_files: int = 64  # images per batch request
    max_decode_mpix: float = 200.0  # megapixels being decoded at once, all requests (~7 bytes each at peak: 1.4 GB)
    timeout_s: float = 30.0  # whole request: upload, decoding, queueing and inference
    header_timeout_s: float = 10.0  # from connecting (or a request's first byte) to the end of its headers
    stall_timeout_s: float = 10.0  # longest silence while an upload is being received
    backend: str = "auto"
    precision: str = "fp32"
    device: str = "auto"
    access_log: bool = True  # one line per request on stdout: client, request line, status (uvicorn's format)

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise ConfigError(f"host must be an address such as 127.0.0.1 or 0.0.0.0, got {self.host!r}")
        if not isinstance(self.access_log, bool):
            raise ConfigError(f"access_log must be true or false, got {self.access_log!r}")
        for name, (low, high, note) in INTEGER_SETTINGS.items():
            _check_integer(name, getattr(self, name), low, high, note)
        for name, low in NUMBER_SETTINGS.items():
            _check_number(name, getattr(self, name), low)


# integer settings: (lowest, highest or None, what an edge value means)
INTEGER_SETTINGS = {"port": (0, 65535, " (0: any free port)"), "max_batch_size": (1, None, ""),
                    "max_pixels": (1, None, ""), "max_files": (1, None, "")}


# number settings: finite, and > 0 (timeouts, sizes) or >= 0 (a wait that may be none)
NUMBER_SETTINGS = {"max_wait_ms": ">= 0", "max_body_mb": "> 0", "max_decode_mpix": "> 0", "timeout_s": "> 0",
                   "header_timeout_s": "> 0", "stall_timeout_s": "> 0"}


def _check_integer(name: str, value: Any, low: int, high: int | None, note: str) -> None:
    valid = isinstance(value, int) and not isinstance(value, bool) and low <= value and (high is None or value <= high)
    if not valid:
        accepted = f"in {low}..{high}{note}" if high is not None else f">= {low}"
        raise ConfigError(f"{name} must be an integer {accepted}, got {value!r}")


def _check_number(name: str, value: Any, low: str) -> None:
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not number or (value <= 0 if low == "> 0" else value < 0):
        raise ConfigError(f"{name} must be a finite number {low}, got {value!r}")
