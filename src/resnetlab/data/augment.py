"""Batched augmentation on whole uint8 batches, on whatever device the batch lives on (airbench's way).

Every function takes images [B, C, H, W] and a torch.Generator, so a seed fixes the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

PAD_MODES = ("zeros", "reflect", "edge")


@dataclass(frozen=True)
class Augment:
    """Training-time augmentation of small images."""

    crop_padding: int = 0  # random crop of the original size from the image padded by this many pixels
    pad_mode: str = "zeros"  # zeros | reflect | edge (repeat the border: right for digits on white paper)
    flip: bool = False  # horizontal flips: of a random half of each batch, or as the caller's `flips` say

    def __post_init__(self) -> None:
        if self.pad_mode not in PAD_MODES:
            raise ValueError(f"unknown pad_mode {self.pad_mode!r}; choose one of {', '.join(PAD_MODES)}")
        if self.crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0, got {self.crop_padding}")

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.flip

    def __call__(self, images: torch.Tensor, generator: torch.Generator,
                 flips: torch.Tensor | None = None) -> torch.Tensor:
        """Augment a batch; `flips` [B] bool chooses the mirrored images (else a random half is)."""
        if self.crop_padding:
            images = random_crop(images, self.crop_padding, generator, self.pad_mode)
        if self.flip:
            images = random_flip(images, generator) if flips is None else mirror(images, flips)
        return images


def _randint(high: int, size: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    # Draw on the generator's device (CPU generators are the portable choice), then move.
    return torch.randint(high, (size,), generator=generator, device=generator.device).to(device)


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator,
                pad_mode: str = "zeros") -> torch.Tensor:
    """Pad by `padding` on every side, then cut each image at its own random offset (same size out)."""
    batch, channels, height, width = images.shape
    if pad_mode == "zeros":
        padded = F.pad(images, (padding,) * 4)
    else:  # reflect/replicate are not implemented for uint8: pad as float, then return to the input dtype
        mode = "reflect" if pad_mode == "reflect" else "replicate"
        padded = F.pad(images.float(), (padding,) * 4, mode=mode).to(images.dtype)
    dy = _randint(2 * padding + 1, batch, generator, images.device)
    dx = _randint(2 * padding + 1, batch, generator, images.device)
    rows = (dy[:, None] + torch.arange(height, device=images.device))[:, None, :, None]
    rows = rows.expand(batch, channels, height, width + 2 * padding)
    cropped = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(width, device=images.device))[:, None, None, :]
    return cropped.gather(3, cols.expand(batch, channels, height, width))


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the batch left-right."""
    return mirror(images, _randint(2, len(images), generator, images.device).bool())


def mirror(images: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Mirror the images where `flips` [B] is True left-right."""
    return torch.where(flips[:, None, None, None], images.flip(3), images)


def alternating_flips(start: torch.Tensor | bool, epoch: int) -> torch.Tensor | bool:
    """Airbench's derandomized flip (Jordan 2024, Sec. 3.6): an image starts mirrored or not at random
    (`start`, fixed per image) and switches every epoch, so two epochs in a row show both sides,
    where independent coin flips repeat the same side half of the time. `start`: a bool or a bool tensor."""
    return start ^ (epoch % 2 == 0)
