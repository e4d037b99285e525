"""Checking every image file before training: decodable, sizes, modes, pixel statistics.

The scan decodes each file fully (a truncated JPEG only shows at the end), in worker processes. Its
results are cached per folder under the resnetlab cache, keyed by each file's size and modification
time, so a second run over the same files is instant.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..cache import cache_dir
from .images import BadImageError, load_image

CACHE_VERSION = 2  # 2: unreadable files say "permission denied", decoder crashes are per-file errors


@dataclass
class ScanResult:
    """What the scan learnt about one file."""

    path: str
    error: str | None = None  # why the file cannot be used; None when it is fine
    width: int = 0
    height: int = 0
    mode: str = ""  # Pillow mode as stored (L, RGB, RGBA, P, CMYK, I;16, ...)
    channel_sum: list[float] = field(default_factory=list)  # RGB sums of pixel values in 0..1
    channel_sq_sum: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def default_workers() -> int:
    """Worker processes for decoding: one per core, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


def scan_file(path: str) -> ScanResult:
    """Decode one file fully and measure it; never raises for a bad file."""
    try:
        image = load_image(path, channels=3)
    except BadImageError as exc:
        return ScanResult(path, error=str(exc).removeprefix(f"{path}: "))
    mode = image.info.get("source_mode", image.mode)
    pixels = np.asarray(image, dtype=np.uint8).reshape(-1, 3)  # exact integer sums: no float copies of the image
    sums = pixels.sum(0, dtype=np.uint64) / 255.0
    squares = np.einsum("ij,ij->j", pixels, pixels, dtype=np.uint64) / 255.0**2
    return ScanResult(path, None, image.width, image.height, mode, sums.tolist(), squares.tolist())


def _cache_file(root: Path) -> Path:
    digest = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "scans" / f"{digest}.json"


def _stamp(path: str) -> list[int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def scan_files(paths: Sequence[str | Path], *, root: Path | None = None, workers: int | None = None,
               use_cache: bool = True) -> list[ScanResult]:
    """Scan `paths` in parallel; reuse cached results for files unchanged since the last scan of `root`."""
    names = [str(p) for p in paths]
    cache_path = _cache_file(root) if (root is not None and use_cache) else None
    cached: dict = {}
    if cache_path is not None and cache_path.is_file():
        try:
            data = json.loads(cache_path.read_text())
            cached = data["files"] if data.get("version") == CACHE_VERSION else {}
        except (OSError, ValueError, KeyError):
            cached = {}
    stamps = {name: _stamp(name) for name in names}
    results: dict[str, ScanResult] = {}
    todo = []
    for name in names:
        entry = cached.get(name)
        if entry is not None and stamps[name] is not None and entry["stamp"] == stamps[name]:
            results[name] = ScanResult(**entry["result"])
        else:
            todo.append(name)
    workers = workers or default_workers()
    if len(todo) > 64 and workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(scan_file, todo, chunksize=32):
                results[result.path] = result
    else:
        for name in todo:
            results[name] = scan_file(name)
    if cache_path is not None and todo:
        files = {**cached, **{n: {"stamp": stamps[n], "result": asdict(results[n])}
                              for n in todo if stamps[n] is not None}}
        payload = json.dumps({"version": CACHE_VERSION, "files": files})
        atomic_write(cache_path, lambda tmp: tmp.write_text(payload))
    return [results[name] for name in names]


def pixel_stats(results: Sequence[ScanResult], channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std (0..1 units) over all good scanned pixels; grayscale averages R, G and B."""
    good = [r for r in results if r.ok]
    count = sum(r.width * r.height for r in good)
    if not count:
        return (0.5,) * channels, (0.25,) * channels
    total = np.sum([r.channel_sum for r in good], axis=0)
    total_sq = np.sum([r.channel_sq_sum for r in good], axis=0)
    if channels == 1:
        total, total_sq = total.mean(keepdims=True), total_sq.mean(keepdims=True)
    mean = total / count
    std = np.sqrt(np.clip(total_sq / count - mean * mean, 0, None)).clip(min=1e-3)
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)
