"""What every benchmark script shares: a description of the machine and writing the JSON report."""

from __future__ import annotations

import atexit
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

SHARED_DATA = Path(os.environ.get("RESNETLAB_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def fresh_cache() -> Path:
    """Point RESNETLAB_CACHE at an empty folder, removed at exit: exports made anew, `auto` measured anew
    (a cached choice may come from another day's machine load). Child processes inherit it."""
    folder = Path(tempfile.mkdtemp(prefix="resnetlab-bench-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["RESNETLAB_CACHE"] = str(folder)
    return folder


def cpu_model() -> str | None:
    """The CPU's name and family/model numbers from /proc/cpuinfo (Linux): the same cloud machine type has
    come on different CPU generations (AMD family 25 is Zen 3 (model 1) or Zen 4 (model 17), 26 is Zen 5; Zen 3
    has no AVX-512, so no bf16), which changes every figure."""
    try:
        first = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    name = fields.get("model name")
    return f"{name} (family {fields.get('cpu family')}, model {fields.get('model')})" if name else None


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "processor": platform.processor() or platform.machine(),
            "cpu_model": cpu_model(), "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def write_report(report: dict[str, Any], out: str | Path) -> Path:
    """Add the machine description and write the report as JSON; print where."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**report, "machine": machine()}, indent=2))
    print(f"wrote {out}")
    return out
