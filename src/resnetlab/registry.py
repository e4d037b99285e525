"""The model registry: the one place that knows model names.

    @register_model(family="cifar", paper="He et al. 2015, Sec. 4.2")
    def resnet20(*, num_classes: int = 10, **kw) -> ResNet: ...

    model = create_model("resnet20", num_classes=100, in_chans=1)
    model = create_model("resnet50", weights="IMAGENET1K_V2")      # published weights (resnetlab.weights)
"""

from __future__ import annotations

import fnmatch
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from torch import nn

from .errors import ConfigError, did_you_mean, natural_key

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about one architecture."""

    name: str
    builder: Callable[..., nn.Module]
    family: str  # imagenet | cifar | plain | preact | wide | fast | baseline
    paper: str = ""
    residual: bool = True  # False: zero_init_residual and drop_path_rate do not apply
    default_num_classes: int = 1000
    needs_img_size: bool = False  # the architecture's layer sizes depend on the input size


@dataclass(frozen=True)
class ArchSpec:
    """Everything needed to rebuild a model: stored in model files and attached as `model.arch`."""

    name: str
    num_classes: int
    in_chans: int
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "num_classes": self.num_classes, "in_chans": self.in_chans,
                "options": dict(self.options)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchSpec:
        return cls(data["name"], int(data["num_classes"]), int(data["in_chans"]), dict(data.get("options", {})))


_MODELS: dict[str, ModelEntry] = {}


def register_model(*, family: str, paper: str = "", residual: bool = True) -> Callable[[Builder], Builder]:
    """Register a builder under its function name; registering a name twice raises."""

    def decorator(builder: Builder) -> Builder:
        name = builder.__name__
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered (by {_MODELS[name].builder.__module__})")
        params = inspect.signature(builder).parameters
        default_classes = params["num_classes"].default if "num_classes" in params else 1000
        _MODELS[name] = ModelEntry(name, builder, family, paper, residual, default_classes,
                                   needs_img_size="img_size" in params)
        return builder

    return decorator


def list_models(pattern: str = "*", *, family: str | None = None) -> list[str]:
    """Return registered model names matching a shell-style `pattern`, in natural order."""
    names = [n for n, e in _MODELS.items() if fnmatch.fnmatch(n, pattern) and family in (None, e.family)]
    return sorted(names, key=natural_key)  # resnet18 < resnet34 < resnet101


def get_model_entry(name: str) -> ModelEntry:
    """Return a model's registry entry; an unknown name raises with the closest match."""
    try:
        return _MODELS[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}{did_you_mean(name, _MODELS)} (`resnetlab models` lists all)"
        ) from None


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    in_chans: int = 3,
    img_size: int | None = None,
    weights: str | None = None,
    pretrained: bool = False,
    **options: Any,
) -> nn.Module:
    """Build a registered model, with fresh weights or published ones.

    Args:
        num_classes: classifier outputs; None keeps the architecture's default (1000 or 10), or with
            `weights` the weights' own; another count replaces the classifier; 0 gives pooled features.
        weights: a name from `list_weights(name)` ("IMAGENET1K_V2", "DEFAULT", "imagenet",
            "timm:resnet50.a1_in1k"), "hf-hub:ORG/NAME", or a weights file. Fetched once into torch.hub's
            cache and checked against its published hash. The preprocessing they need is `model.pretrained_cfg`.
        pretrained: timm's spelling of weights="DEFAULT".
        in_chans: input channels (1 for grayscale).
        img_size: input height/width, used only by architectures whose layers depend on it
            (`tutorial_cnn` flattens its last feature map); ignored by the ResNets.
        options: architecture options such as `stem="small"`, `shortcut="B"`, `drop_path_rate=0.1`.
    """
    entry = get_model_entry(name)
    if weights is not None or pretrained:
        from .weights.load import pretrained_model

        model, info, _ = pretrained_model(name, weights or "DEFAULT", num_classes=num_classes,
                                          in_chans=None if in_chans == 3 else in_chans, img_size=img_size, **options)
        model.pretrained_cfg = info.preprocessing()  # timm's attribute: what inputs the weights expect
        model.pretrained_info = info
        return model
    num_classes = entry.default_num_classes if num_classes is None else int(num_classes)
    if num_classes < 0:
        raise ConfigError(f"num_classes must be at least 1 (or 0 for pooled features), got {num_classes}")
    if in_chans < 1:
        raise ConfigError(f"in_chans must be at least 1, got {in_chans}")
    if entry.needs_img_size and img_size is not None:
        options["img_size"] = int(img_size)
    accepted = inspect.signature(entry.builder).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    if not takes_any:
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise ConfigError(f"{name} does not take option(s) {', '.join(unknown)}")
    try:
        model = entry.builder(num_classes=num_classes, in_chans=in_chans, **options)
    except TypeError as exc:  # an option the architecture does not have, or one it fixes itself
        fixed = re.search(r"multiple values for (?:keyword )?argument '(\w+)'", str(exc))
        if fixed:
            raise ConfigError(f"{name} fixes {fixed.group(1)} itself; leave it out (or choose another "
                              f"model)") from None
        unexpected = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        if unexpected:
            raise ConfigError(f"{name} does not take option {unexpected.group(1)!r}") from None
        raise
    except ValueError as exc:  # an option value the architecture rejects
        if isinstance(exc, ConfigError):
            raise
        message = str(exc)
        raise ConfigError(message if message.startswith(name) else f"{name}: {message}") from None
    model.arch = ArchSpec(name, num_classes, in_chans, options)
    return model
