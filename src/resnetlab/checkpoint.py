"""Model files and training checkpoints: what their tensors and metadata mean (tensorfile.py reads the bytes).

A model file is safetensors (or HDF5 `.h5`) holding the state dict plus one JSON document, the
ModelInfo, under the metadata key "resnetlab". Nothing is ever unpickled. A file may come from anyone:
reading checks the metadata first, then each tensor's name, shape and dtype against the model it
describes before reading its data, and HDF5 files only in the layout resnetlab writes. A training checkpoint is a
model file with the optimizer's tensors added under the reserved prefix "_train." and its JSON state
under "resnetlab.train", so `last.safetensors` also loads anywhere a model file does.

Every write goes to a temporary file in the same folder, is fsynced and then renamed over the target:
a crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .atomic import atomic_write
from .errors import ModelFileError, UserError
from .info import ModelInfo
from .registry import create_model
from .tensorfile import (
    HDF5_SUFFIXES,
    MAX_METADATA_CHARS,
    META_KEY,
    SAFETENSORS_SUFFIXES,
    TRAIN_META_KEY,
    TensorSpec,
    model_file_kind,
    read_metadata,
    read_tensors,
    write_hdf5,
    write_safetensors,
)

TRAIN_PREFIX = "_train."
EMA_KEY = "ema."  # training checkpoints keep the weight EMA under TRAIN_PREFIX + EMA_KEY
LOOKAHEAD_KEY = "lookahead."  # ... and Lookahead's slow weights under TRAIN_PREFIX + LOOKAHEAD_KEY


# --- writing -------------------------------------------------------------------------------------


def _cpu_state(model: nn.Module, path: Path) -> dict[str, torch.Tensor]:
    """The model's tensors for writing to `path`; a model with NaN/inf weights or statistics is refused, so no
    model file ever holds one (loading refuses them as well)."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    bad = _non_finite(tensors)
    if bad:
        raise ModelFileError(f"refusing to write {path}: {bad}; the model diverged (lower the lr and train again)")
    return tensors


def save_model(path: str | Path, model: nn.Module, info: ModelInfo) -> Path:
    """Write a model file; the format follows the suffix (.safetensors, or .h5/.hdf5 for HDF5)."""
    path = Path(path)
    metadata = {META_KEY: json.dumps(info.to_dict())}
    tensors = _cpu_state(model, path)
    name = path.name.lower()
    if name.endswith(SAFETENSORS_SUFFIXES):
        return atomic_write(path, lambda tmp: write_safetensors(tmp, tensors, metadata))
    if name.endswith(HDF5_SUFFIXES):
        return atomic_write(path, lambda tmp: write_hdf5(tmp, tensors, metadata))
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
    tensors = _cpu_state(model, Path(path))
    opt_tensors, opt_json = _flatten_optimizer(optimizer)
    tensors.update(opt_tensors)
    for key, tensor in (extra_tensors or {}).items():
        tensors[f"{TRAIN_PREFIX}{key}"] = tensor.detach().to("cpu").contiguous()
    metadata = {META_KEY: json.dumps(info.to_dict()), TRAIN_META_KEY: json.dumps({**state, "optimizer": opt_json})}
    return atomic_write(path, lambda tmp: write_safetensors(tmp, tensors, metadata))


# --- reading -------------------------------------------------------------------------------------


def read_info(path: str | Path) -> ModelInfo:
    """Read only a model file's metadata (no tensor is read)."""
    path = Path(path)
    return _info_from(path, read_metadata(path, model_file_kind(path)))


def _info_from(path: Path, metadata: dict[str, str]) -> ModelInfo:
    if META_KEY not in metadata:
        raise ModelFileError(f"{path} holds tensors but no resnetlab metadata (a bare state dict?); convert it: "
                             f"resnetlab import-weights {path} arch=ARCH (`resnetlab models` lists them)")
    text = metadata[META_KEY]
    if len(text) > MAX_METADATA_CHARS:
        raise ModelFileError(f"{path} has {len(text):,} characters of resnetlab metadata; resnetlab writes at most "
                             f"{MAX_METADATA_CHARS:,}, so the file was not written by it")
    try:
        data = json.loads(text)
    except RecursionError:
        raise ModelFileError(f"{path} has unreadable resnetlab metadata (JSON nested too deeply)") from None
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path} has unreadable resnetlab metadata ({exc})") from None
    try:
        return ModelInfo.from_dict(data)
    except ModelFileError as exc:
        raise ModelFileError(f"{path}: {exc}") from None


def _check_specs(path: Path, model: nn.Module, specs: dict[str, TensorSpec]) -> None:
    """Raise ModelFileError listing the tensors whose names, shapes or types do not fit `model`.

    BatchNorm's step counters (num_batches_tracked; not weights) may be missing: timm's files often leave
    them out. A non-floating tensor where the model has a floating one means the file is not this model.
    """
    expected = model.state_dict()
    missing = sorted(k for k in set(expected) - set(specs) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(specs) - set(expected))
    wrong = [f"{k} {specs[k].shape} (model: {tuple(v.shape)})" for k, v in expected.items()
             if k in specs and specs[k].shape != tuple(v.shape)]
    wrong += [f"{k} of {specs[k].dtype} (model: {v.dtype})" for k, v in expected.items()
              if k in specs and v.is_floating_point() and not specs[k].dtype.is_floating_point]
    if missing or unexpected or wrong:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape or type", wrong)):
            if items:
                shown = ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")
                parts.append(f"{len(items)} {label}: {shown}")
        raise ModelFileError(f"{path} does not match its architecture {model.arch.name}: " + "; ".join(parts))


def check_tensors(path: Path, model: nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Raise ModelFileError unless the tensors fit `model` (see _check_specs); return them in the model's dtypes.

    Missing BatchNorm step counters are filled with zeros. Floating tensors of another precision (a model
    saved after .half()) are converted.
    """
    expected = model.state_dict()
    _check_specs(path, model, {k: TensorSpec(tuple(v.shape), v.dtype) for k, v in tensors.items()})
    tensors = dict(tensors)
    for key, value in expected.items():  # zeros on the CPU: `model` may be on the meta device
        if key.endswith("num_batches_tracked") and key not in tensors:
            tensors[key] = torch.zeros(value.shape, dtype=value.dtype)
    return {k: v.to(expected[k].dtype) if v.dtype != expected[k].dtype else v for k, v in tensors.items()}


def _non_finite(tensors: dict[str, torch.Tensor]) -> str | None:
    """'N tensor(s) hold NaN/inf: a, b, c and M more', or None when every floating tensor is finite."""
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if not bad:
        return None
    return f"{len(bad)} tensor(s) hold NaN/inf: " + ", ".join(bad[:3]) + (
        f" and {len(bad) - 3} more" if len(bad) > 3 else "")


def check_finite(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Refuse NaN/inf weights or statistics: such a model answers NaN for every input."""
    bad = _non_finite(tensors)
    if bad:
        raise ModelFileError(f"{path}: {bad}; the model diverged in training and cannot predict: retrain it with "
                             f"a lower lr")


def _empty_model(path: Path, info: ModelInfo) -> nn.Module:
    """The architecture the metadata names, built on the meta device (no memory for weights)."""
    try:
        with torch.device("meta"):
            return create_model(info.arch.name, num_classes=info.arch.num_classes, in_chans=info.arch.in_chans,
                                **info.arch.options)
    except (UserError, TypeError) as exc:  # an unknown model, or options it does not take
        raise ModelFileError(f"{path}: metadata field arch names no model resnetlab can build ({exc})") from None


def _model_keys(names: Iterable[str], ema: bool) -> tuple[dict[str, str], bool]:
    """Which of a file's tensors are model weights, mapped to their names in the model: its EMA weights when
    `ema` and it has them (then True), else its own; training state is left out."""
    prefix = TRAIN_PREFIX + EMA_KEY
    averaged = {k: k[len(prefix):] for k in names if k.startswith(prefix)}
    if ema and averaged:
        return averaged, True
    return {k: k for k in names if not k.startswith(TRAIN_PREFIX)}, False


def read_weights(path: Path, kind: str, ema: bool, check: Callable[[dict[str, TensorSpec]], None] | None = None
                  ) -> tuple[dict[str, torch.Tensor], bool]:
    """A file's model weights under the model's names (see _model_keys) and whether they are EMA weights;
    `check` vets their names, shapes and dtypes before any data is read."""
    chosen: dict[str, str] = {}
    averaged = False

    def select(specs: dict[str, TensorSpec]) -> Iterable[str]:
        nonlocal averaged
        names, averaged = _model_keys(specs, ema)
        if check is not None:
            check({name: specs[key] for key, name in names.items()})
        chosen.update(names)
        return names

    tensors = read_tensors(path, kind, select)
    return {chosen[key]: tensor for key, tensor in tensors.items()}, averaged


def load_model(path: str | Path, device: str | torch.device = "cpu", *, ema: bool = True
               ) -> tuple[nn.Module, ModelInfo]:
    """Read a model file (either format, told apart by content) and return (model in eval mode, info).

    The metadata is checked first and the architecture built from it; each tensor's name, shape and dtype
    are checked against it before its data is read, so a file cannot make the reader allocate more than
    the model holds. Weights with NaN/inf are refused.

    A training checkpoint (`last.safetensors`) of a run with EMA holds both the training weights and the
    EMA weights; the EMA weights load by default, as they are what training evaluates and keeps as `best`,
    so evaluate, predict, serve and export all see the same model. `ema=False` loads the training weights.
    `info.training["weights"]` is "ema" when the weights are EMA weights; other files are unaffected.
    """
    path = Path(path)
    kind = model_file_kind(path)
    info = _info_from(path, read_metadata(path, kind))
    model = _empty_model(path, info)
    tensors, averaged = read_weights(path, kind, ema, lambda specs: _check_specs(path, model, specs))
    if averaged:
        info.training = {**info.training, "weights": "ema"}
    tensors = check_tensors(path, model, tensors)
    check_finite(path, {key: tensors[key] for key in model.state_dict()})  # named in the model's order
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.to(device).eval(), info


def load_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None
                    ) -> dict[str, Any]:
    """Restore a training checkpoint into `model` (and `optimizer`); return its JSON state and extra tensors."""
    path = Path(path)
    kind = model_file_kind(path)
    metadata = read_metadata(path, kind)
    if TRAIN_META_KEY not in metadata:
        raise ModelFileError(f"{path} is a model file, not a training checkpoint (no optimizer state)")
    try:
        state = json.loads(metadata[TRAIN_META_KEY])
    except (ValueError, RecursionError) as exc:
        raise ModelFileError(f"{path} has unreadable training state ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or not isinstance(state.get("optimizer"), dict):
        raise ModelFileError(f"{path} has malformed training state (no optimizer entry); it was not written by "
                             f"resnetlab's trainer")

    def select(specs: dict[str, TensorSpec]) -> Iterable[str]:  # the model's part, before any data is read
        _check_specs(path, model, {k: v for k, v in specs.items() if not k.startswith(TRAIN_PREFIX)})
        return specs

    tensors = read_tensors(path, kind, select)
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
