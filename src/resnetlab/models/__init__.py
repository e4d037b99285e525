"""Model architectures; importing this package registers every builder."""

from . import cnn, resnet, resnet9  # noqa: F401  (registration side effect)
from .base import ImageClassifier
from .blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck
from .cnn import TutorialCNN
from .resnet import ResNet
from .resnet9 import ResNet9

__all__ = ["BasicBlock", "Bottleneck", "ImageClassifier", "PreActBasicBlock", "PreActBottleneck", "ResNet",
           "ResNet9", "TutorialCNN"]
