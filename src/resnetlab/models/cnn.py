"""The plain CNN of the classic Keras image-classification tutorial: the non-residual baseline."""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register_model
from .base import ImageClassifier, make_classifier


class TutorialCNN(ImageClassifier):
    """Three 3x3 conv layers (32/64/128 filters, ReLU), each followed by 2x2 max-pooling; dense 128
    with ReLU; dense output.

    The convolutions pad by 1 ("same" in Keras terms) rather than the tutorial's "valid", so inputs as
    small as 8x8 still leave a feature map; the flatten size follows from `img_size`.
    """

    def __init__(self, *, num_classes: int = 10, in_chans: int = 3, img_size: int = 32, hidden: int = 128):
        super().__init__()
        if img_size < 8:
            raise ValueError(f"tutorial_cnn needs inputs of at least 8x8 pixels, got img_size={img_size}")
        self.conv1 = nn.Conv2d(in_chans, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.relu = nn.ReLU(inplace=True)
        side = img_size // 8  # three 2x2 poolings, each rounding down
        self.feature_shape = (128, side, side)
        self.fc1 = nn.Linear(128 * side * side, hidden)
        self.num_features = hidden
        self.fc = make_classifier(hidden, num_classes)
        self.default_input_size = (in_chans, img_size, img_size)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images float [N, C, H, W] -> feature map [N, 128, H/8, W/8]."""
        for conv in (self.conv1, self.conv2, self.conv3):
            x = self.pool(self.relu(conv(x)))
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.feature_shape:
            raise ValueError(
                f"tutorial_cnn was built for img_size={self.default_input_size[1]} (feature map "
                f"{self.feature_shape}) but got a feature map {tuple(x.shape[1:])}; resize the input "
                f"or build the model with the matching img_size"
            )
        x = self.relu(self.fc1(torch.flatten(x, 1)))
        return x if pre_logits else self.fc(x)




@register_model(family="baseline", paper="Keras/TensorFlow CNN tutorial", residual=False)
def tutorial_cnn(*, num_classes: int = 10, in_chans: int = 3, img_size: int = 32,
                 zero_init_residual: bool = False, drop_path_rate: float = 0.0) -> TutorialCNN:
    if zero_init_residual or drop_path_rate:
        raise ValueError("tutorial_cnn has no residual blocks: zero_init_residual and drop_path_rate do not apply")
    return TutorialCNN(num_classes=num_classes, in_chans=in_chans, img_size=img_size)
