"""A few real images of a dataset split: export checks, int8 calibration and report galleries use them."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import UserError
from ..info import ModelInfo


def split_images(part: Any, info: ModelInfo, count: int, *, seed: int = 0) -> np.ndarray:
    """`count` images of a dataset split, spread over it (seeded), as float32 0..1 [N, C, H, W]."""
    picks = np.sort(np.random.default_rng(seed).permutation(len(part))[:count])
    if not hasattr(part, "images"):  # image files: decode just these, with the model's evaluation transform
        from .stream import decode_files

        part = decode_files(part.subset(picks), info.input_size, interpolation=info.interpolation,
                            crop_pct=info.crop_pct, workers=0)
        picks = np.arange(len(part))
    pixels = part.images[torch.from_numpy(picks)]
    return (pixels.float() * part.scale).numpy()


def normalized_sample(part: Any, info: ModelInfo, count: int, *, seed: int = 0) -> torch.Tensor:
    """`split_images` normalized as training normalizes them (info's mean/std): float32 [N, C, H, W]."""
    images = torch.from_numpy(split_images(part, info, min(count, len(part)), seed=seed))
    mean, std = (torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1) for v in (info.mean, info.std))
    return (images - mean) / std


def sample_images(info: ModelInfo, count: int = 8, split: str = "test") -> np.ndarray | None:
    """Up to `count` real images (float32 0..1 [N, C, H, W]) of the dataset the model was trained on, if at hand."""
    from .sources import load_dataset

    data_cfg = info.training.get("config", {}).get("data", {})
    name, data_dir = info.trained_data()
    if not name:
        return None
    try:
        data = load_dataset(name, data_dir=data_dir, val_fraction=data_cfg.get("val_fraction"),
                            download=False, img_size=info.input_size[1], channels=info.input_size[0],
                            path_column=data_cfg.get("path_column"), label_column=data_cfg.get("label_column"),
                            verify=bool(data_cfg.get("verify", True)))
        part = data.split(split) if getattr(data, split, None) is not None else data.train
        return split_images(part, info, count)
    except (UserError, OSError):
        return None
