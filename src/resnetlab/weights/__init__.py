"""Pretrained weights by name: torchvision's, timm's (Hugging Face Hub) and the CIFAR ports.

    resnetlab.list_weights("resnet50")
    model = resnetlab.create_model("resnet50", weights="IMAGENET1K_V2")
    clf = resnetlab.Classifier("resnet50", weights="imagenet", num_classes=5)

entry.py is the registry, torchvision.py / timm.py / cifar.py the tables (importing them registers
them), fetch.py the download and cache, load.py the model building.
"""

from . import cifar, timm, torchvision  # noqa: F401  (registration side effect)
from .entry import WeightsEntry, find_weights, list_weights, register_weights, unregister_weights, weights_entries
from .fetch import WeightsError, cached_path, fetch, weights_dir
from .load import get_weights, open_model, pretrained_model

__all__ = ["WeightsEntry", "WeightsError", "cached_path", "fetch", "find_weights", "get_weights", "list_weights",
           "open_model", "pretrained_model", "register_weights", "unregister_weights", "weights_dir",
           "weights_entries"]
