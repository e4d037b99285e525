"""Reading image files into arrays the model expects, whatever their mode, with reasons for failures."""

from __future__ import annotations

import functools
import glob
import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")
MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb limit (about 0.25 GiB of RGB pixels)
RESAMPLE = {"nearest": Image.Resampling.NEAREST, "box": Image.Resampling.BOX, "bilinear": Image.Resampling.BILINEAR,
            "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}


class BadImageError(DataError):
    """An image file that cannot be used; the message names the file and the reason.

    kind: "missing" (absent or not readable), "empty", "too_large", "not_an_image" or "corrupt" (what a
    server maps to a status).
    """

    def __init__(self, message: str, kind: str = "corrupt"):
        super().__init__(message)
        self.kind = kind


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Composite transparent images onto white, the usual background of drawings, scans and logos."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _to_8bit(image: Image.Image) -> Image.Image:
    """Scale 16- and 32-bit grayscale to 0..255 (Pillow's convert would clip instead)."""
    values = np.asarray(image, dtype=np.float64)
    high = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
    return Image.fromarray(np.clip(values * (255.0 / high), 0, 255).round().astype(np.uint8), mode="L")


@functools.lru_cache(maxsize=1)
def _lab_transform():  # -> ImageCms.ImageCmsTransform
    from PIL import ImageCms  # littlecms; a Pillow built without it makes LAB files bad images, nothing else

    return ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB")


def _convert(image: Image.Image, target: str) -> Image.Image:
    """Convert to "L" or "RGB" from any mode Pillow reads; CIELAB (TIFF) through littlecms to sRGB."""
    if image.mode == "LAB":  # Pillow's convert has no LAB -> L, and older versions no LAB -> RGB
        image = _lab_transform().apply(image)
    try:
        return image.convert(target)
    except ValueError:  # some modes convert only to RGB (La -> L is refused)
        return image.convert("RGB").convert(target)


def _prepare(image: Image.Image, channels: int) -> Image.Image:
    """Alpha onto white, high bit depths scaled, then the model's mode; `source_mode` records the stored one."""
    mode = image.mode
    image.info["source_mode"] = mode  # kept through the conversions below, for scans and reports
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        image = _flatten_alpha(image)
    elif mode.startswith("I") or mode == "F":
        image = _to_8bit(image)
    converted = _convert(image, "L" if channels == 1 else "RGB")
    converted.info["source_mode"] = mode
    return converted


def load_image(path: str | Path | bytes, channels: int = 3, *, name: str | None = None,
               max_pixels: int | None = None, draft: tuple[int, int] | None = None) -> Image.Image:
    """Open an image (a file, or its bytes) as "L" (channels=1) or "RGB" (channels=3), upright per EXIF.

    `draft` (width, height): decode a JPEG at the smallest of 1/2, 1/4, 1/8 scale still at least this
    large (libjpeg's DCT scaling, Pillow's `draft`); other formats ignore it. `max_pixels` bounds the
    full size either way.

    Raises BadImageError naming the file (or `name` for bytes) for missing, empty, truncated,
    non-image or oversized (over `max_pixels`, width x height; default MAX_PIXELS) images.
    """
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    if isinstance(path, bytes):
        label, source, size = name or "upload", io.BytesIO(path), len(path)
    else:
        path = Path(path)
        if not path.is_file():
            raise BadImageError(f"{path}: no such file", "missing")
        label, source, size = str(path), path, path.stat().st_size
    if channels not in (1, 3):
        raise DataError(f"models with {channels} input channels cannot read image files; use 1 or 3 channels")
    if size == 0:
        raise BadImageError(f"{label}: empty file (0 bytes)", "empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as opened:
                if opened.width * opened.height > max_pixels:
                    raise BadImageError(f"{label}: {opened.width}x{opened.height} pixels exceeds the limit of "
                                        f"{max_pixels:,} (a decompression bomb?)", "too_large")
                if draft is not None:
                    opened.draft(None, draft)
                opened.load()
                image = ImageOps.exif_transpose(opened)
    except BadImageError:
        raise
    except UnidentifiedImageError:
        raise BadImageError(f"{label}: not an image Pillow can read", "not_an_image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImageError(f"{label}: too many pixels ({exc})", "too_large") from None
    except PermissionError:
        raise BadImageError(f"{label}: permission denied (the file cannot be read)", "missing") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(f"{label}: truncated or corrupt image ({exc})") from None
    except Exception as exc:  # a decoder's own bug on a crafted file: still this file's fault, not the run's
        raise BadImageError(f"{label}: could not be decoded ({type(exc).__name__}: {exc})") from None
    try:
        return _prepare(image, channels)
    except Exception as exc:  # an unusual mode Pillow reads but cannot convert
        raise BadImageError(f"{label}: its {image.mode} pixels cannot be converted to "
                            f"{'grayscale' if channels == 1 else 'RGB'} ({type(exc).__name__}: {exc})") from None


def resize_for_model(image: Image.Image, size: tuple[int, int], interpolation: str = "bilinear",
                     crop_pct: float = 1.0) -> Image.Image:
    """Resize to (H, W) as the model was trained: straight resize, or resize then center-crop."""
    height, width = size
    resample = RESAMPLE[interpolation]
    if crop_pct >= 1.0:
        return image.resize((width, height), resample)
    # torchvision's eval transform: shorter side to size / crop_pct, then the central size x size
    short = int(round(min(height, width) / crop_pct))
    scale = short / min(image.size)
    resized = image.resize((max(width, round(image.width * scale)), max(height, round(image.height * scale))),
                           resample)
    left, top = (resized.width - width) // 2, (resized.height - height) // 2
    return resized.crop((left, top, left + width, top + height))


def read_for_model(source: str | Path | bytes, input_size: tuple[int, int, int], interpolation: str = "bilinear",
                   crop_pct: float = 1.0, *, name: str | None = None, max_pixels: int | None = None,
                   draft: tuple[int, int] | None = None) -> np.ndarray:
    """An image file (or its bytes) as a model's evaluation transform sees it: uint8 [C, H, W].

    The one place predict, evaluate, explain, serve and the file loaders turn a file into model input.
    `draft`: see load_image.
    """
    channels, height, width = input_size
    image = load_image(source, channels, name=name, max_pixels=max_pixels, draft=draft)
    return image_to_array(resize_for_model(image, (height, width), interpolation, crop_pct))


def pil_for_model(image: Image.Image, input_size: tuple[int, int, int], interpolation: str = "bilinear",
                  crop_pct: float = 1.0) -> np.ndarray:
    """A PIL image in memory (any mode) as read_for_model gives a file: uint8 [C, H, W]."""
    channels, height, width = input_size
    prepared = _prepare(image.copy(), channels)  # a copy: the caller's image keeps its mode and info
    return image_to_array(resize_for_model(prepared, (height, width), interpolation, crop_pct))


def image_to_array(image: Image.Image) -> np.ndarray:
    """PIL image -> uint8 [C, H, W]."""
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def random_resized_crop(image: Image.Image, size: tuple[int, int], rng: np.random.Generator,
                        scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        interpolation: str = "bilinear") -> Image.Image:
    """Crop a random area (`scale` of the image) of random aspect (`ratio`), resized to (H, W).

    The sampling is torchvision's RandomResizedCrop: ten tries, then the central crop of the
    clamped aspect ratio (Szegedy et al. 2015, "Inception" augmentation).
    """
    width, height = image.size
    area = width * height
    log_ratio = (np.log(ratio[0]), np.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = np.exp(rng.uniform(*log_ratio))
        w, h = int(round(np.sqrt(target * aspect))), int(round(np.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            break
    else:
        in_ratio = width / height
        if in_ratio < ratio[0]:
            w, h = width, int(round(width / ratio[0]))
        elif in_ratio > ratio[1]:
            w, h = int(round(height * ratio[1])), height
        else:
            w, h = width, height
        top, left = (height - h) // 2, (width - w) // 2
    return image.resize((size[1], size[0]), RESAMPLE[interpolation], box=(left, top, left + w, top + h))


def expand_paths(inputs: list[str | Path]) -> list[str]:
    """Files as given, folders as every image file below them (sorted), shell patterns expanded (`**` too).

    A name that matches nothing stays in the list, so the caller reports it like any unreadable file;
    a folder without image files raises DataError (there is nothing to report per file).
    """
    found: list[str] = []
    for item in inputs:
        text = str(item)
        path = Path(text).expanduser()
        if path.is_dir():
            images = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise DataError(f"{path} holds no image files (looked for {', '.join(sorted(IMAGE_SUFFIXES))}, "
                                f"in subfolders too)")
            found += images
        elif any(ch in text for ch in "*?[") and not path.exists():
            matches = sorted(glob.glob(text, recursive=True))
            found += [m for m in matches if Path(m).is_file()] or [text]
        else:
            found.append(text)
    return found
