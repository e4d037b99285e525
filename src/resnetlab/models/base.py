"""The interface every registered model shares (timm's): features, head, replaceable classifier."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn


class ImageClassifier(nn.Module):
    """Base of every registered model.

    Subclasses define `forward_features`, `forward_head`, a linear classifier `fc` fed by
    `num_features` inputs, and `default_input_size` (C, H, W).
    """

    num_features: int
    default_input_size: tuple[int, int, int]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a fresh one; 0 leaves pooled features as the output."""
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if hasattr(self, "arch"):  # keep the rebuild recipe (set by create_model) truthful
            self.arch = dataclasses.replace(self.arch, num_classes=num_classes)
