"""Small building blocks shared by every architecture: convolutions, shortcuts, stochastic depth."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

FoldPair = tuple[nn.Conv2d, nn.BatchNorm2d]  # a convolution and the BatchNorm that directly follows it


def conv3x3(in_chans: int, out_chans: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a BatchNorm follows or precedes it)."""
    return nn.Conv2d(in_chans, out_chans, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_chans: int, out_chans: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution with no bias."""
    return nn.Conv2d(in_chans, out_chans, 1, stride=stride, bias=False)


def adapt_input_conv(in_chans: int, weight: torch.Tensor) -> torch.Tensor:
    """A first convolution's weight [out, in, kh, kw] adapted to `in_chans` input channels (timm's rule).

    One channel sums the filters over their inputs, so a gray image gives what the original gives on
    that image repeated in every channel. Other counts repeat the filters cyclically and scale them by
    in/in_chans, which keeps the activation scale (timm does this from 3 channels; 1 is allowed as well).
    """
    sources = weight.shape[1]
    if in_chans == sources:
        return weight
    adapted = weight.float()
    if in_chans == 1:
        adapted = adapted.sum(dim=1, keepdim=True)
    elif sources in (1, 3):
        adapted = adapted.repeat(1, math.ceil(in_chans / sources), 1, 1)[:, :in_chans] * (sources / in_chans)
    else:
        raise ValueError(f"cannot adapt a first convolution of {sources} input channels to {in_chans}; "
                         f"only 1 or 3 channels are repeated (timm's rule)")
    return adapted.to(weight.dtype)


def conv_norm_pairs(*pairs: tuple[nn.Module, nn.Module]) -> list[FoldPair]:
    """The (conv, BatchNorm) pairs among `pairs` still to fold: a folded norm is an nn.Identity."""
    return [(conv, norm) for conv, norm in pairs if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d)]


def shortcut_fold_pairs(shortcut: nn.Module | None) -> list[FoldPair]:
    """A projection shortcut's (1x1 conv, BatchNorm) pair (`make_shortcut` with_norm=True); else none."""
    if isinstance(shortcut, nn.Sequential) and len(shortcut) == 2:
        return conv_norm_pairs((shortcut[0], shortcut[1]))
    return []


class PadShortcut(nn.Module):
    """Parameter-free shortcut (He et al. 2015, Sec. 4.2, option A).

    Subsamples by taking every `stride`-th pixel and zero-pads the new channels, split evenly before
    and after the existing ones as in the widely used reference port (akamaster/pytorch_resnet_cifar10),
    so its pretrained weights stay interchangeable.
    """

    def __init__(self, in_chans: int, out_chans: int, stride: int):
        super().__init__()
        if out_chans < in_chans:
            raise ValueError(f"option-A shortcut cannot reduce channels ({in_chans} -> {out_chans})")
        self.stride = stride
        extra = out_chans - in_chans
        self.pad_before, self.pad_after = extra // 2, extra - extra // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_before, self.pad_after))


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): drop a residual branch per sample during training.

    Kept branches are scaled by 1 / (1 - rate) so the expected output is unchanged and inference
    needs no rescaling (the same convention as timm).
    """

    def __init__(self, rate: float = 0.0):
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"drop path rate must be in [0, 1), got {rate}")
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


SHORTCUTS = ("A", "B", "none")  # He et al. 2015: A = zero-pad identity, B = 1x1 projection; none = plain net


def make_shortcut(
    kind: str, in_chans: int, out_chans: int, stride: int, *, with_norm: bool
) -> nn.Module | None:
    """Return the shortcut module for a block, or None where the identity serves.

    `with_norm` adds a BatchNorm after the projection (post-activation nets, torchvision's
    `downsample.1`); pre-activation nets project an already normalized input and add none.
    """
    if kind not in SHORTCUTS:
        raise ValueError(f"unknown shortcut {kind!r}; choose one of {', '.join(SHORTCUTS)}")
    if kind == "none" or (stride == 1 and in_chans == out_chans):
        return None
    if kind == "A":
        return PadShortcut(in_chans, out_chans, stride)
    layers: list[nn.Module] = [conv1x1(in_chans, out_chans, stride)]
    if with_norm:
        layers.append(nn.BatchNorm2d(out_chans))
    return nn.Sequential(*layers)
