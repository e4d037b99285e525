"""The interface every registered model shares (timm's): features, head, replaceable classifier and
an adaptable first convolution.

The names of the classifier and of the first convolution live here, as class attributes (timm's
`pretrained_cfg["classifier"]` and `["first_conv"]`): head replacement, backbone freezing, pretrained
loading, weight import and BatchNorm folding go through these methods, never through the names.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .layers import FoldPair, adapt_input_conv


class ImageClassifier(nn.Module):
    """Base of every registered model.

    Subclasses define `forward_features`, `forward_head`, a linear classifier (the submodule named
    `classifier_name`) fed by `num_features` inputs, a first convolution (named `first_conv_name`),
    and `default_input_size` (C, H, W).
    """

    classifier_name = "fc"  # the layer reset_classifier replaces (torchvision's and timm's name for ResNets)
    first_conv_name = "conv1"  # the layer that sees the image's channels
    num_features: int
    default_input_size: tuple[int, int, int]
    init_images = 0  # training images a fresh model wants for `init_from_data` (0: none)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images float [N, C, H, W] -> logits [N, num_classes], or pooled features [N, num_features]
        when num_classes is 0."""
        return self.forward_head(self.forward_features(x))

    def init_from_data(self, images: torch.Tensor) -> bool:
        """Data-dependent initialisation of a fresh model from normalized training images [N, C, H, W]
        (resnet9_airbench whitens its first conv); True when it did anything. Default: nothing."""
        return False

    # --- the classifier ----------------------------------------------------------------------------

    def get_classifier(self) -> nn.Module:
        """The classifier: a Linear of num_features -> num_classes, or nn.Identity when num_classes is 0."""
        return self.get_submodule(self.classifier_name)

    @property
    def num_classes(self) -> int:
        """Outputs of the classifier; 0 when the model returns pooled features."""
        head = self.get_classifier()
        return head.out_features if isinstance(head, nn.Linear) else 0

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a fresh one; 0 leaves pooled features [N, num_features] as the output."""
        _set_submodule(self, self.classifier_name, make_classifier(self.num_features, num_classes))
        if hasattr(self, "arch"):  # keep the rebuild recipe (set by create_model) truthful
            self.arch = dataclasses.replace(self.arch, num_classes=num_classes)

    # --- the first convolution ---------------------------------------------------------------------

    def get_first_conv(self) -> nn.Conv2d:
        """The convolution that takes the image: its weight is [out, in_chans, kh, kw]."""
        conv = self.get_submodule(self.first_conv_name)
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"{type(self).__name__}.{self.first_conv_name} is a {type(conv).__name__}, "
                            f"not the Conv2d first_conv_name should name")
        return conv

    @property
    def in_chans(self) -> int:
        """Channels of the input images (1 for grayscale, 3 for RGB)."""
        return self.get_first_conv().in_channels

    def set_in_chans(self, in_chans: int) -> None:
        """Rebuild the first convolution for `in_chans` input channels from its current filters
        (`adapt_input_conv`: 3 -> 1 sums over RGB, other counts repeat and rescale)."""
        old = self.get_first_conv()
        if in_chans == old.in_channels:
            return
        new = nn.Conv2d(in_chans, old.out_channels, old.kernel_size, stride=old.stride, padding=old.padding,
                        dilation=old.dilation, groups=old.groups, bias=old.bias is not None,
                        padding_mode=old.padding_mode, device=old.weight.device, dtype=old.weight.dtype)
        with torch.no_grad():
            new.weight.copy_(adapt_input_conv(in_chans, old.weight))
            if old.bias is not None:
                new.bias.copy_(old.bias)
        _set_submodule(self, self.first_conv_name, new)
        self.default_input_size = (in_chans, *self.default_input_size[1:])
        if hasattr(self, "arch"):
            self.arch = dataclasses.replace(self.arch, in_chans=in_chans)

    # --- BatchNorm folding -------------------------------------------------------------------------

    def fold_pairs(self) -> list[FoldPair]:
        """This module's own (conv, BatchNorm) pairs that export may merge; blocks declare theirs."""
        return []


def make_classifier(num_features: int, num_classes: int) -> nn.Module:
    """A Linear of num_features -> num_classes, or nn.Identity for 0 (the model then outputs pooled features)."""
    if num_classes < 0:
        raise ValueError(f"num_classes must be 0 (pooled features) or more, got {num_classes}")
    return nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()


def _set_submodule(root: nn.Module, target: str, module: nn.Module) -> None:
    """Put `module` at the dotted path `target` below `root` (replacing what is there)."""
    parent_name, _, name = target.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, name, module)
