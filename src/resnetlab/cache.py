"""The one cache folder: datasets, scan results, verified checksums, ONNX files and backend choices.

`~/.cache/resnetlab` (or `$XDG_CACHE_HOME/resnetlab`), overridden by the environment variable
RESNETLAB_CACHE; datasets also by `data_dir=`. Pretrained weights go to torch.hub's own cache instead
(weights/fetch.py), so that files torchvision already downloaded are reused.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The folder resnetlab keeps what it can rebuild (datasets when `data_dir` is not given)."""
    if os.environ.get("RESNETLAB_CACHE"):
        return Path(os.environ["RESNETLAB_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "resnetlab"
