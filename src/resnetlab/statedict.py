"""Starting from other weights: state dicts from resnetlab, torchvision or timm files, adapted to a model.

A PyTorch `.pth`/`.pt` is read with `torch.load(weights_only=True)`, which refuses code; what it
refused is said in a resnetlab user's words. The classifier and first convolution are adapted through
the model's own interface (`classifier_name`, `first_conv_name`), never by layer names written here.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import torch

from .checkpoint import check_finite, check_tensors, read_weights
from .errors import ModelFileError
from .models.base import ImageClassifier
from .models.layers import adapt_input_conv
from .tensorfile import file_kind


def _load_weights_only(path: Path) -> Any:
    """torch.load(weights_only=True), also allowing argparse.Namespace: torchvision's reference training
    scripts save their arguments next to the model ({"model", "optimizer", "epoch", "args"}); a Namespace
    is plain attributes, and only the tensors are used."""
    allowed = [argparse.Namespace]
    if hasattr(torch.serialization, "safe_globals"):  # torch >= 2.5
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    torch.serialization.add_safe_globals(allowed)  # torch 2.4: process-wide, which is as safe
    return torch.load(path, map_location="cpu", weights_only=True)


# how torch.load(weights_only=True) names what it refused; the wording differs between torch releases
REFUSED_NAME = (r"GLOBAL ([\w.]+)|[Uu]nsupported class ([\w.]+)|got <class '([\w.]+)'>"
                r"|unrecognized function `?(<[^>]+>|[\w.]+)")


def _first_reason(exc: Exception) -> str:
    """What torch.load refused, in words for a resnetlab user: the global it named, or why the file is
    unreadable. torch's own advice is left out: allow-listing the global is not open to a resnetlab user,
    and loading with weights_only off runs whatever code the file holds."""
    text = str(exc)
    refused = re.search(REFUSED_NAME, text)
    if refused:
        name = next(group for group in refused.groups() if group).rstrip(".")
        if _missing_torch_name(name):  # torch's own helper, cut short: the pickle ends mid-name
            return f"the file is truncated or corrupt (its pickle names {name}, which torch does not have)"
        return (f"it holds GLOBAL {name}, which is not a tensor or a plain container; save the state dict alone: "
                f"torch.save(model.state_dict(), path) (resnetlab never runs a pickle's code)")
    detail = text.split("WeightsUnpickler error:", 1)[-1]
    sentences = [s.strip() for s in re.split(r"(?<=\.)\s+|\n", detail) if s.strip()]
    kept = [s for s in sentences if not re.search(r"weights_only|safe_globals|file an issue|documentation", s, re.I)]
    return f"the file is truncated or corrupt, or not a state dict ({kept[0] if kept else type(exc).__name__})"


def _missing_torch_name(name: str) -> bool:
    """Whether `name` looks like one of torch's own globals but does not exist (no module is imported)."""
    module, _, attr = name.rpartition(".")
    return module.split(".")[0] == "torch" and module in sys.modules and not hasattr(sys.modules[module], attr)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a model file (a training checkpoint's EMA weights when it has them, as `load_model`),
    a bare safetensors state dict, or a PyTorch .pth/.pt (torch.load with weights_only=True, which refuses
    code). Unwraps {"state_dict": ...}/{"model": ...} and drops the prefixes DDP ("module.") and
    torch.compile ("_orig_mod.") add."""
    path = Path(path)
    kind = file_kind(path)
    if kind == "pickle":
        try:
            loaded = _load_weights_only(path)
        except PermissionError:
            raise ModelFileError(f"cannot read {path}: permission denied") from None
        except Exception as exc:  # weights_only refuses anything but tensors and plain containers
            raise ModelFileError(f"{path} could not be read as a state dict with weights_only=True: "
                                 f"{_first_reason(exc)}") from None
        for key in ("state_dict", "model", "model_state_dict", "module"):
            if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
                loaded = loaded[key]
        if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
            raise ModelFileError(f"{path} does not hold a state dict (a mapping of names to tensors)")
        tensors = dict(loaded)
    else:
        tensors, _ = read_weights(path, kind, ema=True)
    check_finite(path, tensors)
    for prefix in ("module.", "_orig_mod."):
        if tensors and all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix):]: v for k, v in tensors.items()}
    return tensors


def load_pretrained(model: ImageClassifier, path: str | Path) -> list[str]:
    """Initialize `model` from another model's weights (resnetlab, torchvision or timm names): `read_state_dict`
    then `load_adapted`. Returns notes on what was adapted."""
    return load_adapted(model, read_state_dict(path), path)


def load_adapted(model: ImageClassifier, tensors: dict[str, torch.Tensor], source: Path | str) -> list[str]:
    """Load another model's `tensors` into `model` (strict), adapting its classifier and first convolution.

    A classifier of another class count is left freshly initialized; a model without one (num_classes=0)
    drops the source's. A first convolution of other input channels is adapted (`adapt_input_conv`: 3 -> 1
    sums over RGB, as timm). Anything else that does not fit raises ModelFileError listing the keys (naming
    `source`). Returns notes on what was adapted.
    """
    source = Path(source)
    tensors, expected, notes = dict(tensors), model.state_dict(), []
    head_keys = [f"{model.classifier_name}.{kind}" for kind in ("weight", "bias")]
    if model.num_classes == 0:
        if any(key in tensors for key in head_keys):
            notes.append("classifier removed: pooled features")
        for key in head_keys:
            tensors.pop(key, None)
    elif any(k in tensors and k in expected and tensors[k].shape != expected[k].shape for k in head_keys):
        old = tensors[head_keys[0]].shape[0] if head_keys[0] in tensors else "?"
        notes.append(f"classifier replaced: {old} -> {model.num_classes} classes")
        for key in head_keys:
            tensors.pop(key, None)
    note = _adapt_first_conv(tensors, f"{model.first_conv_name}.weight", model.in_chans)
    notes += [note] if note else []
    for key in head_keys:  # a replaced classifier keeps the model's fresh initialization
        if key in expected and key not in tensors:
            tensors[key] = expected[key]
    model.load_state_dict(check_tensors(source, model, tensors), strict=True)
    return notes


def _adapt_first_conv(tensors: dict[str, torch.Tensor], key: str, in_chans: int) -> str | None:
    """Adapt tensors[key], a first convolution's weight, to `in_chans` input channels in place where the
    rule applies (otherwise the strict load reports the mismatch); a note on what was done, or None."""
    weight = tensors.get(key)
    if weight is None or weight.ndim != 4 or weight.shape[1] == in_chans:
        return None
    sources = weight.shape[1]
    if in_chans != 1 and sources not in (1, 3):
        return None
    tensors[key] = adapt_input_conv(in_chans, weight)
    if in_chans == 1:
        return f"first convolution summed over its {sources} input channels for 1-channel input"
    return (f"first convolution repeated from {sources} to {in_chans} input channels "
            f"and scaled by {sources}/{in_chans}")
