"""The two tensor file formats, read without trusting the file: safetensors and HDF5 (resnetlab's layout).

A file is told apart by its content, never its suffix; a PyTorch pickle or TorchScript archive is
recognized and refused with what to do instead. Reading gives every tensor's name, shape and dtype
before any data is read (`read_tensors(select=...)`), so a caller can refuse a file that claims a
4 GiB tensor at no cost. HDF5 is read only in the layout resnetlab writes: HDF5 can also point at
other files (external storage, links, virtual datasets), which would load them as weights.
What the tensors and metadata mean (model files, training checkpoints) is checkpoint.py's business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from .errors import ModelFileError

META_KEY = "resnetlab"


TRAIN_META_KEY = "resnetlab.train"


SAFETENSORS_SUFFIXES = (".safetensors",)


HDF5_SUFFIXES = (".h5", ".hdf5", ".keras.h5")


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_torchscript(path: Path) -> bool:
    """A zip holding compiled code (ARCHIVE/code/...): torch.jit.save's layout, which torch.save never writes."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.split("/")[1:2] == ["code"] for name in archive.namelist()[:10_000])
    except (OSError, zipfile.BadZipFile):
        return False


def file_kind(path: Path) -> str:
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
    if head.startswith(b"PK\x03\x04") and is_torchscript(path):
        raise ModelFileError(f"{path} is a TorchScript program (what `resnetlab export format=torchscript` writes): "
                             f"load it with torch.jit.load; resnetlab reads the model file it was exported from "
                             f"(.safetensors or .h5)")
    if head.startswith(b"PK\x03\x04") or head[:2] in (b"\x80\x02", b"\x80\x04", b"\x80\x05"):
        return "pickle"
    if len(head) == 0:
        raise ModelFileError(f"{path} is empty (0 bytes); it may be a write that never finished")
    raise ModelFileError(f"{path} is not a resnetlab model file (expected safetensors or HDF5 content)")


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=metadata)


def write_hdf5(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
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


def model_file_kind(path: Path) -> str:
    """"safetensors" or "hdf5"; a PyTorch pickle is refused with what to do instead."""
    kind = file_kind(path)
    if kind == "pickle":
        raise ModelFileError(f"{path} is a PyTorch pickle (.pt/.pth); model files are safetensors or HDF5 and "
                             f"never need unpickling. Convert it: resnetlab import-weights {path} arch=ARCH "
                             f"(`resnetlab models` lists them), or start training from it with weights={path} "
                             f"(read with weights_only=True)")
    return kind


def read_metadata(path: Path, kind: str) -> dict[str, str]:
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


def read_tensors(path: Path, kind: str, select: Callable[[dict[str, TensorSpec]], Iterable[str]] | None = None
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
