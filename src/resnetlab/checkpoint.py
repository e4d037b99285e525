"""The one place that knows the file formats: model files and training checkpoints.

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

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from .atomic import atomic_write
from .errors import ModelFileError, UserError
from .info import ModelInfo
from .models.base import ImageClassifier
from .models.layers import adapt_input_conv
from .registry import create_model

META_KEY = "resnetlab"
TRAIN_META_KEY = "resnetlab.train"
TRAIN_PREFIX = "_train."
EMA_KEY = "ema."  # training checkpoints keep the weight EMA under TRAIN_PREFIX + EMA_KEY
LOOKAHEAD_KEY = "lookahead."  # ... and Lookahead's slow weights under TRAIN_PREFIX + LOOKAHEAD_KEY
SAFETENSORS_SUFFIXES = (".safetensors",)
HDF5_SUFFIXES = (".h5", ".hdf5", ".keras.h5")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _is_torchscript(path: Path) -> bool:
    """A zip holding compiled code (ARCHIVE/code/...): torch.jit.save's layout, which torch.save never writes."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.split("/")[1:2] == ["code"] for name in archive.namelist()[:10_000])
    except (OSError, zipfile.BadZipFile):
        return False


def _file_kind(path: Path) -> str:
    """Return "safetensors" or "hdf5" by content, or raise saying what the file looks like instead."""
    try:
        if not path.exists():
            raise ModelFileError(f"model file {path} does not exist")
        if path.is_dir():
            raise ModelFileError(f"{path} is a folder; give a model file such as {path}/best.safetensors")
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except PermissionError:  # the file (or a folder above it) is not readable to this user: not a bad file
        raise ModelFileError(f"cannot read {path}: permission denied") from None
    if head.startswith(HDF5_SIGNATURE):
        return "hdf5"
    if len(head) >= 10:
        header_len = int.from_bytes(head[:8], "little")
        if 2 <= header_len <= 100_000_000 and head[8:9] == b"{":
            return "safetensors"
    if head.startswith(b"PK\x03\x04") and _is_torchscript(path):
        raise ModelFileError(f"{path} is a TorchScript program (what `resnetlab export format=torchscript` writes): "
                             f"load it with torch.jit.load; resnetlab reads the model file it was exported from "
                             f"(.safetensors or .h5)")
    if head.startswith(b"PK\x03\x04") or head[:2] in (b"\x80\x02", b"\x80\x04", b"\x80\x05"):
        return "pickle"
    if len(head) == 0:
        raise ModelFileError(f"{path} is empty (0 bytes); it may be a write that never finished")
    raise ModelFileError(f"{path} is not a resnetlab model file (expected safetensors or HDF5 content)")


# --- writing -------------------------------------------------------------------------------------


def _cpu_state(model: nn.Module, path: Path) -> dict[str, torch.Tensor]:
    """The model's tensors for writing to `path`; a model with NaN/inf weights or statistics is refused, so no
    model file ever holds one (loading refuses them as well)."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    bad = _non_finite(tensors)
    if bad:
        raise ModelFileError(f"refusing to write {path}: {bad}; the model diverged (lower the lr and train again)")
    return tensors


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
    tensors = _cpu_state(model, path)
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
    tensors = _cpu_state(model, Path(path))
    opt_tensors, opt_json = _flatten_optimizer(optimizer)
    tensors.update(opt_tensors)
    for key, tensor in (extra_tensors or {}).items():
        tensors[f"{TRAIN_PREFIX}{key}"] = tensor.detach().to("cpu").contiguous()
    metadata = {META_KEY: json.dumps(info.to_dict()), TRAIN_META_KEY: json.dumps({**state, "optimizer": opt_json})}
    return atomic_write(path, lambda tmp: _write_safetensors(tmp, tensors, metadata))


# --- reading -------------------------------------------------------------------------------------

MAX_METADATA_CHARS = 8 << 20  # a per-pixel mean of 3x224x224 is ~3 MB of JSON; everything else is KBs
# HDF5 can do much that resnetlab never writes, and some of it reads other files: a dataset with external
# raw storage (or an external link) pointing at /etc/passwd would load it as weights. So resnetlab reads
# only its own layout: plain datasets in the file itself, with the filters h5py writes.
HDF5_FILTERS = {1: "gzip", 2: "shuffle", 3: "fletcher32", 32000: "lzf"}  # h5z.FILTER_* codes
HDF5_ACCEPTS = ("resnetlab reads a 'state_dict' group holding one numeric dataset per tensor, stored in the file "
                "itself (no links, external or virtual storage, nested groups; gzip, lzf, shuffle or fletcher32 "
                "filters at most)")
MAX_EXPANSION = 1100  # deflate shrinks data 1032:1 at most: a dataset claiming more is HDF5 fill value
SMALL_DATASET = 1 << 16  # bytes: a dataset this small may be all fill value without risk
SAFETENSORS_DTYPES = {name: getattr(torch, dtype) for name, dtype in (
    ("F64", "float64"), ("F32", "float32"), ("F16", "float16"), ("BF16", "bfloat16"), ("F8_E4M3", "float8_e4m3fn"),
    ("F8_E5M2", "float8_e5m2"), ("I64", "int64"), ("I32", "int32"), ("I16", "int16"), ("I8", "int8"),
    ("U64", "uint64"), ("U32", "uint32"), ("U16", "uint16"), ("U8", "uint8"), ("BOOL", "bool"))
    if hasattr(torch, dtype)}


class TensorSpec(NamedTuple):
    """A stored tensor's shape and dtype, known before its data is read."""

    shape: tuple[int, ...]
    dtype: torch.dtype


@contextmanager
def _reading(path: Path, kind: str) -> Iterator[None]:
    """Report what the format libraries raise on a bad file as one ModelFileError naming the file."""
    try:
        yield
    except ModelFileError:
        raise
    except Exception as exc:  # a truncated or corrupt file: name it, keep the library's reason
        if isinstance(exc, PermissionError) or "permission denied" in str(exc).lower():  # h5py's own wording
            raise ModelFileError(f"cannot read {path}: permission denied") from None
        raise ModelFileError(f"{path} could not be read as {kind} ({type(exc).__name__}: {exc}); the file is "
                             f"truncated or corrupt") from None


def _model_file_kind(path: Path) -> str:
    """"safetensors" or "hdf5"; a PyTorch pickle is refused with what to do instead."""
    kind = _file_kind(path)
    if kind == "pickle":
        raise ModelFileError(f"{path} is a PyTorch pickle (.pt/.pth); model files are safetensors or HDF5 and "
                             f"never need unpickling. Convert it: resnetlab import-weights {path} arch=ARCH "
                             f"(`resnetlab models` lists them), or start training from it with weights={path} "
                             f"(read with weights_only=True)")
    return kind


def _read_metadata(path: Path, kind: str) -> dict[str, str]:
    """A model file's metadata strings, read without touching a tensor (safetensors: the header; HDF5: attributes)."""
    with _reading(path, kind):
        if kind == "safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:  # parses the header; tensor data stays on disk
                return dict(handle.metadata() or {})
        import h5py

        with h5py.File(path, "r") as handle:
            return {key: _hdf5_text(path, handle, key) for key in (META_KEY, TRAIN_META_KEY) if key in handle.attrs}


def _hdf5_text(path: Path, handle: Any, key: str) -> str:
    import h5py

    attr = handle.attrs.get_id(key)
    if attr.shape != () or h5py.check_string_dtype(attr.dtype) is None:
        raise ModelFileError(f"{path}: HDF5 attribute {key!r} is {attr.dtype} {attr.shape}, not one text string "
                             f"(resnetlab writes its metadata as JSON text)")
    value = handle.attrs[key]
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _read_tensors(path: Path, kind: str, select: Callable[[dict[str, TensorSpec]], Iterable[str]] | None = None
                  ) -> dict[str, torch.Tensor]:
    """Read a model file's tensors. `select` sees every tensor's shape and dtype before any data is read and
    returns the names to read (or raises to refuse the file); None reads them all."""
    with _reading(path, kind):
        if kind == "safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                specs = {key: _safetensors_spec(path, key, handle.get_slice(key)) for key in handle.keys()}  # noqa: SIM118
                names = list(specs if select is None else select(specs))
                return {key: handle.get_tensor(key) for key in names}
        import h5py

        with h5py.File(path, "r") as handle:
            datasets = _hdf5_datasets(path, handle)
            specs = {key: _hdf5_spec(path, key, data) for key, data in datasets.items()}
            names = list(specs if select is None else select(specs))
            return {key: _hdf5_tensor(datasets[key], specs[key]) for key in names}


def _safetensors_spec(path: Path, key: str, piece: Any) -> TensorSpec:
    dtype = SAFETENSORS_DTYPES.get(piece.get_dtype())
    if dtype is None:
        raise ModelFileError(f"{path}: tensor {key} is of dtype {piece.get_dtype()}, which no model has")
    return TensorSpec(tuple(piece.get_shape()), dtype)


def _refuse_hdf5(path: Path, what: str) -> ModelFileError:
    return ModelFileError(f"{path}: {what}, which resnetlab does not read; {HDF5_ACCEPTS}")


def _hdf5_datasets(path: Path, handle: Any) -> dict[str, Any]:
    """The datasets of the file's 'state_dict' group, looked at as links first: a soft or external link, or a
    nested group, is refused before it is followed."""
    import h5py

    link = handle.get("state_dict", getlink=True)
    if link is None:
        raise ModelFileError(f"{path} is an HDF5 file without a 'state_dict' group; it was not written "
                             f"by resnetlab (Keras .h5 models cannot be read)")
    if not isinstance(link, h5py.HardLink) or not isinstance(handle["state_dict"], h5py.Group):
        raise _refuse_hdf5(path, f"'state_dict' is a {type(link).__name__} to something other than a group")
    group = handle["state_dict"]
    datasets = {}
    for key in group:
        link = group.get(key, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            raise _refuse_hdf5(path, f"state_dict/{key} is an external link to {link.filename}:{link.path}")
        if not isinstance(link, h5py.HardLink):
            raise _refuse_hdf5(path, f"state_dict/{key} is a {type(link).__name__} to {getattr(link, 'path', '?')}")
        data = group[key]
        if not isinstance(data, h5py.Dataset):
            raise _refuse_hdf5(path, f"state_dict/{key} is a nested {type(data).__name__.lower()}, not a dataset")
        datasets[key] = data
    return datasets


def _hdf5_spec(path: Path, key: str, data: Any) -> TensorSpec:
    """A dataset's shape and dtype, refusing storage resnetlab does not write; no data is read."""
    name = f"dataset state_dict/{key}"
    if data.external is not None:
        files = ", ".join(str(entry[0]) for entry in data.external)
        raise _refuse_hdf5(path, f"{name} keeps its data in external file(s) {files}")
    if data.is_virtual:
        raise _refuse_hdf5(path, f"{name} is a virtual dataset (its data lives in other datasets or files)")
    plist = data.id.get_create_plist()
    codes = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    unknown = [code for code in codes if code not in HDF5_FILTERS]
    if unknown:
        raise _refuse_hdf5(path, f"{name} uses HDF5 filter(s) {unknown}")
    dtype = _hdf5_dtype(data.dtype)
    if dtype is None or data.shape is None:
        raise _refuse_hdf5(path, f"{name} holds {data.dtype} values where a tensor of numbers belongs")
    stored = data.id.get_storage_size()
    if data.nbytes > SMALL_DATASET and data.nbytes > MAX_EXPANSION * stored:
        raise ModelFileError(f"{path}: {name} claims {data.nbytes:,} bytes but stores {stored:,}; HDF5 would fill "
                             f"in the rest, so the file is not a model's weights (resnetlab writes every value)")
    marked = data.attrs.get("dtype")  # resnetlab widens bfloat16 to float32 and marks it so
    if isinstance(marked, bytes):
        marked = marked.decode("utf-8", errors="replace")
    if isinstance(marked, str) and marked == "bfloat16" and dtype.is_floating_point:
        dtype = torch.bfloat16
    return TensorSpec(tuple(data.shape), dtype)


def _hdf5_dtype(dtype: np.dtype) -> torch.dtype | None:
    """The torch dtype of an HDF5 dataset of numbers; None for strings, compound, object, complex types."""
    if dtype.kind not in "biuf":
        return None
    try:
        return torch.from_numpy(np.empty(0, dtype.newbyteorder("="))).dtype
    except TypeError:  # a width torch has no dtype for (float128)
        return None


def _hdf5_tensor(data: Any, spec: TensorSpec) -> torch.Tensor:
    array = np.asarray(data[()])
    array = array.astype(array.dtype.newbyteorder("="), copy=False)  # torch takes native byte order only
    tensor = torch.from_numpy(array)
    return tensor.to(torch.bfloat16) if spec.dtype == torch.bfloat16 else tensor


def read_info(path: str | Path) -> ModelInfo:
    """Read only a model file's metadata (no tensor is read)."""
    path = Path(path)
    return _info_from(path, _read_metadata(path, _model_file_kind(path)))


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


def _check_finite(path: Path, tensors: dict[str, torch.Tensor]) -> None:
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


def _read_weights(path: Path, kind: str, ema: bool, check: Callable[[dict[str, TensorSpec]], None] | None = None
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

    tensors = _read_tensors(path, kind, select)
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
    kind = _model_file_kind(path)
    info = _info_from(path, _read_metadata(path, kind))
    model = _empty_model(path, info)
    tensors, averaged = _read_weights(path, kind, ema, lambda specs: _check_specs(path, model, specs))
    if averaged:
        info.training = {**info.training, "weights": "ema"}
    tensors = check_tensors(path, model, tensors)
    _check_finite(path, {key: tensors[key] for key in model.state_dict()})  # named in the model's order
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.to(device).eval(), info


def load_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None
                    ) -> dict[str, Any]:
    """Restore a training checkpoint into `model` (and `optimizer`); return its JSON state and extra tensors."""
    path = Path(path)
    kind = _model_file_kind(path)
    metadata = _read_metadata(path, kind)
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

    tensors = _read_tensors(path, kind, select)
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
    kind = _file_kind(path)
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
        tensors, _ = _read_weights(path, kind, ema=True)
    _check_finite(path, tensors)
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
