"""Augmentations of whole normalized batches: cutout, random erasing, mixup and cutmix.

They run after normalization, so a filled region is 0 (the dataset mean), as in timm. Mixup and
cutmix return soft targets float [B, K]; everything else leaves the labels as class indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def _uniform(size: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(size, generator=generator, device=generator.device).to(device)


def _box_mask(top: torch.Tensor, left: torch.Tensor, height: torch.Tensor, width: torch.Tensor,
              shape: tuple[int, int], device: torch.device) -> torch.Tensor:
    """Boolean [B, 1, H, W], true inside each image's box (boxes may reach past the border)."""
    rows = torch.arange(shape[0], device=device).view(1, 1, -1, 1)
    cols = torch.arange(shape[1], device=device).view(1, 1, 1, -1)
    top, left = top.view(-1, 1, 1, 1), left.view(-1, 1, 1, 1)
    height, width = height.view(-1, 1, 1, 1), width.view(-1, 1, 1, 1)
    return (rows >= top) & (rows < top + height) & (cols >= left) & (cols < left + width)


def cutout(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero a size x size square centred anywhere in each image (DeVries & Taylor 2017)."""
    batch, _, height, width = images.shape
    centre_y = (_uniform(batch, generator, images.device) * height).long()
    centre_x = (_uniform(batch, generator, images.device) * width).long()
    side = torch.full((batch,), size, device=images.device)
    mask = _box_mask(centre_y - size // 2, centre_x - size // 2, side, side, (height, width), images.device)
    return images.masked_fill(mask, 0.0)


def random_erasing(images: torch.Tensor, prob: float, generator: torch.Generator,
                   area: tuple[float, float] = (0.02, 1 / 3), ratio: tuple[float, float] = (0.3, 1 / 0.3)
                   ) -> torch.Tensor:
    """With probability `prob` per image, zero a rectangle of 2-33% of its area (Zhong et al. 2017)."""
    batch, _, height, width = images.shape
    device = images.device
    apply = _uniform(batch, generator, device) < prob
    target = (area[0] + (area[1] - area[0]) * _uniform(batch, generator, device)) * height * width
    log_ratio = np.log(ratio[0]) + (np.log(ratio[1]) - np.log(ratio[0])) * _uniform(batch, generator, device)
    aspect = torch.exp(log_ratio)
    box_h = torch.sqrt(target * aspect).round().clamp(1, height).long()
    box_w = torch.sqrt(target / aspect).round().clamp(1, width).long()
    top = (_uniform(batch, generator, device) * (height - box_h + 1)).long()
    left = (_uniform(batch, generator, device) * (width - box_w + 1)).long()
    mask = _box_mask(top, left, box_h, box_w, (height, width), device) & apply.view(-1, 1, 1, 1)
    return images.masked_fill(mask, 0.0)


def _beta(alpha: float, generator: torch.Generator) -> float:
    seed = int(torch.randint(2**62, (1,), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def mixup(images: torch.Tensor, targets: torch.Tensor, alpha: float, generator: torch.Generator
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend each image with its partner in the reversed batch (Zhang et al. 2018); targets [B, K] blend too."""
    lam = _beta(alpha, generator)
    return images * lam + images.flip(0) * (1 - lam), targets * lam + targets.flip(0) * (1 - lam)


def cutmix(images: torch.Tensor, targets: torch.Tensor, alpha: float, generator: torch.Generator
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste a box of the partner image (Yun et al. 2019); targets weighted by the pasted area."""
    batch, _, height, width = images.shape
    lam = _beta(alpha, generator)
    cut = np.sqrt(1.0 - lam)
    box_h, box_w = int(height * cut), int(width * cut)
    cy, cx = (int(v) for v in torch.randint(10**9, (2,), generator=generator) % torch.tensor([height, width]))
    top, bottom = max(cy - box_h // 2, 0), min(cy + box_h // 2, height)
    left, right = max(cx - box_w // 2, 0), min(cx + box_w // 2, width)
    mixed = images.clone()
    mixed[:, :, top:bottom, left:right] = images.flip(0)[:, :, top:bottom, left:right]
    kept = 1.0 - (bottom - top) * (right - left) / (height * width)  # the area actually pasted decides
    return mixed, targets * kept + targets.flip(0) * (1 - kept)


@dataclass(frozen=True)
class BatchAugment:
    """Augmentations applied to normalized batches; `active` is False when all are off."""

    cutout: int = 0  # square side in pixels; 0: off (DeVries & Taylor use 16 on CIFAR-10)
    random_erasing: float = 0.0  # probability per image; 0: off (Zhong et al. use 0.5)
    mixup_alpha: float = 0.0  # Beta(alpha, alpha) mixing; 0: off (0.2 is common)
    cutmix_alpha: float = 0.0  # 0: off (1.0 in Yun et al.)
    mix_prob: float = 1.0  # probability that a batch is mixed at all
    num_classes: int = 0  # needed for soft targets when mixing

    @property
    def active(self) -> bool:
        return bool(self.cutout or self.random_erasing or self.mixes)

    @property
    def mixes(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cutout:
            images = cutout(images, self.cutout, generator)
        if self.random_erasing:
            images = random_erasing(images, self.random_erasing, generator)
        if self.mixes and float(torch.rand(1, generator=generator)) < self.mix_prob:
            targets = F.one_hot(labels, self.num_classes).float()
            use_cutmix = self.cutmix_alpha > 0 and (
                self.mixup_alpha <= 0 or float(torch.rand(1, generator=generator)) < 0.5)  # timm's switch_prob
            if use_cutmix:
                return cutmix(images, targets, self.cutmix_alpha, generator)
            return mixup(images, targets, self.mixup_alpha, generator)
        return images, labels
