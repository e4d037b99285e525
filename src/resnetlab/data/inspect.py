"""A dataset scan for people: class counts per split, image sizes and modes, bad files, class imbalance."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .dataset import ImageFiles
from .folder import check_columns_setting, choose_channels, choose_size, read_files_source
from .scan import pixel_stats, scan_files
from .sources import load_dataset


@dataclass
class DatasetReport:
    source: str
    class_names: list[str]
    counts: dict[str, list[int]]  # split -> images per class
    image_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # min/max of width and height
    modes: dict[str, int] = field(default_factory=dict)  # stored Pillow mode -> files
    bad_files: list[tuple[str, str]] = field(default_factory=list)
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    suggested: dict[str, Any] = field(default_factory=dict)  # settings training would pick

    @property
    def imbalance(self) -> float:
        """Largest over smallest class count in the training split (1.0 = balanced; inf: a class is empty)."""
        train = self.counts.get("train", [])
        return float("inf") if not train or min(train) == 0 else max(train) / min(train)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "classes": self.class_names, "counts": self.counts,
                "totals": {k: sum(v) for k, v in self.counts.items()}, "image_sizes": self.image_sizes,
                "modes": self.modes, "bad_files": [{"path": p, "reason": r} for p, r in self.bad_files],
                "imbalance": self.imbalance, "mean": self.mean, "std": self.std, "suggested": self.suggested}


def _files_report(source: Path, workers: int | None, path_column: str | None,
                  label_column: str | None) -> DatasetReport:
    splits, names = read_files_source(source, path_column=path_column, label_column=label_column)
    paths = [p for split_paths, _ in splits.values() for p in split_paths]
    results = scan_files(paths, root=source, workers=workers)
    good = [r for r in results if r.ok]
    usable = {r.path for r in good}
    counts = {split: np.bincount([label for p, label in zip(split_paths, labels) if p in usable],
                                 minlength=len(names)).tolist()
              for split, (split_paths, labels) in splits.items()}  # bad files are listed apart
    sizes = {}
    if good:
        widths, heights = [r.width for r in good], [r.height for r in good]
        sizes = {"width": (min(widths), max(widths)), "height": (min(heights), max(heights))}
    channels = choose_channels(good)
    train_paths = set(splits["train"][0])  # as training computes them: from training images only
    mean, std = pixel_stats([r for r in good if r.path in train_paths], channels)
    side, crop_pct = choose_size(results, None)
    return DatasetReport(str(source), names, counts, sizes, dict(Counter(r.mode for r in good)),
                         [(r.path, r.error) for r in results if not r.ok], mean, std,
                         {"img_size": side, "crop_pct": crop_pct, "channels": channels})


def inspect_dataset(name: str, *, data_dir: str | None = None, workers: int | None = None,
                    verify: bool = True, path_column: str | None = None,
                    label_column: str | None = None) -> DatasetReport:
    """Report on a named dataset, an image folder, a CSV manifest or an .npz archive.

    verify: check a named dataset's files against their published checksums (false: a non-official copy).
    path_column, label_column: a CSV manifest's header names for its path and label columns.
    """
    from .sources import official_layout

    check_columns_setting(name, path_column, label_column)
    path = Path(name).expanduser()
    official = official_layout(path)  # a folder of CIFAR batches or IDX files: the official counts, not folders
    if official is not None:
        name, data_dir = official, str(path)
    elif path.is_dir() or (path.is_file() and path.suffix.lower() == ".csv"):
        return _files_report(path, workers, path_column, label_column)
    data = load_dataset(name, data_dir=data_dir, val_fraction=0, verify=verify)
    counts = {}
    for split in ("train", "val", "test"):
        part = getattr(data, split)
        if part is not None:
            counts[split] = np.bincount(part.labels.numpy(), minlength=len(data.class_names)).tolist()
    c, h, w = data.image_shape
    sizes = {} if isinstance(data.train, ImageFiles) else {"width": (w, w), "height": (h, h)}
    return DatasetReport(data.name, data.class_names, counts, sizes, {}, [], data.mean, data.std,
                         {"channels": c, "img_size": h})
