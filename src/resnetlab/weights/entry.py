"""The weights registry: the one place that knows pretrained weights by name.

    list_weights("resnet50")       -> ["IMAGENET1K_V1", "IMAGENET1K_V2", "timm:resnet50.a1_in1k", ...]
    find_weights("resnet50", "DEFAULT").url

Each entry says where the file is published, its hash, the classes it predicts, the preprocessing it
was evaluated with, its published accuracy (with the source) and its license. The tables live beside
this file, one per source (torchvision.py, timm.py, cifar.py), with the facts copied from each
project's own code and model cards.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, did_you_mean, natural_key

# Keras applications' word for "the ImageNet weights"; torchvision's DEFAULT is "the best ones".
ALIASES = {"pretrained": "DEFAULT", "true": "DEFAULT"}
# A dataset's name picks the architecture's preferred weights trained on it: Keras' weights="imagenet",
# and "cifar10" / "cifar100" for the CIFAR nets.
DATASETS = ("imagenet", "cifar10", "cifar100")


@dataclass(frozen=True)
class WeightsEntry:
    """One published set of weights for one architecture.

    name: what `weights=` takes for `arch` ("IMAGENET1K_V2", "timm:resnet50.a1_in1k", "CIFAR10_AKAMASTER").
    url: the official address; `filename` is the file's name in the torch hub cache.
    sha256: the file's full SHA-256 where known; hash_prefix: the leading hex digits the publisher put in
        the file name (torch.hub's `check_hash` convention), checked during the download.
    hf_hub_id/hf_filename: a Hugging Face Hub file (timm), fetched by huggingface_hub into its own cache.
    classes: "imagenet", "cifar10", "cifar100" (the class-name list of that dataset).
    input_size, crop_pct, interpolation, mean, std: the evaluation preprocessing (crop_pct = crop / resize:
        torchvision's resize 256 -> crop 224 is 0.875, its V2 weights' 232 -> 224 is 0.9655).
    metrics: published accuracy in percent {"acc@1": .., "acc@5": ..} at `input_size`; metrics_source says
        where the numbers come from.
    options: architecture options the file needs (chenyaofo's CIFAR nets use projection shortcuts: B).
    rename: (old prefix, new prefix) pairs applied to the file's tensor names (akamaster calls fc `linear`).
    """

    arch: str
    name: str
    source: str  # torchvision | timm | akamaster | chenyaofo | a test's own
    url: str
    license: str
    classes: str
    num_params: int
    metrics: dict[str, float]
    metrics_source: str
    filename: str = ""
    sha256: str | None = None
    hash_prefix: str | None = None
    hf_hub_id: str | None = None
    hf_filename: str = "model.safetensors"
    file_size_mb: float | None = None
    input_size: tuple[int, int, int] = (3, 224, 224)
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    options: dict[str, Any] = field(default_factory=dict)
    rename: tuple[tuple[str, str], ...] = ()
    recipe: str = ""
    default: bool = False  # torchvision's DEFAULT for this architecture

    @property
    def num_classes(self) -> int:
        return {"imagenet": 1000, "cifar10": 10, "cifar100": 100}[self.classes]

    @property
    def qualified(self) -> str:
        """A name unique across architectures: "resnet50.IMAGENET1K_V2", or timm's own "timm:resnet50.a1_in1k"."""
        return self.name if self.name.startswith("timm:") else f"{self.arch}.{self.name}"

    @property
    def resize(self) -> int:
        """The shorter side images are resized to before the center crop (torchvision's resize_size)."""
        return round(self.input_size[1] / self.crop_pct)

    def provenance(self) -> dict[str, Any]:
        """What a model file made from these weights records about them (`resnetlab info` shows it)."""
        record = {"name": self.name, "arch": self.arch, "source": self.source,
                  "url": self.url, "license": self.license, "sha256": self.sha256, "hash_prefix": self.hash_prefix,
                  "hf_hub_id": self.hf_hub_id, "metrics": dict(self.metrics), "metrics_source": self.metrics_source}
        return {key: value for key, value in record.items() if value not in (None, "", {})}


_WEIGHTS: dict[tuple[str, str], WeightsEntry] = {}


def register_weights(*entries: WeightsEntry) -> None:
    """Add entries; an (arch, name) pair registered twice raises (one home for each fact)."""
    for entry in entries:
        key = (entry.arch, entry.name)
        if key in _WEIGHTS:
            raise ValueError(f"weights {entry.name} for {entry.arch} are already registered")
        _WEIGHTS[key] = entry


def unregister_weights(arch: str, name: str) -> None:
    """Remove an entry (tests register their own under a test name)."""
    _WEIGHTS.pop((arch, name), None)


def weights_entries(pattern: str = "*", *, source: str | None = None) -> list[WeightsEntry]:
    """Entries whose architecture (or qualified name) matches the shell-style `pattern`, in natural order."""
    found = [e for e in _WEIGHTS.values() if source in (None, e.source)
             and (fnmatch.fnmatch(e.arch, pattern) or fnmatch.fnmatch(e.qualified, pattern))]
    return sorted(found, key=lambda e: (natural_key(e.arch), not e.default, e.source != "torchvision", e.name))


def list_weights(model: str = "*") -> list[str]:
    """The names `weights=` takes: for one architecture its names ("IMAGENET1K_V2", "timm:resnet50.a1_in1k"),
    for a pattern ("resnet*") the qualified names ("resnet50.IMAGENET1K_V2")."""
    if any(e.arch == model for e in _WEIGHTS.values()):
        return [e.name for e in weights_entries(model) if e.arch == model]
    return [e.qualified for e in weights_entries(model)]


def find_weights(arch: str, name: str) -> WeightsEntry:
    """The entry `weights=name` means for `arch`: an exact name, DEFAULT (or imagenet), or timm's full name.

    An unknown name raises ConfigError with the closest name and the list for this architecture.
    """
    wanted = ALIASES.get(name.lower(), name)
    mine = {e.name: e for e in _WEIGHTS.values() if e.arch == arch}
    if wanted.upper() == "DEFAULT":
        defaults = [e for e in mine.values() if e.default]
        if defaults:
            return defaults[0]
        raise ConfigError(f"{arch} has no published pretrained weights"
                          + (f" marked DEFAULT; choose one of {', '.join(sorted(mine))}" if mine else
                             "; architectures with weights: `resnetlab weights`"))
    if wanted.lower() in DATASETS:  # "cifar10": this architecture's preferred weights for that dataset
        trained = [e for e in weights_entries(arch) if e.arch == arch and e.classes == wanted.lower()]
        if trained:
            return trained[0]
        raise ConfigError(f"no {wanted} weights for {arch}; choose one of {', '.join(sorted(mine)) or 'none'} "
                          f"(`resnetlab weights` lists all)")
    if wanted.startswith(f"{arch}."):  # the qualified name list_weights("resnet*") gives: resnet50.IMAGENET1K_V2
        wanted = wanted[len(arch) + 1:]
    for candidate in (wanted, wanted.upper(), f"timm:{wanted}", f"timm:{arch}.{wanted}"):
        if candidate in mine:
            return mine[candidate]
    elsewhere = [e for e in _WEIGHTS.values() if wanted in (e.name, e.qualified, f"timm:{e.qualified}")]
    if elsewhere:
        raise ConfigError(f"weights {name!r} are for {elsewhere[0].arch}, not {arch}: give model={elsewhere[0].arch}")
    choices = ", ".join(sorted(mine)) if mine else "none are registered (`resnetlab weights` lists all)"
    raise ConfigError(f"unknown weights {name!r} for {arch}{did_you_mean(wanted, mine)}; choose one of {choices}, "
                      f"DEFAULT, hf-hub:ORG/NAME, or give a weights file")
