"""From a weights name (or file) to a model with those weights and the preprocessing they need.

    model, info, notes = pretrained_model("resnet50", "IMAGENET1K_V2")             # 1000 ImageNet classes
    model, info, notes = pretrained_model("resnet50", "imagenet", num_classes=5)   # new head, same features
    model, info = open_model("resnet50", "DEFAULT")   # what predict/evaluate/export/serve/explain/embed call

`weights` is a registered name (`resnetlab weights`), `hf-hub:ORG/NAME` (any timm-format ResNet on the
Hugging Face Hub), or a file: a resnetlab model file, or a torchvision/timm state dict (.pth read with
weights_only=True, .safetensors).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import load_model, read_info
from ..data.verify import cached_digest
from ..errors import ConfigError, ModelFileError
from ..info import INTERPOLATIONS, ModelInfo
from ..registry import create_model, get_model_entry
from ..statedict import load_adapted, read_state_dict
from .entry import WeightsEntry, find_weights
from .fetch import fetch, fetch_hub_file

HF_PREFIX = "hf-hub:"
TRAINING_OPTIONS = ("drop_path_rate", "zero_init_residual", "block_drop_rate")  # no effect on a file's tensors
FILE_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".h5", ".hdf5", ".th", ".ckpt")


def class_names(classes: str) -> list[str]:
    """The class names of a dataset whose labels pretrained weights predict, in index order."""
    if classes == "cifar10":
        from ..data.cifar import CIFAR10_CLASSES

        return list(CIFAR10_CLASSES)
    text = resources.files("resnetlab.data").joinpath(f"resources/{classes}_classes.txt").read_text()
    return [line for line in text.splitlines() if line]


@dataclass
class Weights:
    """Tensors to start a model from, and what is known about them."""

    tensors: dict[str, torch.Tensor]
    path: Path
    arch: str | None = None  # the architecture they are for, when the source says (a Hub config, a model file)
    class_names: list[str] | None = None
    preprocess: dict[str, Any] | None = None  # input_size, crop_pct, interpolation, mean, std
    options: dict[str, Any] = field(default_factory=dict)  # architecture options they need
    provenance: dict[str, Any] = field(default_factory=dict)


def is_weights_name(text: str) -> bool:
    """Whether `weights=text` names published weights rather than a file (used to tell the user which)."""
    return text.startswith(HF_PREFIX) or not (Path(text).suffix.lower() in FILE_SUFFIXES or "/" in text
                                             or Path(text).exists())


def get_weights(arch: str, weights: str, *, progress: bool = True) -> Weights:
    """Resolve `weights` for architecture `arch`, fetching the file once and checking its hash."""
    if not isinstance(weights, str) or not weights.strip():
        raise ConfigError(f"weights must be a name (`resnetlab weights {arch}`) or a file, got {weights!r}")
    weights = weights.strip()
    if weights.startswith(HF_PREFIX):
        return _hub_weights(arch, weights[len(HF_PREFIX):])
    if not is_weights_name(weights):
        return _file_weights(Path(weights))
    entry = find_weights(arch, weights)
    return entry_weights(entry, fetch(entry, progress=progress))


def entry_weights(entry: WeightsEntry, path: Path) -> Weights:
    tensors = _renamed(read_state_dict(path), entry.rename)
    preprocess = {"input_size": entry.input_size, "crop_pct": entry.crop_pct, "interpolation": entry.interpolation,
                  "mean": entry.mean, "std": entry.std}
    provenance = {**entry.provenance(), "file": path.name, "sha256": cached_digest(path, "sha256")}
    return Weights(tensors, path, entry.arch, class_names(entry.classes), preprocess, dict(entry.options), provenance)


def _renamed(tensors: dict[str, torch.Tensor], rename: tuple[tuple[str, str], ...]) -> dict[str, torch.Tensor]:
    for old, new in rename:
        tensors = {(new + k[len(old):] if k.startswith(old) else k): v for k, v in tensors.items()}
    return tensors


def _file_weights(path: Path) -> Weights:
    if not path.is_file():
        raise ConfigError(f"weights={path}: no such file; give a model file, a state dict (.pth, .safetensors) or "
                          f"a weights name (`resnetlab weights` lists them)")
    provenance = {"source": "file", "file": path.name, "sha256": cached_digest(path, "sha256")}
    try:
        info = read_info(path)  # a resnetlab model file says what it is; a bare state dict does not
    except ModelFileError:
        return Weights(read_state_dict(path), path, provenance=provenance)
    preprocess = {"input_size": info.input_size, "crop_pct": info.crop_pct, "interpolation": info.interpolation,
                  "mean": info.mean, "std": info.std}
    if info.pretrained:  # a fine-tuned file: keep the chain back to the published weights
        provenance["started_from"] = info.pretrained
    layout = {k: v for k, v in info.arch.options.items() if k not in TRAINING_OPTIONS}  # what shapes the tensors
    return Weights(read_state_dict(path), path, info.arch.name, info.class_names, preprocess, layout, provenance)


def _hub_weights(arch: str | None, repo_id: str) -> Weights:
    """A timm-format repository: config.json (architecture, classes, pretrained_cfg) and its weights."""
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ConfigError(f"hf-hub:{repo_id}: give the repository as hf-hub:ORG/NAME "
                          f"(e.g. hf-hub:timm/resnet50.a1_in1k)")
    found = fetch_hub_file(repo_id, ("config.json",), required=False)
    config: dict[str, Any] = {}
    if found:
        try:
            config = json.loads(found[0].read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"{found[0]} (hf-hub:{repo_id}/config.json) is not readable JSON: {exc}") from None
    path, name = fetch_hub_file(repo_id, ("model.safetensors", "pytorch_model.bin"))
    hub_arch = str(config.get("architecture", "")).split(".")[0] or None
    if hub_arch is not None:
        try:
            get_model_entry(hub_arch)
        except ConfigError:
            raise ConfigError(f"hf-hub:{repo_id} is a timm {hub_arch}, which resnetlab does not build; resnetlab "
                              f"reads timm's ResNets that it has (`resnetlab models`)") from None
    cfg = config.get("pretrained_cfg", {}) if isinstance(config.get("pretrained_cfg"), dict) else {}
    preprocess = _timm_preprocess(cfg) if cfg else None
    num_classes = config.get("num_classes")
    labels = config.get("label_names")
    names = None
    if isinstance(labels, list) and len(labels) == num_classes:
        names = [str(n) for n in labels]
    elif num_classes == 1000:
        names = class_names("imagenet")
    provenance = {"name": f"hf-hub:{repo_id}", "source": "hf-hub", "hf_hub_id": repo_id,
                  "url": f"https://huggingface.co/{repo_id}", "license": str(cfg.get("license", "see the model card")),
                  "file": name, "sha256": cached_digest(path, "sha256")}
    tensors = read_state_dict(path)
    return Weights(tensors, path, hub_arch or arch, names, preprocess, provenance=provenance)


def _timm_preprocess(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """timm's pretrained_cfg -> our preprocessing; its test_input_size/test_crop_pct are what it evaluates at."""
    size = cfg.get("test_input_size") or cfg.get("input_size")
    crop = cfg.get("test_crop_pct") or cfg.get("crop_pct") or 0.875
    try:
        channels, height, width = (int(v) for v in size)
        return {"input_size": (channels, height, width), "crop_pct": float(crop),
                "interpolation": cfg.get("interpolation", "bilinear") if cfg.get("interpolation") in INTERPOLATIONS
                else "bilinear", "mean": tuple(map(float, cfg.get("mean", (0.485, 0.456, 0.406)))),
                "std": tuple(map(float, cfg.get("std", (0.229, 0.224, 0.225))))}
    except (TypeError, ValueError):
        return None  # a config without usable sizes: the defaults of the caller apply


def _check_arch(arch: str, weights: Weights, given: str) -> None:
    if weights.arch and weights.arch != arch:
        raise ConfigError(f"weights {given} are for {weights.arch}, not {arch}: give model={weights.arch}")


def pretrained_model(arch: str, weights: str, *, num_classes: int | None = None, in_chans: int | None = None,
                     progress: bool = True, **options: Any) -> tuple[nn.Module, ModelInfo, list[str]]:
    """Build `arch` with `weights`; return (model, info, notes on what was adapted).

    num_classes: None keeps the weights' classifier; another count replaces it with a fresh one (Keras
        applications' include_top=False + a new head); 0 leaves pooled features as the output.
    in_chans: 1 sums the first convolution's RGB filters (timm's rule); None keeps the weights' channels.
    The info carries the weights' preprocessing and provenance, so a model file saved from it (or fine-tuned
    from it) says where its weights came from.
    """
    source = get_weights(arch, weights, progress=progress)
    _check_arch(arch, source, weights)
    return build_from(arch, source, num_classes=num_classes, in_chans=in_chans, **options)


def build_from(arch: str, source: Weights, *, num_classes: int | None = None, in_chans: int | None = None,
               img_size: int | None = None, **options: Any) -> tuple[nn.Module, ModelInfo, list[str]]:
    """The model of `arch` started from `source` (see pretrained_model), with the info its file would record."""
    published = source.provenance.get("source") != "file"
    for key, value in source.options.items():  # a published file's layout is not negotiable
        if published and key in options and options[key] != value:
            raise ConfigError(f"the weights {source.provenance.get('name', source.path.name)} need {key}={value!r}; "
                              f"leave {key}={options[key]!r} out")
    options = {**source.options, **options}
    recorded_size = options.pop("img_size", None)  # tutorial_cnn records it; the size asked for now wins
    img_size = img_size or recorded_size
    head = _head_classes(source.tensors)
    own = head if num_classes is None else int(num_classes)
    if own is None:
        raise ConfigError(f"{source.path.name} has no classifier; give num_classes")
    stem = _stem_channels(source.tensors)
    chans = in_chans or stem or 3
    model = create_model(arch, num_classes=own, in_chans=chans, img_size=img_size, **options)
    notes = load_adapted(model, source.tensors, source.path)
    pre = source.preprocess or {}
    size = pre.get("input_size") or model.default_input_size
    height, width = (img_size, img_size) if img_size else size[1:]
    mean, std = tuple(pre.get("mean", ())), tuple(pre.get("std", ()))
    if not mean:
        from ..data.stats import IMAGENET_MEAN, IMAGENET_STD

        mean, std = IMAGENET_MEAN, IMAGENET_STD
    if len(mean) != chans and not isinstance(mean[0], (list, tuple)):  # RGB statistics for a gray model
        mean, std = (sum(mean) / len(mean),) * chans, (sum(std) / len(std),) * chans
    names = source.class_names if source.class_names and len(source.class_names) == own else \
        [str(i) for i in range(own)]
    info = ModelInfo(arch=model.arch, class_names=names if own else [], input_size=(chans, height, width),
                     mean=mean, std=std, interpolation=pre.get("interpolation", "bilinear"),
                     crop_pct=pre.get("crop_pct", 0.875), pretrained=dict(source.provenance))
    return model.eval(), info, notes


def _head_classes(tensors: dict[str, torch.Tensor]) -> int | None:
    from ..models.base import ImageClassifier

    weight = tensors.get(f"{ImageClassifier.classifier_name}.weight")
    return int(weight.shape[0]) if weight is not None and weight.ndim == 2 else None


def _stem_channels(tensors: dict[str, torch.Tensor]) -> int | None:
    from ..models.base import ImageClassifier

    weight = tensors.get(f"{ImageClassifier.first_conv_name}.weight")
    return int(weight.shape[1]) if weight is not None and weight.ndim == 4 else None


def open_model(model: str | Path, weights: str | None = None, *, device: str | torch.device = "cpu",
               ema: bool = True) -> tuple[nn.Module, ModelInfo]:
    """A model to use, in eval mode: a model file (`model=run/best.safetensors`), or an architecture with
    published weights (`model=resnet50 weights=DEFAULT`)."""
    if weights is None or weights == "":
        path = Path(model)
        if not path.exists() and _is_arch(str(model)):
            raise ConfigError(f"model={model} is an architecture: say which weights, e.g. weights=DEFAULT "
                              f"(`resnetlab weights {model}` lists them), or give a model file")
        return load_model(path, device, ema=ema)
    if Path(model).is_file():
        raise ConfigError(f"give either a model file ({model}) or an architecture with weights=, not both")
    network, info, _ = pretrained_model(str(model), weights)
    if not info.class_names:
        raise ConfigError("num_classes=0 gives features, not predictions")
    return network.to(device).eval(), info


def _is_arch(name: str) -> bool:
    try:
        get_model_entry(name)
    except ConfigError:
        return False
    return True
