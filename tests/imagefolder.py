"""Builders of small image folders for tests: good images of every mode, and every kind of bad file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

GOOD_KINDS = ("png", "jpeg", "bmp", "webp", "gray", "palette", "rgba", "la", "cmyk", "16bit", "exif")
BAD_KINDS = {"truncated.jpg": "truncated or corrupt", "empty.png": "empty file", "notes.jpg": "not an image",
             "fake.png": "not an image"}


def class_image(label: int, rng: np.random.Generator, size: int = 16) -> np.ndarray:
    """RGB uint8 image whose colour tells its class (learnable in an epoch or two)."""
    colours = np.array([[220, 40, 40], [40, 200, 40], [40, 40, 220], [200, 200, 40]])
    image = rng.integers(0, 60, (size, size, 3)) + colours[label] * 0.7
    return np.clip(image, 0, 255).astype(np.uint8)


def save_kind(array: np.ndarray, path: Path, kind: str) -> Path:
    image = Image.fromarray(array, "RGB")
    if kind == "png":
        image.save(path.with_suffix(".png"))
    elif kind == "jpeg":
        image.save(path.with_suffix(".jpg"), quality=95)
    elif kind == "bmp":
        image.save(path.with_suffix(".bmp"))
    elif kind == "webp":
        image.save(path.with_suffix(".webp"), lossless=True)
    elif kind == "gray":
        image.convert("L").save(path.with_suffix(".png"))
    elif kind == "palette":
        image.convert("P").save(path.with_suffix(".gif"))
    elif kind == "rgba":
        image.convert("RGBA").save(path.with_suffix(".png"))
    elif kind == "la":
        image.convert("LA").save(path.with_suffix(".png"))
    elif kind == "cmyk":
        image.convert("CMYK").save(path.with_suffix(".jpg"), quality=95)
    elif kind == "16bit":
        Image.fromarray(np.asarray(image.convert("L")).astype(np.uint16) * 257).save(path.with_suffix(".png"))
    elif kind == "exif":
        exif = Image.Exif()
        exif[0x0112] = 3  # stored upside down, EXIF says rotate 180
        image.transpose(Image.Transpose.ROTATE_180).save(path.with_suffix(".jpg"), exif=exif, quality=95)
    return path


def make_folder(root: Path, *, classes: int = 3, per_class: int = 12, bad: bool = True, seed: int = 0,
                size: int = 16) -> dict[str, str]:
    """root/<class>/ with good images cycling through GOOD_KINDS; returns {bad file path: reason fragment}."""
    rng = np.random.default_rng(seed)
    names = ["red", "green", "blue", "yellow"][:classes]
    for label, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            save_kind(class_image(label, rng, size), folder / f"img{i:03d}", GOOD_KINDS[i % len(GOOD_KINDS)])
    bad_files = {}
    if bad:
        good_jpeg = next((root / names[0]).glob("*.jpg")).read_bytes()
        target = root / names[0]
        (target / "truncated.jpg").write_bytes(good_jpeg[: len(good_jpeg) // 3])
        (target / "empty.png").write_bytes(b"")
        (root / names[1] / "notes.jpg").write_text("shopping list: not a picture")
        (root / names[1] / "fake.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
        for path in [target / "truncated.jpg", target / "empty.png", root / names[1] / "notes.jpg",
                     root / names[1] / "fake.png"]:
            bad_files[str(path)] = BAD_KINDS[path.name]
    (root / "README.txt").write_text("files that are not images are ignored")
    return bad_files
