"""Normalization constants: the one home for per-channel mean/std, in 0..1 units."""

from __future__ import annotations

import torch

from .dataset import ImageSet

# Published per-channel statistics of the standard training sets.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # torchvision's values
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # computed on the 50k train set
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)  # the values in PyTorch's MNIST example
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)


def channel_stats(data: ImageSet, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of a set's pixels in 0..1 units, accumulated in float64 by chunks."""
    channels = data.image_shape[0]
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, len(data), chunk):
        pixels = data.images[start:start + chunk].to(torch.float64) * data.scale
        total += pixels.sum(dim=(0, 2, 3))
        total_sq += (pixels * pixels).sum(dim=(0, 2, 3))
    count = len(data) * data.image_shape[1] * data.image_shape[2]
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(0).sqrt().clamp_min(1e-3)  # a constant channel stays finite
    return tuple(round(v, 6) for v in mean.tolist()), tuple(round(v, 6) for v in std.tolist())


def pixel_mean(data: ImageSet, chunk: int = 4096) -> list:
    """The mean image [C][H][W] in 0..1 units (He et al. 2015 subtract it from every input)."""
    total = torch.zeros(data.image_shape, dtype=torch.float64)
    for start in range(0, len(data), chunk):
        total += data.images[start:start + chunk].to(torch.float64).sum(dim=0) * data.scale
    return (total / len(data)).round(decimals=6).tolist()
