"""The one place that knows the file formats: model files and training checkpoints.

A model file is safetensors (or HDF5 `.h5`) holding the state dict plus one JSON document, the
ModelInfo, under the metadata key "resnetlab". Nothing is ever unpickled. A training checkpoint is a
model file with the optimizer's tensors added under the reserved prefix "_train." and its JSON state
under "resnetlab.train", so `last.safetensors` also loads anywhere a model file does.

Every write goes to a temporary file in the same folder, is fsynced and then renamed over the target:
a crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .atomic import atomic_write
from .errors import ModelFileError
from .info import ModelInfo
from .registry import create_model

META_KEY = "resnetlab"
TRAIN_META_KEY = "resnetlab.train"
TRAIN_PREFIX = "_train."
EMA_KEY = "ema."  # training checkpoints keep the weight EMA under TRAIN_PREFIX + EMA_KEY
LOOKAHEAD_KEY = "lookahead."  # ... and Lookahead's slow weights under TRAIN_PREFIX + LOOKAHEAD_KEY
SAFETENSORS_SUFFIXES = (".safetensors",)
HDF5_SUFFIXES = (".h5", ".hdf5", ".keras.h5")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _file_kind(path: Path) -> str:
    """Return "safetensors" or "hdf5" by content, or raise saying what the file looks like instead."""
    if not path.exists():
        raise ModelFileError(f"model file {path} does not exist")
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder; give a model file such as {path}/best.safetensors")
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if head.startswith(HDF5_SIGNATURE):
        return "hdf5"
    if len(head) >= 10:
        header_len = int.from_bytes(head[:8], "little")
        if 2 <= header_len <= 100_000_000 and head[8:9] == b"{":
            return "safetensors"
    if head.startswith(b"PK\x03\x04") or head[:2] in (b"\x80\x02", b"\x80\x04", b"\x80\x05"):
        return "pickle"
    if len(head) == 0:
        raise ModelFileError(f"{path} is empty (0 bytes); it may be a write that never finished")
    raise ModelFileError(f"{path} is not a resnetlab model file (expected safetensors or HDF5 content)")


# --- writing -------------------------------------------------------------------------------------


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def _write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=metadata)


def _write_hdf5(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    import h5py

    with h5py.File(path, "w") as handle:
        for key, value in metadata.items():
            handle.attrs[key] = value
        group = handle.create_group("state_dict")
        for key, tensor in tensors.items():
            if tensor.dtype == torch.bfloat16:  # HDF5 has no bfloat16: widen losslessly, note the dtype
                data = group.create_dataset(key, data=tensor.float().numpy())
                data.attrs["dtype"] = "bfloat16"
            else:
                group.create_dataset(key, data=tensor.numpy())


def save_model(path: str | Path, model: nn.Module, info: ModelInfo) -> Path:
    """Write a model file; the format follows the suffix (.safetensors, or .h5/.hdf5 for HDF5)."""
    path = Path(path)
    metadata = {META_KEY: json.dumps(info.to_dict())}
    tensors = _cpu_state(model)
    name = path.name.lower()
    if name.endswith(SAFETENSORS_SUFFIXES):
        return atomic_write(path, lambda tmp: _write_safetensors(tmp, tensors, metadata))
    if name.endswith(HDF5_SUFFIXES):
        return atomic_write(path, lambda tmp: _write_hdf5(tmp, tensors, metadata))
    raise ModelFileError(f"cannot tell the format of {path}: name it *.safetensors or *.h5")


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors and a JSON-able rest."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, slots in state["state"].items():
        for slot, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{TRAIN_PREFIX}optimizer.{param_id}.{slot}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(param_id), {})[slot] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def save_checkpoint(path: str | Path, model: nn.Module, info: ModelInfo, optimizer: torch.optim.Optimizer,
                    state: dict[str, Any], extra_tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """Write a training checkpoint (safetensors): the model file plus optimizer tensors and JSON `state`."""
    tensors = _cpu_state(model)
    opt_tensors, opt_json = _flatten_optimizer(optimizer)
    tensors.update(opt_tensors)
    for key, tensor in (extra_tensors or {}).items():
        tensors[f"{TRAIN_PREFIX}{key}"] = tensor.detach().to("cpu").contiguous()
    metadata = {META_KEY: json.dumps(info.to_dict()), TRAIN_META_KEY: json.dumps({**state, "optimizer": opt_json})}
    return atomic_write(path, lambda tmp: _write_safetensors(tmp, tensors, metadata))


# --- reading -------------------------------------------------------------------------------------


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    kind = _file_kind(path)
    if kind == "pickle":
        raise ModelFileError(f"{path} is a PyTorch pickle (.pt/.pth); model files are safetensors or HDF5 and "
                             f"never need unpickling. To start from its weights use weights={path} (read with "
                             f"weights_only=True); to convert it, create_model + load_state_dict + save_model")
    try:
        if kind == "safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
            return tensors, metadata
        import h5py

        with h5py.File(path, "r") as handle:
            metadata = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in handle.attrs.items()}
            group = handle.get("state_dict")
            if group is None:
                raise ModelFileError(f"{path} is an HDF5 file without a 'state_dict' group; it was not written "
                                     f"by resnetlab (Keras .h5 models cannot be read)")
            tensors = {}
            for key, data in group.items():
                tensor = torch.from_numpy(np.array(data[()]))
                if data.attrs.get("dtype") == "bfloat16":
                    tensor = tensor.to(torch.bfloat16)
                tensors[key] = tensor
        return tensors, metadata
    except ModelFileError:
        raise
    except Exception as exc:  # a truncated or corrupt file: name it, keep the library's reason
        raise ModelFileError(f"{path} could not be read as {kind} ({type(exc).__name__}: {exc}); the file is "
                             f"truncated or corrupt") from None


def read_info(path: str | Path) -> ModelInfo:
    """Read only a model file's metadata."""
    _, metadata = _read(Path(path))
    return _info_from(Path(path), metadata)


def _info_from(path: Path, metadata: dict[str, str]) -> ModelInfo:
    if META_KEY not in metadata:
        raise ModelFileError(f"{path} holds tensors but no resnetlab metadata (a bare state dict?); build the "
                             f"model with resnetlab.create_model, load_state_dict, and save it with save_model")
    try:
        return ModelInfo.from_dict(json.loads(metadata[META_KEY]))
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path} has unreadable resnetlab metadata ({exc})") from None


def check_tensors(path: Path, model: nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Raise ModelFileError unless the tensors fit `model`; return them in the model's dtypes.

    Missing BatchNorm step counters (num_batches_tracked; not weights) are filled with zeros.

    Floating tensors of another precision (a model saved after .half()) are converted; a
    non-floating tensor where the model has a floating one means the file is not this model.
    """
    expected = model.state_dict()
    tensors = dict(tensors)
    for key, value in expected.items():  # BatchNorm's step counters: timm's files often leave them out
        if key.endswith("num_batches_tracked") and key not in tensors:
            tensors[key] = torch.zeros_like(value)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [f"{k} {tuple(tensors[k].shape)} (model: {tuple(v.shape)})" for k, v in expected.items()
             if k in tensors and tensors[k].shape != v.shape]
    wrong += [f"{k} of {tensors[k].dtype} (model: {v.dtype})" for k, v in expected.items()
              if k in tensors and v.is_floating_point() and not tensors[k].is_floating_point()]
    if missing or unexpected or wrong:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape or type", wrong)):
            if items:
                shown = ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")
                parts.append(f"{len(items)} {label}: {shown}")
        raise ModelFileError(f"{path} does not match its architecture {model.arch.name}: " + "; ".join(parts))
    return {k: v.to(expected[k].dtype) if v.dtype != expected[k].dtype else v for k, v in tensors.items()}


def load_model(path: str | Path, device: str | torch.device = "cpu", *, ema: bool = True
               ) -> tuple[nn.Module, ModelInfo]:
    """Read a model file (either format, told apart by content) and return (model in eval mode, info).

    A training checkpoint (`last.safetensors`) of a run with EMA holds both the training weights and the
    EMA weights; the EMA weights load by default, as they are what training evaluates and keeps as `best`,
    so evaluate, predict, serve and export all see the same model. `ema=False` loads the training weights.
    `info.training["weights"]` is "ema" when the weights are EMA weights; other files are unaffected.
    """
    path = Path(path)
    tensors, metadata = _read(path)
    info = _info_from(path, metadata)
    tensors, averaged = _model_tensors(tensors, ema)
    if averaged:
        info.training = {**info.training, "weights": "ema"}
    with torch.device("meta"):
        model = create_model(info.arch.name, num_classes=info.arch.num_classes, in_chans=info.arch.in_chans,
                             **info.arch.options)
    tensors = check_tensors(path, model, tensors)
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.to(device).eval(), info


def _model_tensors(tensors: dict[str, torch.Tensor], ema: bool) -> tuple[dict[str, torch.Tensor], bool]:
    """A file's model weights without the training state: its EMA weights when `ema` and it has them
    (then True), else its own."""
    averaged = {k[len(TRAIN_PREFIX + EMA_KEY):]: v for k, v in tensors.items() if k.startswith(TRAIN_PREFIX + EMA_KEY)}
    if ema and averaged:
        return averaged, True
    return {k: v for k, v in tensors.items() if not k.startswith(TRAIN_PREFIX)}, False


def load_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None
                    ) -> dict[str, Any]:
    """Restore a training checkpoint into `model` (and `optimizer`); return its JSON state and extra tensors."""
    path = Path(path)
    tensors, metadata = _read(path)
    if TRAIN_META_KEY not in metadata:
        raise ModelFileError(f"{path} is a model file, not a training checkpoint (no optimizer state)")
    state = json.loads(metadata[TRAIN_META_KEY])
    model_tensors = {k: v for k, v in tensors.items() if not k.startswith(TRAIN_PREFIX)}
    model.load_state_dict(check_tensors(path, model, model_tensors), strict=True)
    opt_json = state.pop("optimizer")
    if optimizer is not None:
        slots: dict[int, dict[str, Any]] = {}
        prefix = f"{TRAIN_PREFIX}optimizer."
        for key, tensor in tensors.items():
            if key.startswith(prefix):
                param_id, slot = key[len(prefix):].split(".", 1)
                slots.setdefault(int(param_id), {})[slot] = tensor
        for param_id, values in opt_json["scalars"].items():
            slots.setdefault(int(param_id), {}).update(values)
        slots = dict(sorted(slots.items()))
        optimizer.load_state_dict({"state": slots, "param_groups": opt_json["param_groups"]})
    extra_prefix = TRAIN_PREFIX
    state["tensors"] = {k[len(extra_prefix):]: v for k, v in tensors.items()
                        if k.startswith(extra_prefix) and not k.startswith(f"{TRAIN_PREFIX}optimizer.")}
    return state


# --- starting from other weights ----------------------------------------------------------------

HEAD_KEYS = ("fc.weight", "fc.bias")


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


def _first_reason(exc: Exception) -> str:
    """What torch.load's long weights_only message refused, and what the user can do about it (its own
    advice, to allow-list the class, is not open to a resnetlab user)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    named = [line for line in lines if "Unsupported global" in line]
    if named:
        refused = named[0].split("Unsupported global:", 1)[1].split(" was not an allowed global")[0].strip()
        return (f"it holds {refused}, which is not a tensor or a plain container; save the state dict alone: "
                f"torch.save(model.state_dict(), path)")
    return (lines or [type(exc).__name__])[0]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a model file (a training checkpoint's EMA weights when it has them, as `load_model`),
    a bare safetensors state dict, or a PyTorch .pth/.pt (torch.load with weights_only=True, which refuses
    code). Unwraps {"state_dict": ...}/{"model": ...} and drops the prefixes DDP ("module.") and
    torch.compile ("_orig_mod.") add."""
    path = Path(path)
    if _file_kind(path) == "pickle":
        try:
            loaded = _load_weights_only(path)
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
        tensors, _ = _model_tensors(_read(path)[0], ema=True)
    for prefix in ("module.", "_orig_mod."):
        if tensors and all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix):]: v for k, v in tensors.items()}
    return tensors


def load_pretrained(model: nn.Module, path: str | Path) -> list[str]:
    """Initialize `model` from another model's weights (resnetlab, torchvision or timm names).

    A classifier of another class count is left freshly initialized; a 3-channel first convolution
    feeding a 1-channel model is summed over its input channels (timm's rule). Anything else that does
    not fit raises ModelFileError listing the keys. Returns notes on what was adapted.
    """
    path = Path(path)
    tensors = read_state_dict(path)
    expected = model.state_dict()
    notes = []
    if any(k in tensors and k in expected and tensors[k].shape != expected[k].shape for k in HEAD_KEYS):
        old = tensors["fc.weight"].shape[0] if "fc.weight" in tensors else "?"
        notes.append(f"classifier replaced: {old} -> {expected['fc.weight'].shape[0]} classes")
        for key in HEAD_KEYS:
            tensors.pop(key, None)
    first = "conv1.weight"
    grayscale = first in tensors and first in expected and expected[first].shape[1] == 1
    if grayscale and tensors[first].shape[1] == 3:
        tensors[first] = tensors[first].sum(dim=1, keepdim=True)
        notes.append("first convolution summed over its 3 input channels for 1-channel input")
    for key in HEAD_KEYS:  # a replaced classifier keeps the model's fresh initialization
        if key in expected and key not in tensors:
            tensors[key] = expected[key]
    model.load_state_dict(check_tensors(path, model, tensors), strict=True)
    return notes
