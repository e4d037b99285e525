"""What every benchmark script shares: a description of the machine and writing the JSON report."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

SHARED_DATA = Path(os.environ.get("RESNETLAB_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "processor": platform.processor() or platform.machine(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def write_report(report: dict[str, Any], out: str | Path) -> Path:
    """Add the machine description and write the report as JSON; print where."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**report, "machine": machine()}, indent=2))
    print(f"wrote {out}")
    return out
