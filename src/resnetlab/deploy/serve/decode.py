"""Decoding uploads within a budget of decoded pixels, at reduced size where the format allows.

The bytes of an upload say little about what decoding it costs: a 102 KB PNG holds 6000x6000 pixels,
and 24 of them decoding at once took the server to 6.2 GB (about 7 bytes per pixel with the
conversions). The header gives the size without decoding, so every decode first holds its pixel
count from one shared `PixelBudget` (`max_decode_mpix`); an upload that does not fit is refused
(503 + Retry-After) rather than queued, since a queue of decodes is the memory we are bounding.

JPEGs (and MPOs) are decoded with libjpeg's DCT scaling (Pillow's `draft`) at 1/2, 1/4 or 1/8 size
while that is still twice the size the model's resize needs, the margin Pillow's own `thumbnail`
keeps (`reducing_gap=2.0`): a 24 MP photo for a 224x224 model decodes as 1.5 MP. Pillow can reduce
no other format while decoding, so those are held (and decoded) at full size.
"""

from __future__ import annotations

import io
import math
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ...data.images import read_for_model

REDUCING_GAP = 2.0  # decode at least this many times the size the resize needs (Pillow's thumbnail default)


# the first bytes of each image format the server reads whatever the request's Content-Type says: curl's
# --data-binary without -H labels any file application/x-www-form-urlencoded
IMAGE_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpeg", b"GIF87a": "gif", b"GIF89a": "gif",
                    b"BM": "bmp", b"II*\x00": "tiff", b"MM\x00*": "tiff"}


def sniff_image(data: bytes) -> str | None:
    """The image format that `data` starts like (png, jpeg, gif, bmp, webp, tiff), or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return next((name for magic, name in IMAGE_SIGNATURES.items() if data.startswith(magic)), None)


class DecodeBusy(Exception):
    """The pixel budget cannot hold this image now; the client should retry shortly."""


class PixelBudget:
    """Decoded pixels in flight, at most `limit`; thread-safe (decodes run in worker threads).

    An image alone is always admitted, whatever its size (`max_pixels` bounds it), so a budget
    smaller than one large image slows such images down instead of refusing them forever.
    """

    def __init__(self, limit: int):
        self.limit, self.in_flight, self.peak, self.refused = limit, 0, 0, 0
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        with self._lock:
            if pixels and self.in_flight and self.in_flight + pixels > self.limit:
                self.refused += 1
                raise DecodeBusy(f"{self.in_flight / 1e6:.1f} of {self.limit / 1e6:g} megapixels are being decoded "
                                 f"(max_decode_mpix); this image needs {pixels / 1e6:.1f} more, retry shortly")
            self.in_flight += pixels
            self.peak = max(self.peak, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= pixels

    def to_dict(self) -> dict:
        return {"pixels_in_flight": self.in_flight, "peak_pixels": self.peak, "budget_pixels": self.limit,
                "refused": self.refused}


@dataclass
class DecodePlan:
    pixels: int  # width x height as it will be decoded; 0 when decoding fails before any pixel (not an image)
    draft: tuple[int, int] | None = None  # the size to decode a JPEG down to (load_image's draft); None: full size


def plan_decode(data: bytes, input_size: tuple[int, int, int], crop_pct: float, max_pixels: int) -> DecodePlan:
    """Read the header of an upload (no pixels decoded): what decoding it will hold, and how to decode it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # max_pixels is the limit here
            image = Image.open(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - unreadable: read_for_model says why, before decoding anything
        return DecodePlan(0)
    with image:
        width, height = image.size
        if width * height > max_pixels or input_size[0] not in (1, 3):
            return DecodePlan(0)  # refused from the header (413), or by the channel check, before decoding
        # the short side the resize needs, whatever the orientation (EXIF) and crop (resize_for_model)
        needed = math.ceil(max(input_size[1:]) / min(crop_pct, 1.0) * REDUCING_GAP)
        image.draft(None, (needed, needed))  # a no-op for formats without reduced decoding; reads no pixel
        if image.size == (width, height):
            return DecodePlan(width * height)
        return DecodePlan(image.width * image.height, (needed, needed))


def decode_upload(data: bytes, name: str, plan: DecodePlan, budget: PixelBudget, input_size: tuple[int, int, int],
                  interpolation: str, crop_pct: float, max_pixels: int) -> np.ndarray:
    """Decode one upload for the model, uint8 [C, H, W], holding its pixels from `budget` meanwhile.

    Raises DecodeBusy when the budget cannot hold it, BadImageError for an image that cannot be used.
    """
    with budget.hold(plan.pixels):
        return read_for_model(data, input_size, interpolation, crop_pct, name=name, max_pixels=max_pixels,
                              draft=plan.draft)
