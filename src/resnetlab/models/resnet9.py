"""ResNet-9: the fast residual CIFAR-10 network of David Page, "How to train your ResNet" (Myrtle.ai, 2018;
DAWNBench winner: 94% in 24 epochs), with airbench's refinements as options (Jordan 2024, arXiv:2404.00498).

Page's layout (part 4 of the series, "Architecture"): a prep conv of 64 channels, then three layers of
conv-BN-ReLU-maxpool with 128, 256 and 512 channels, a residual branch of two conv-BN-ReLU after layers 1
and 3, a global max-pool and a linear classifier whose output is multiplied by 0.125. `width` scales every
width (64 is Page's; `widths` sets the three layers' channels directly, airbench94's are 64, 256, 256),
`residual_convs` sets the convs per residual branch and `residual_layers` which layers
get one (Page: 1 and 3); `shortcut_layers` which of those add their input back (default all of them; the
others keep the branch's convs as a plain stack, so `shortcut_layers=()` on resnet8_airbench is airbench94's
network, conv for conv).

airbench94's choices (its published `hyp`), each an option here:
  - `stem="whiten"`: a 2x2 convolution of 2·C·4 channels (24 for RGB) initialised by `init_from_data` to
    whiten 2x2 patches of the training images (the eigenvectors of their covariance, scaled by 1/sqrt of
    the eigenvalues plus 5e-4, and their negatives); its weights stay frozen, its bias trains.
  - `activation="gelu"`; `norm="bias"`: BatchNorm with a learnable bias only (the scale is fixed at 1);
    `bn_momentum=0.4` (PyTorch's convention: airbench's 0.6 is the weight of the old statistics) and
    `bn_eps=1e-12`; `pool_first=True`: conv-maxpool-BN-activation (BatchNorm on a quarter of the pixels).
  - `head_scale`: the logits' multiplier (Page 0.125, airbench 1/9).
  - `conv_init="dirac"`: airbench94's initialisation of the 3x3 convs: PyTorch's default (uniform, bound
    1/sqrt(fan_in)) with the first in_channels filters set to identities (`nn.init.dirac_`), so each conv
    starts by passing its input through; `"pytorch"` is nn.Conv2d's default alone (uniform, bound
    1/sqrt(fan_in): 2.5x smaller than Kaiming's at 256 channels, so behind BatchNorm the first steps are
    ~6x larger); the default `"kaiming"` is He et al.'s normal init (fan_out).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..registry import register_model
from .base import ImageClassifier
from .layers import FoldPair

WHITEN_EPS = 5e-4  # airbench94: added to the patch covariance's eigenvalues before 1/sqrt
WHITEN_IMAGES = 5000  # airbench94 whitens from the first 5,000 training images


class ScaledLinear(nn.Linear):
    """A linear classifier whose output is multiplied by a fixed `scale` (Page's 0.125, airbench's 1/9): the
    logits start small, so the softmax is not saturated by the max-pooled features."""

    def __init__(self, in_features: int, out_features: int, scale: float) -> None:
        super().__init__(in_features, out_features, bias=False)  # Page and airbench use no bias here
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight) * self.scale

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale={self.scale:.4g}"


class ConvNormAct(nn.Module):
    """conv3x3 - [maxpool] - BatchNorm - activation, or with `pool_first=False` conv-BN-act-[maxpool] (Page)."""

    def __init__(self, in_chans: int, out_chans: int, *, pool: bool, pool_first: bool, act: type[nn.Module],
                 norm_scale: bool, bn_momentum: float, bn_eps: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chans, out_chans, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_chans, eps=bn_eps, momentum=bn_momentum)
        self.bn.weight.requires_grad_(norm_scale)  # norm="bias": the scale stays at its initial 1
        self.act = act()
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()
        self.pool_first = pool and pool_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool_first:
            return self.act(self.bn(self.pool(self.conv(x))))
        return self.pool(self.act(self.bn(self.conv(x))))

    def fold_pairs(self) -> list[FoldPair]:
        # a max-pool between conv and BN commutes with BN only for positive scales: not folded then
        return [] if self.pool_first else [(self.conv, self.bn)]


class Residual(nn.Module):
    """x + branch(x): Page's residual block, `convs` ConvNormActs of the same width; `shortcut=False` leaves
    branch(x), the plain twin with the same parameters (as plain20 is resnet20's)."""

    def __init__(self, chans: int, convs: int, shortcut: bool = True, **layer: object) -> None:
        super().__init__()
        self.branch = nn.Sequential(*(ConvNormAct(chans, chans, pool=False, **layer) for _ in range(convs)))
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x) if self.shortcut else self.branch(x)

    def extra_repr(self) -> str:
        return "" if self.shortcut else "shortcut=False"


class ResNet9(ImageClassifier):
    """See the module docstring. The classifier is `fc`, the first convolution `conv1` (the prep conv, or the
    whitening conv with stem="whiten")."""

    init_images = WHITEN_IMAGES

    def __init__(self, *, num_classes: int = 10, in_chans: int = 3, width: int = 64,
                 widths: tuple[int, int, int] | None = None, residual_convs: int = 2,
                 residual_layers: tuple[int, ...] = (1, 3), shortcut_layers: tuple[int, ...] | None = None,
                 stem: str = "conv", activation: str = "relu",
                 norm: str = "scale_and_bias", bn_momentum: float = 0.1, bn_eps: float = 1e-5,
                 pool_first: bool = False, head_scale: float = 0.125, conv_init: str = "kaiming") -> None:
        super().__init__()
        for name, layers in (("residual_layers", residual_layers), ("shortcut_layers", shortcut_layers)):
            if layers is not None and not isinstance(layers, (list, tuple)):  # 2 for (2,) would be a guess
                raise ValueError(f"{name} must be a list of layer numbers such as [1, 3], got {layers!r}")
        checks = [(width >= 1, f"width must be at least 1, got {width}"),
                  (widths is None or (len(widths) == 3 and min(widths) >= 1),
                   f"widths must be three positive channel counts (layer1, layer2, layer3), got {widths}"),
                  (residual_convs >= 1, f"residual_convs must be at least 1, got {residual_convs}"),
                  (set(residual_layers) <= {1, 2, 3},
                   f"residual_layers must name layers among 1, 2, 3, got {residual_layers}"),
                  (shortcut_layers is None or set(shortcut_layers) <= set(residual_layers),
                   f"shortcut_layers must be among residual_layers={tuple(residual_layers)}, got {shortcut_layers}"),
                  (stem in ("conv", "whiten"), f"stem must be conv or whiten, got {stem!r}"),
                  (activation in ("relu", "gelu"), f"activation must be relu or gelu, got {activation!r}"),
                  (norm in ("scale_and_bias", "bias"), f"norm must be scale_and_bias or bias, got {norm!r}"),
                  (0.0 < bn_momentum <= 1.0, f"bn_momentum must be in (0, 1], got {bn_momentum}"),
                  (head_scale > 0, f"head_scale must be > 0, got {head_scale}"),
                  (conv_init in ("kaiming", "dirac", "pytorch"),
                   f"conv_init must be kaiming, dirac or pytorch, got {conv_init!r}")]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        act = nn.GELU if activation == "gelu" else nn.ReLU
        layer = dict(pool_first=pool_first, act=act, norm_scale=norm == "scale_and_bias", bn_momentum=bn_momentum,
                     bn_eps=bn_eps)
        self.stem = stem
        if stem == "whiten":  # airbench: 2x2, no padding (32 -> 31 pixels), weights set from data and frozen
            stem_chans = 2 * in_chans * 2 * 2
            self.conv1 = nn.Conv2d(in_chans, stem_chans, 2, padding=0, bias=True)
            self.conv1.weight.requires_grad_(False)
            nn.init.zeros_(self.conv1.bias)
            self.prep: nn.Module = act()
        else:  # Page: prep = conv-BN-ReLU at `width` channels
            stem_chans = width
            self.conv1 = nn.Conv2d(in_chans, width, 3, padding=1, bias=False)
            self.prep = nn.Sequential(nn.BatchNorm2d(width, eps=bn_eps, momentum=bn_momentum), act())
            self.prep[0].weight.requires_grad_(norm == "scale_and_bias")
        widths = tuple(widths) if widths is not None else (2 * width, 4 * width, 8 * width)
        stages: list[nn.Module] = []
        chans = stem_chans
        for index, out in enumerate(widths, start=1):
            stage = [ConvNormAct(chans, out, pool=True, **layer)]
            if index in residual_layers:
                shortcut = shortcut_layers is None or index in shortcut_layers
                stage.append(Residual(out, residual_convs, shortcut, **layer))
            stages.append(nn.Sequential(*stage))
            chans = out
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveMaxPool2d(1)  # Page: MaxPool2d(4) on the 4x4 map; any input size here
        self.num_features = widths[-1]
        self.head_scale = float(head_scale)
        self.fc: nn.Module = ScaledLinear(widths[-1], num_classes, head_scale) if num_classes else nn.Identity()
        self.default_input_size = (in_chans, 32, 32)
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and module is not self.conv1:
                if conv_init in ("dirac", "pytorch"):  # nn.Conv2d's own init (airbench94's Conv.reset_parameters)
                    module.reset_parameters()
                    if conv_init == "dirac":  # ... then identities, as airbench94's
                        nn.init.dirac_(module.weight[:module.in_channels])
                else:
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        smallest = 9 if self.stem == "whiten" else 8  # three 2x2 max-pools, after the 2x2 stem's lost pixel
        if min(x.shape[-2:]) < smallest:
            # a ConfigError (a ValueError) so the CLI reports it as the setting it is, not as a crash
            raise ConfigError(f"{type(self).__name__} (stem={self.stem}) needs inputs of at least "
                              f"{smallest}x{smallest} pixels, got {tuple(x.shape[-2:])}; resize the images "
                              "(img_size=32 for an image folder or manifest) or pick a model for small inputs "
                              "(resnet20)")
        x = self.prep(self.conv1(x))
        return self.layer3(self.layer2(self.layer1(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.pool(x), 1)
        return x if pre_logits else self.fc(x)

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh scaled classifier (the scale is part of the architecture); 0 leaves pooled features."""
        super().reset_classifier(num_classes)
        if num_classes:
            self.fc = ScaledLinear(self.num_features, num_classes, self.head_scale)

    def fold_pairs(self) -> list[FoldPair]:
        return [(self.conv1, self.prep[0])] if self.stem == "conv" else []

    def whiten_bias(self) -> nn.Parameter | None:
        """The whitening conv's bias (train's whiten_bias_epochs freezes it after the first epochs)."""
        return self.conv1.bias if self.stem == "whiten" else None

    @torch.no_grad()
    def init_from_data(self, images: torch.Tensor) -> bool:
        """stem="whiten": set the first conv to whiten 2x2 patches of `images` (normalized [N, C, H, W], the
        first `init_images` are used); True when it did. The filters are the covariance's eigenvectors divided
        by sqrt(eigenvalue + WHITEN_EPS), largest first, then the same negated (airbench94)."""
        if self.stem != "whiten":
            return False
        conv = self.conv1
        x = images[:self.init_images].to(conv.weight.device, torch.float32)
        c, (h, w) = x.shape[1], conv.kernel_size
        patches = x.unfold(2, h, 1).unfold(3, w, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, c * h * w)
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
        order = eigenvalues.flip(0)
        filters = eigenvectors.T.flip(0).reshape(c * h * w, c, h, w) / torch.sqrt(order + WHITEN_EPS).view(-1, 1, 1, 1)
        conv.weight.copy_(torch.cat((filters, -filters)).to(conv.weight.dtype))
        return True


@register_model(family="fast", paper="Page 2018, How to train your ResNet (DAWNBench)")
def resnet9(*, num_classes: int = 10, in_chans: int = 3, **options: object) -> ResNet9:
    """Page's ResNet-9 as published: 6.57M parameters for 10 classes."""
    return ResNet9(num_classes=num_classes, in_chans=in_chans, **options)


@register_model(family="fast", paper="Page 2018 + airbench94 (Jordan 2024, arXiv:2404.00498)")
def resnet9_airbench(*, num_classes: int = 10, in_chans: int = 3, **options: object) -> ResNet9:
    """ResNet-9 with airbench94's choices: whitened 2x2 stem, GELU, bias-only BatchNorm (momentum 0.4, eps
    1e-12), pool before norm, logits x 1/9. Any of them can be given back as an option."""
    settings: dict[str, object] = dict(stem="whiten", activation="gelu", norm="bias", bn_momentum=0.4, bn_eps=1e-12,
                                       pool_first=True, head_scale=1 / 9)
    return ResNet9(num_classes=num_classes, in_chans=in_chans, **{**settings, **options})


@register_model(family="fast", paper="airbench94's layout (Jordan 2024) with residual connections (Page 2018)")
def resnet8_airbench(*, num_classes: int = 10, in_chans: int = 3, **options: object) -> ResNet9:
    """airbench94's network made residual: the whitened 2x2 stem, then three layers of 64, 256 and 256 channels,
    each a conv-pool-BN-activation followed by a residual conv-BN-activation (airbench's second conv of each
    group, here with a shortcut), ReLU by default (`activation="gelu"` is airbench94's: ~9% slower per step on the
    CPU, more learnt per epoch, so fast-cifar sets it; docs/benchmarks.md), bias-only BatchNorm (momentum 0.4,
    eps 1e-12), logits x 1/9: 1.97M parameters, as airbench94's net."""
    settings: dict[str, object] = dict(stem="whiten", widths=(64, 256, 256), residual_convs=1,
                                       residual_layers=(1, 2, 3), activation="relu", norm="bias", bn_momentum=0.4,
                                       bn_eps=1e-12, pool_first=True, head_scale=1 / 9)
    return ResNet9(num_classes=num_classes, in_chans=in_chans, **{**settings, **options})
