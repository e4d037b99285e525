"""Pooled features of image files, for retrieval and linear probes (`resnetlab embed`).

    resnetlab embed model=resnet50 weights=DEFAULT photos/ out=feats.npz

The .npz holds `features` float32 [N, D] (the global-average-pooled output of the last stage, what
timm's `forward_head(pre_logits=True)` returns), `paths` (the files, in order), and, when the folder
has one subfolder per class, `labels` int64 [N] and `class_names`; files that could not be read are
listed in `failed` with the reason, not silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write
from ..data.images import expand_paths
from ..errors import DataError
from .predict import Predictor


@dataclass
class Embeddings:
    features: np.ndarray  # float32 [N, D]
    paths: list[str]
    labels: np.ndarray | None = None  # int64 [N] class index (class subfolders), else None
    class_names: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def save(self, out: str | Path) -> Path:
        """Write the .npz atomically (an interrupted write leaves the previous file)."""
        arrays = {"features": self.features, "paths": np.array(self.paths, dtype=str),
                  "failed": np.array([f"{p}\t{r}" for p, r in self.failed], dtype=str)}
        if self.labels is not None:
            arrays.update(labels=self.labels, class_names=np.array(self.class_names, dtype=str))
        out = Path(out)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:  # a file object: np.savez would append .npz to a temporary name
                np.savez(handle, **arrays)

        atomic_write(out, write)
        return out


def class_labels(paths: list[str], root: Path) -> tuple[np.ndarray, list[str]] | None:
    """Labels from an image-folder layout (root/CLASS/.../file): None unless every file is in a class folder."""
    parts = []
    for path in paths:
        try:
            relative = Path(path).resolve().relative_to(root.resolve())
        except ValueError:
            return None
        if len(relative.parts) < 2:
            return None
        parts.append(relative.parts[0])
    names = sorted(set(parts))
    if len(names) < 2:
        return None
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[p] for p in parts], dtype=np.int64), names


@torch.inference_mode()
def embed_files(predictor: Predictor, inputs: list[str | Path], *, workers: int | None = None) -> Embeddings:
    """Features of every readable image among `inputs` (files, folders, globs), decoded as the model expects."""
    paths = expand_paths(inputs)
    model = predictor.model
    rows: list[np.ndarray] = []
    kept: list[str] = []
    failed: list[tuple[str, str]] = []
    for offset, chunk in predictor.decoded_batches(paths, workers):
        good = [i for i, (array, _) in enumerate(chunk) if array is not None]
        failed += [(paths[offset + i], error) for i, (_, error) in enumerate(chunk) if error is not None]
        if good:
            pixels = torch.from_numpy(np.stack([chunk[i][0] for i in good]))
            pooled = model.forward_head(model.forward_features(predictor.normalized(pixels)), pre_logits=True)
            rows.append(pooled.float().cpu().numpy())
            kept += [paths[offset + i] for i in good]
    if not kept:
        raise DataError(f"none of the {len(paths)} file(s) could be read"
                        + (f"; first: {failed[0][0]}: {failed[0][1]}" if failed else ""))
    features = np.concatenate(rows)
    result = Embeddings(features, kept, failed=failed)
    if len(inputs) == 1 and Path(inputs[0]).is_dir():
        found = class_labels(kept, Path(inputs[0]))
        if found is not None:
            result.labels, result.class_names = found
    return result
