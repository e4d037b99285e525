"""One configurable ResNet and the builders of every registered variant.

Variants are configuration (block, stage depths, widths, stem, shortcut), not new classes, as in timm.
State-dict names follow torchvision (`conv1`, `bn1`, `layer1..4`, `fc`, `downsample.0/1`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..registry import register_model
from .base import ImageClassifier, make_classifier
from .blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck
from .layers import FoldPair, conv_norm_pairs

STEMS = ("imagenet", "small")  # imagenet: 7x7/2 conv + 3x3/2 max-pool; small: 3x3/1 conv, no pool
Block = type[BasicBlock] | type[Bottleneck] | type[PreActBasicBlock] | type[PreActBottleneck]


class ResNet(ImageClassifier):
    """A residual network: stem, stages of blocks, global average pool, linear classifier.

    Args:
        block: block class stacked in every stage.
        layers: blocks per stage; stages after the first halve the resolution.
        widths: `planes` of each stage (output channels are planes * block.expansion).
        stem: "imagenet" (224x224-class inputs) or "small" (32x32-class inputs).
        stem_width: channels after the stem; defaults to widths[0].
        shortcut: "B" projection where shapes change, "A" zero-padding identity, "none" for plain nets.
        groups, width_per_group: ResNeXt cardinality and bottleneck width (wide ResNets use 128).
        zero_init_residual: zero each branch's last norm (or conv) so blocks start as identities
            (Goyal et al. 2017); helps large-batch training.
        drop_path_rate: stochastic depth rate of the last block, rising linearly from 0 at the first.
        block_drop_rate: dropout between the convolutions of pre-activation basic blocks (WRN).
    """

    def __init__(
        self,
        block: Block,
        layers: Sequence[int],
        widths: Sequence[int] = (64, 128, 256, 512),
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        stem: str = "imagenet",
        stem_width: int | None = None,
        shortcut: str = "B",
        groups: int = 1,
        width_per_group: int = 64,
        zero_init_residual: bool = False,
        drop_path_rate: float = 0.0,
        block_drop_rate: float = 0.0,
    ):
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"unknown stem {stem!r}; choose one of {', '.join(STEMS)}")
        if not 0.0 <= block_drop_rate < 1.0:
            raise ValueError(f"block_drop_rate must be in [0, 1), got {block_drop_rate}")
        if shortcut == "none" and (zero_init_residual or drop_path_rate):
            raise ValueError("plain networks have no residual branches: zero_init_residual and "
                             "drop_path_rate do not apply")
        if len(layers) != len(widths):
            raise ValueError(f"layers {tuple(layers)} and widths {tuple(widths)} differ in length")
        self.preact = block.preact
        self.stem = stem
        stem_width = widths[0] if stem_width is None else stem_width
        self.default_input_size = (in_chans, 224, 224) if stem == "imagenet" else (in_chans, 32, 32)

        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_chans, stem_width, 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_chans, stem_width, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        # A pre-activation net with the small stem feeds the conv straight into the first block's
        # BN-ReLU (He et al. 2016, CIFAR); otherwise the stem normalizes and activates itself.
        self.stem_norm = not (self.preact and stem == "small")
        self.bn1 = nn.BatchNorm2d(stem_width) if self.stem_norm else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

        total = sum(layers)
        drop_rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]  # linear decay rule
        channels, index = stem_width, 0
        self.stage_names: list[str] = []
        for stage, (depth, planes) in enumerate(zip(layers, widths)):
            blocks = []
            for i in range(depth):
                blocks.append(block(
                    channels, planes, stride=2 if (stage > 0 and i == 0) else 1, shortcut=shortcut,
                    groups=groups, base_width=width_per_group, drop_path=drop_rates[index],
                    block_drop_rate=block_drop_rate,
                ))
                channels, index = planes * block.expansion, index + 1
            self.add_module(f"layer{stage + 1}", nn.Sequential(*blocks))
            self.stage_names.append(f"layer{stage + 1}")
        self.bn_final = nn.BatchNorm2d(channels) if self.preact else nn.Identity()
        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = make_classifier(channels, num_classes)
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):  # He et al. 2015 (arXiv:1502.01852); torchvision's choice
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_residual:
            for module in self.modules():
                if hasattr(module, "last_norm"):
                    nn.init.zeros_(module.last_norm().weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images float [N, C, H, W] -> last feature map [N, num_features, h, w]."""
        x = self.conv1(x)
        if self.stem_norm:
            x = self.relu(self.bn1(x))
        x = self.maxpool(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        if self.preact:
            x = self.relu(self.bn_final(x))
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Feature map -> logits [N, num_classes] (or pooled features [N, num_features])."""
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)

    def fold_pairs(self) -> list[FoldPair]:
        """The stem's conv1 -> bn1 (a pre-activation net's bare small stem has none); blocks declare theirs."""
        return conv_norm_pairs((self.conv1, self.bn1))


def _imagenet_resnet(block: Block, layers: Sequence[int], **kw) -> ResNet:
    return ResNet(block, layers, (64, 128, 256, 512), **kw)


def _cifar_resnet(block: Block, depth: int, *, shortcut: str = "A", stem: str = "small", stem_width: int = 16,
                  **kw) -> ResNet:
    """He et al. 2015, Sec. 4.2: 6n+2 layers (9n+2 with bottlenecks) in three stages of 16/32/64 filters."""
    per_block = 3 if block.expansion == 4 else 2
    if (depth - 2) % (3 * per_block):
        raise ValueError(f"depth {depth} is not {3 * per_block}n+2")
    n = (depth - 2) // (3 * per_block)
    return ResNet(block, (n, n, n), (16, 32, 64), stem=stem, stem_width=stem_width, shortcut=shortcut, **kw)


def _wide_resnet(depth: int, k: int, *, stem: str = "small", stem_width: int = 16, **kw) -> ResNet:
    """Zagoruyko & Komodakis 2016: WRN-depth-k, pre-activation blocks of 16k/32k/64k filters."""
    n = (depth - 4) // 6
    return ResNet(PreActBasicBlock, (n, n, n), (16 * k, 32 * k, 64 * k), stem=stem, stem_width=stem_width, **kw)


_TV = "He et al. 2015; torchvision layout"


# ImageNet family: torchvision's architectures, names and parameter counts.
@register_model(family="imagenet", paper=_TV)
def resnet18(*, num_classes: int = 1000, **kw) -> ResNet:
    return _imagenet_resnet(BasicBlock, (2, 2, 2, 2), num_classes=num_classes, **kw)


@register_model(family="imagenet", paper=_TV)
def resnet34(*, num_classes: int = 1000, **kw) -> ResNet:
    return _imagenet_resnet(BasicBlock, (3, 4, 6, 3), num_classes=num_classes, **kw)


@register_model(family="imagenet", paper=_TV)
def resnet50(*, num_classes: int = 1000, **kw) -> ResNet:
    return _imagenet_resnet(Bottleneck, (3, 4, 6, 3), num_classes=num_classes, **kw)


@register_model(family="imagenet", paper=_TV)
def resnet101(*, num_classes: int = 1000, **kw) -> ResNet:
    return _imagenet_resnet(Bottleneck, (3, 4, 23, 3), num_classes=num_classes, **kw)


@register_model(family="imagenet", paper=_TV)
def resnet152(*, num_classes: int = 1000, **kw) -> ResNet:
    return _imagenet_resnet(Bottleneck, (3, 8, 36, 3), num_classes=num_classes, **kw)


@register_model(family="imagenet", paper="Zagoruyko & Komodakis 2016; torchvision layout")
def wide_resnet50_2(*, num_classes: int = 1000, **kw) -> ResNet:
    return _imagenet_resnet(Bottleneck, (3, 4, 6, 3), num_classes=num_classes, width_per_group=128, **kw)


@register_model(family="imagenet", paper="Zagoruyko & Komodakis 2016; torchvision layout")
def wide_resnet101_2(*, num_classes: int = 1000, **kw) -> ResNet:
    return _imagenet_resnet(Bottleneck, (3, 4, 23, 3), num_classes=num_classes, width_per_group=128, **kw)


@register_model(family="imagenet", paper="Xie et al. 2017; torchvision layout")
def resnext50_32x4d(*, num_classes: int = 1000, **kw) -> ResNet:
    return _imagenet_resnet(Bottleneck, (3, 4, 6, 3), num_classes=num_classes, groups=32, width_per_group=4, **kw)


@register_model(family="imagenet", paper="Xie et al. 2017; torchvision layout")
def resnext101_32x8d(*, num_classes: int = 1000, **kw) -> ResNet:
    return _imagenet_resnet(Bottleneck, (3, 4, 23, 3), num_classes=num_classes, groups=32, width_per_group=8, **kw)


@register_model(family="imagenet", paper="Xie et al. 2017; torchvision layout")
def resnext101_64x4d(*, num_classes: int = 1000, **kw) -> ResNet:
    return _imagenet_resnet(Bottleneck, (3, 4, 23, 3), num_classes=num_classes, groups=64, width_per_group=4, **kw)


# The paper's CIFAR family (He et al. 2015, Sec. 4.2), option-A shortcuts by default.
_CIFAR = "He et al. 2015, Sec. 4.2"


@register_model(family="cifar", paper=_CIFAR)
def resnet20(*, num_classes: int = 10, **kw) -> ResNet:
    return _cifar_resnet(BasicBlock, 20, num_classes=num_classes, **kw)


@register_model(family="cifar", paper=_CIFAR)
def resnet32(*, num_classes: int = 10, **kw) -> ResNet:
    return _cifar_resnet(BasicBlock, 32, num_classes=num_classes, **kw)


@register_model(family="cifar", paper=_CIFAR)
def resnet44(*, num_classes: int = 10, **kw) -> ResNet:
    return _cifar_resnet(BasicBlock, 44, num_classes=num_classes, **kw)


@register_model(family="cifar", paper=_CIFAR)
def resnet56(*, num_classes: int = 10, **kw) -> ResNet:
    return _cifar_resnet(BasicBlock, 56, num_classes=num_classes, **kw)


@register_model(family="cifar", paper=_CIFAR)
def resnet110(*, num_classes: int = 10, **kw) -> ResNet:
    return _cifar_resnet(BasicBlock, 110, num_classes=num_classes, **kw)


@register_model(family="cifar", paper=_CIFAR)
def resnet1202(*, num_classes: int = 10, **kw) -> ResNet:
    return _cifar_resnet(BasicBlock, 1202, num_classes=num_classes, **kw)


# Plain twins: the same nets without shortcuts, for the paper's degradation experiment (Fig. 6).
_PLAIN = "He et al. 2015, Sec. 4.2, plain baseline"


@register_model(family="plain", paper=_PLAIN, residual=False)
def plain20(*, num_classes: int = 10, **kw) -> ResNet:
    return _cifar_resnet(BasicBlock, 20, num_classes=num_classes, shortcut="none", **kw)


@register_model(family="plain", paper=_PLAIN, residual=False)
def plain32(*, num_classes: int = 10, **kw) -> ResNet:
    return _cifar_resnet(BasicBlock, 32, num_classes=num_classes, shortcut="none", **kw)


@register_model(family="plain", paper=_PLAIN, residual=False)
def plain44(*, num_classes: int = 10, **kw) -> ResNet:
    return _cifar_resnet(BasicBlock, 44, num_classes=num_classes, shortcut="none", **kw)


@register_model(family="plain", paper=_PLAIN, residual=False)
def plain56(*, num_classes: int = 10, **kw) -> ResNet:
    return _cifar_resnet(BasicBlock, 56, num_classes=num_classes, shortcut="none", **kw)


@register_model(family="plain", paper=_PLAIN, residual=False)
def plain110(*, num_classes: int = 10, **kw) -> ResNet:
    return _cifar_resnet(BasicBlock, 110, num_classes=num_classes, shortcut="none", **kw)


# Pre-activation ResNets (He et al. 2016, "Identity Mappings in Deep Residual Networks").
_PREACT = "He et al. 2016 (identity mappings)"


@register_model(family="preact", paper=_PREACT + "; 3x3 stem as in its common CIFAR use")
def preact_resnet18(*, num_classes: int = 10, stem: str = "small", **kw) -> ResNet:
    return _imagenet_resnet(PreActBasicBlock, (2, 2, 2, 2), num_classes=num_classes, stem=stem, **kw)


@register_model(family="preact", paper=_PREACT)
def preact_resnet110(*, num_classes: int = 10, shortcut: str = "B", **kw) -> ResNet:
    return _cifar_resnet(PreActBasicBlock, 110, num_classes=num_classes, shortcut=shortcut, **kw)


@register_model(family="preact", paper=_PREACT)
def preact_resnet164(*, num_classes: int = 10, shortcut: str = "B", **kw) -> ResNet:
    return _cifar_resnet(PreActBottleneck, 164, num_classes=num_classes, shortcut=shortcut, **kw)


@register_model(family="preact", paper=_PREACT)
def preact_resnet1001(*, num_classes: int = 10, shortcut: str = "B", **kw) -> ResNet:
    return _cifar_resnet(PreActBottleneck, 1001, num_classes=num_classes, shortcut=shortcut, **kw)


# Wide ResNets (Zagoruyko & Komodakis 2016), WRN-depth-k.
_WRN = "Zagoruyko & Komodakis 2016"


@register_model(family="wide", paper=_WRN)
def wrn16_8(*, num_classes: int = 10, **kw) -> ResNet:
    return _wide_resnet(16, 8, num_classes=num_classes, **kw)


@register_model(family="wide", paper=_WRN)
def wrn28_10(*, num_classes: int = 10, **kw) -> ResNet:
    return _wide_resnet(28, 10, num_classes=num_classes, **kw)


@register_model(family="wide", paper=_WRN)
def wrn40_4(*, num_classes: int = 10, **kw) -> ResNet:
    return _wide_resnet(40, 4, num_classes=num_classes, **kw)
