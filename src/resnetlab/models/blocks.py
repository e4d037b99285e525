"""Residual blocks: post-activation (He et al. 2015) and pre-activation (He et al. 2016).

Attribute names follow torchvision (`conv1`, `bn1`, ..., `downsample`) so state dicts interchange.
Every block takes the same arguments, so `ResNet` can stack any of them.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import DropPath, FoldPair, conv1x1, conv3x3, conv_norm_pairs, make_shortcut, shortcut_fold_pairs


class BasicBlock(nn.Module):
    """Two 3x3 convolutions; the stride is on the first (He et al. 2015, Fig. 2 left)."""

    expansion = 1
    preact = False

    def __init__(
        self,
        in_chans: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        groups: int = 1,
        base_width: int = 64,
        drop_path: float = 0.0,
        block_drop_rate: float = 0.0,
    ):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only groups=1 and width_per_group=64 (as torchvision)")
        if block_drop_rate:
            raise ValueError("block_drop_rate applies to pre-activation blocks (wide ResNets) only")
        self.conv1 = conv3x3(in_chans, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.residual = shortcut != "none"
        self.downsample = make_shortcut(shortcut, in_chans, planes, stride, with_norm=True)
        self.drop_path = DropPath(drop_path)
        self.stride = stride

    def last_norm(self) -> nn.Module:
        """The layer zeroed by `zero_init_residual`, so each block starts as the identity."""
        return self.bn2

    def fold_pairs(self) -> list[FoldPair]:
        """Each conv and the BatchNorm after it, the projection shortcut's included (folded at export)."""
        return conv_norm_pairs((self.conv1, self.bn1), (self.conv2, self.bn2)) + shortcut_fold_pairs(self.downsample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            identity = x if self.downsample is None else self.downsample(x)
            out = self.drop_path(out) + identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand; the stride sits on the 3x3 conv.

    This is torchvision's "ResNet v1.5" placement, which is more accurate than the paper's stride on
    the first 1x1 and is what every torchvision/timm checkpoint expects.
    """

    expansion = 4
    preact = False

    def __init__(
        self,
        in_chans: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        groups: int = 1,
        base_width: int = 64,
        drop_path: float = 0.0,
        block_drop_rate: float = 0.0,
    ):
        super().__init__()
        if block_drop_rate:
            raise ValueError("block_drop_rate applies to pre-activation blocks (wide ResNets) only")
        width = int(planes * (base_width / 64.0)) * groups  # torchvision's formula for wide/ResNeXt
        out_chans = planes * self.expansion
        self.conv1 = conv1x1(in_chans, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_chans)
        self.bn3 = nn.BatchNorm2d(out_chans)
        self.relu = nn.ReLU(inplace=True)
        self.residual = shortcut != "none"
        self.downsample = make_shortcut(shortcut, in_chans, out_chans, stride, with_norm=True)
        self.drop_path = DropPath(drop_path)
        self.stride = stride

    def last_norm(self) -> nn.Module:
        return self.bn3

    def fold_pairs(self) -> list[FoldPair]:
        return conv_norm_pairs((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)) \
            + shortcut_fold_pairs(self.downsample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.residual:
            identity = x if self.downsample is None else self.downsample(x)
            out = self.drop_path(out) + identity
        return self.relu(out)


class PreActBasicBlock(nn.Module):
    """BN-ReLU-conv twice (He et al. 2016, Fig. 4e); dropout between the convs for wide ResNets.

    When the shortcut projects, it takes the normalized, activated input (He et al. 2016, Sec. 4;
    Zagoruyko & Komodakis' reference code); otherwise the untouched input.
    """

    expansion = 1
    preact = True

    def __init__(
        self,
        in_chans: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        groups: int = 1,
        base_width: int = 64,
        drop_path: float = 0.0,
        block_drop_rate: float = 0.0,
    ):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("PreActBasicBlock supports only groups=1 and width_per_group=64")
        self.bn1 = nn.BatchNorm2d(in_chans)
        self.conv1 = conv3x3(in_chans, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(block_drop_rate) if block_drop_rate else nn.Identity()
        self.residual = shortcut != "none"
        self.downsample = make_shortcut(shortcut, in_chans, planes, stride, with_norm=False)
        self.drop_path = DropPath(drop_path)
        self.stride = stride

    def last_norm(self) -> nn.Module:
        return self.conv2  # no norm ends the branch: zero the last conv, as timm does for pre-act nets

    def fold_pairs(self) -> list[FoldPair]:
        """conv1 -> bn2 only: bn1 precedes its conv, and the shortcut projects without a norm."""
        return conv_norm_pairs((self.conv1, self.bn2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(x))
        identity = x if self.downsample is None else self.downsample(out)
        out = self.conv1(out)
        out = self.conv2(self.dropout(self.relu(self.bn2(out))))
        if not self.residual:
            return out
        return self.drop_path(out) + identity


class PreActBottleneck(nn.Module):
    """BN-ReLU before each of the three bottleneck convolutions (He et al. 2016; ResNet-164)."""

    expansion = 4
    preact = True

    def __init__(
        self,
        in_chans: int,
        planes: int,
        stride: int = 1,
        *,
        shortcut: str = "B",
        groups: int = 1,
        base_width: int = 64,
        drop_path: float = 0.0,
        block_drop_rate: float = 0.0,
    ):
        super().__init__()
        if block_drop_rate:
            raise ValueError("block_drop_rate applies to PreActBasicBlock (wide ResNets) only")
        width = int(planes * (base_width / 64.0)) * groups
        out_chans = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(in_chans)
        self.conv1 = conv1x1(in_chans, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_chans)
        self.relu = nn.ReLU(inplace=True)
        self.residual = shortcut != "none"
        self.downsample = make_shortcut(shortcut, in_chans, out_chans, stride, with_norm=False)
        self.drop_path = DropPath(drop_path)
        self.stride = stride

    def last_norm(self) -> nn.Module:
        return self.conv3

    def fold_pairs(self) -> list[FoldPair]:
        return conv_norm_pairs((self.conv1, self.bn2), (self.conv2, self.bn3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(x))
        identity = x if self.downsample is None else self.downsample(out)
        out = self.conv1(out)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        if not self.residual:
            return out
        return self.drop_path(out) + identity
