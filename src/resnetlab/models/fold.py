"""BatchNorm folding: each conv -> BatchNorm pair the model declares, merged into one convolution.

Used by export (ONNX, TorchScript) and by the inference backends; eval-mode arithmetic is unchanged
(checked against the unfolded model to 1e-4 by every export).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights


def _fold(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    """Fold an eval-mode BatchNorm into the convolution before it (in place; PyTorch's own arithmetic)."""
    conv.weight, conv.bias = fuse_conv_bn_weights(conv.weight, conv.bias, norm.running_mean, norm.running_var,
                                                  norm.eps, norm.weight, norm.bias)


def fold_batchnorm(model: nn.Module, *, copy_first: bool = True) -> nn.Module:
    """`model` (a copy unless copy_first=False) in eval mode with every conv -> BatchNorm pair merged
    into one convolution.

    The pairs are what the model and its blocks declare (`fold_pairs()`); pre-activation blocks
    (BatchNorm -> ReLU -> conv) declare only the pairs that exist and keep their other norms.
    """
    folded = (copy.deepcopy(model) if copy_first else model).eval()
    place = {id(child): (parent, name) for parent in folded.modules() for name, child in parent.named_children()}
    pairs = [pair for module in folded.modules() if hasattr(module, "fold_pairs") for pair in module.fold_pairs()]
    with torch.no_grad():
        for conv, norm in pairs:
            _fold(conv, norm)
            parent, name = place[id(norm)]
            setattr(parent, name, nn.Identity())
    return folded
