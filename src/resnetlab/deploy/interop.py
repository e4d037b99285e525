"""Weights to and from torchvision and timm, without importing either.

    resnetlab import-weights resnet50-0676ba61.pth arch=resnet50 out=resnet50.safetensors
    resnetlab export model.safetensors format=torchvision out=resnet50.pth

Their ResNet state dicts use the same names as ours (conv1, bn1, layer1..4, fc), so importing is a
strict load plus the preprocessing torchvision documents for its ImageNet weights, which then travels
in the model file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch

from ..checkpoint import check_tensors, save_model
from ..data.stats import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD, IMAGENET_MEAN, IMAGENET_STD
from ..errors import ModelFileError
from ..info import ModelInfo
from ..registry import create_model, get_model_entry
from ..statedict import read_state_dict

TORCHVISION_RESIZE = 256  # torchvision's ImageNet evaluation: resize to 256, center-crop 224 (crop_pct 0.875)


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet-1k class names in index order (as torchvision's weights metadata lists them)."""
    text = resources.files("resnetlab.data").joinpath("resources/imagenet_classes.txt").read_text()
    return [line for line in text.splitlines() if line]


def import_weights(path: str | Path, arch: str, out: str | Path, *, class_names: list[str] | None = None,
                   img_size: int | None = None, crop_pct: float | None = None,
                   interpolation: str = "bilinear", mean: tuple[float, ...] | None = None,
                   std: tuple[float, ...] | None = None, options: dict | None = None) -> tuple[Path, ModelInfo]:
    """Turn a torchvision/timm state dict (.pth via weights_only=True, or .safetensors) into a model file.

    The class count comes from the file's classifier. Preprocessing not given follows the architecture:
    an ImageNet-stem net gets torchvision's (224 px, resize 256 + center crop, ImageNet mean/std), a
    small-stem (CIFAR) net 32 px with no crop and CIFAR-10's (100 classes: CIFAR-100's) mean/std. Class
    names: ImageNet's for 1,000 classes, CIFAR's for a small-stem net of 10 or 100, else "0".."n-1".
    Missing, unexpected or mis-shaped tensors raise ModelFileError listing them.
    """
    path = Path(path)
    get_model_entry(arch)
    tensors = read_state_dict(path)
    with torch.device("meta"):  # no memory, no initialization: only to ask the architecture its layer names
        probe = create_model(arch, **(options or {}))
    head, first = f"{probe.classifier_name}.weight", f"{probe.first_conv_name}.weight"
    if head not in tensors:
        raise ModelFileError(f"{path} has no classifier ({head}); is it a ResNet state dict?")
    num_classes = int(tensors[head].shape[0])
    in_chans = int(tensors[first].shape[1]) if first in tensors else 3
    model = create_model(arch, num_classes=num_classes, in_chans=in_chans, **(options or {}))
    tensors = check_tensors(path, model, tensors)  # exact names and shapes, or an error listing them
    model.load_state_dict(tensors, strict=True)
    small = model.default_input_size[1] <= 64  # the CIFAR stem: 32x32-class inputs
    if class_names is None:
        from ..weights.load import class_names as dataset_classes

        known = {1000: "imagenet", **({10: "cifar10", 100: "cifar100"} if small else {})}.get(num_classes)
        class_names = dataset_classes(known) if known else [str(i) for i in range(num_classes)]
    default_mean, default_std = ((CIFAR100_MEAN, CIFAR100_STD) if num_classes == 100 else (CIFAR10_MEAN, CIFAR10_STD)) \
        if small else (IMAGENET_MEAN, IMAGENET_STD)
    mean, std = tuple(mean or default_mean), tuple(std or default_std)
    if in_chans == 1 and len(mean) == 3:  # a gray net from RGB statistics: their average
        mean, std = (sum(mean) / 3,), (sum(std) / 3,)
    side = img_size or model.default_input_size[1]
    crop = crop_pct if crop_pct is not None else (1.0 if small else 224 / TORCHVISION_RESIZE)
    info = ModelInfo(arch=model.arch, class_names=class_names, input_size=(in_chans, side, side),
                     mean=mean[:in_chans], std=std[:in_chans], interpolation=interpolation, crop_pct=crop,
                     training={"imported_from": path.name})
    return save_model(out, model.eval(), info), info


def export_state_dict(model_path: str | Path, out: str | Path) -> Path:
    """Write a model file's weights as a plain state dict .pth that torchvision/timm load with strict=True
    (read back and checked against the model: `resnetlab.export.export_torchvision`)."""
    from .export import export_file

    return export_file(model_path, "torchvision", out).path
