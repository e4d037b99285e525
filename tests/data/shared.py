"""Where the real datasets for integration tests live (../shared/data, or RESNETLAB_SHARED_DATA)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("RESNETLAB_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


def shared(name: str) -> Path:
    """The shared copy of a dataset; the test is skipped where it is absent (a fresh clone elsewhere)."""
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"integration data {path} not present")
    return path
