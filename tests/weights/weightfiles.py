"""Files as publishers ship them, for the weights tests: hashes, the Hugging Face cache layout, timm repos."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hub_snapshot(cache: Path, repo_id: str, files: dict[str, bytes], revision: str = "0" * 40) -> Path:
    """Write the Hugging Face cache layout (`hf download` writes the same): blobs named by their SHA-256,
    snapshots/REVISION/NAME linking to them, refs/main naming the revision."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / name
        if link.exists() or link.is_symlink():
            link.unlink()
        link.symlink_to(Path("..") / ".." / "blobs" / blob.name)
    return snapshot


def timm_repo(cache: Path, repo_id: str, model: torch.nn.Module, arch: str, **cfg) -> Path:
    """A timm-format Hub repository for `model`: model.safetensors and config.json (timm's keys)."""
    tmp = cache.parent / "tmp.safetensors"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp)
    config = {"architecture": arch, "num_classes": model.get_classifier().out_features,
              "num_features": model.num_features,
              "pretrained_cfg": {"input_size": [3, 224, 224], "test_input_size": [3, 288, 288], "crop_pct": 0.95,
                                 "test_crop_pct": 1.0, "interpolation": "bicubic", "mean": [0.485, 0.456, 0.406],
                                 "std": [0.229, 0.224, 0.225], "first_conv": "conv1", "classifier": "fc",
                                 "license": "apache-2.0", **cfg}}
    snapshot = hub_snapshot(cache, repo_id, {"model.safetensors": tmp.read_bytes(),
                                             "config.json": json.dumps(config).encode()})
    tmp.unlink()
    return snapshot


def copy_to(path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(path, folder / path.name))
