"""Export a model file to ONNX or TorchScript, every export verified against PyTorch.

The exported graph takes float32 images [N, C, H, W] in 0..1 with any batch size N (normalization is
baked in unless asked otherwise) and returns logits [N, K]. BatchNorm is folded into the convolution
before it (post-activation nets). The class names, preprocessing and provenance travel in the file's
metadata. After writing, the export is run (onnxruntime for ONNX) on random images at two batch
sizes and on real ones, and compared with the PyTorch model in fp32: a max absolute logit difference
above 1e-4 or a different top-1 class deletes the file and raises ExportError.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..atomic import atomic_write
from ..data.loader import Normalize
from ..data.sample import sample_images
from ..errors import UserError
from ..info import ModelInfo
from ..models.fold import fold_batchnorm
from .onnx_runtime import onnx_session

FORMATS = ("onnx", "torchscript", "torchvision")
TOLERANCE = 1e-4  # max |logit difference| between an export and the PyTorch model, fp32


class ExportError(UserError):
    """An export disagrees with the PyTorch model, or cannot be produced."""


class Preprocessed(nn.Module):
    """Images float [N, C, H, W] in 0..1 -> normalized as in training -> the model's logits."""

    def __init__(self, model: nn.Module, info: ModelInfo):
        super().__init__()
        self.model = model
        normalize = Normalize(info.mean, info.std, 1.0, torch.device("cpu"))
        self.register_buffer("mul", normalize.mul)
        self.register_buffer("add", normalize.add)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images * self.mul + self.add)


def export_metadata(info: ModelInfo, normalize: str) -> dict[str, str]:
    """Everything a consumer needs, as strings (ONNX metadata_props, TorchScript extra files)."""
    preprocessing = {"input": "float32 [N, C, H, W], RGB (or gray) scaled to 0..1",
                     "normalization": "baked in" if normalize == "baked" else "apply (x - mean) / std first",
                     "mean": info.mean, "std": info.std, "input_size": list(info.input_size),
                     "interpolation": info.interpolation, "crop_pct": info.crop_pct}
    return {"resnetlab": json.dumps(info.to_dict()), "class_names": json.dumps(info.class_names),
            "preprocessing": json.dumps(preprocessing), "producer": f"resnetlab {__version__}"}


@dataclass
class ExportReport:
    path: Path
    format: str
    max_abs_diff: float  # over every check
    batches_checked: list[int]
    top1_agreement: float  # share of images with the same top-1 class

    def summary(self) -> str:
        return (f"{self.format} export {self.path}: max |logit diff| {self.max_abs_diff:.2e} over batches "
                f"{self.batches_checked}, top-1 agreement {self.top1_agreement:.0%}")


def _check_inputs(info: ModelInfo, real: np.ndarray | None) -> list[np.ndarray]:
    """Random images at two batch sizes (dynamic batch) plus real ones when given, float32 0..1."""
    rng = np.random.default_rng(0)
    inputs = [rng.random((n, *info.input_size), dtype=np.float32) for n in (1, 3)]
    if real is not None and len(real):
        inputs.append(real.astype(np.float32))
    return inputs


def _verify(run, reference: nn.Module, inputs: list[np.ndarray], path: Path, fmt: str) -> ExportReport:
    worst, agree, total = 0.0, 0, 0
    for images in inputs:
        with torch.no_grad():
            expected = reference(torch.from_numpy(images)).numpy()
        actual = np.asarray(run(images))
        if actual.shape != expected.shape:
            path.unlink(missing_ok=True)
            raise ExportError(f"{fmt} export gives logits of shape {actual.shape} for a batch of {len(images)}, "
                              f"PyTorch {expected.shape}; the file was removed")
        worst = max(worst, float(np.abs(actual - expected).max()))
        agree += int((actual.argmax(1) == expected.argmax(1)).sum())
        total += len(images)
    report = ExportReport(path, fmt, worst, [len(x) for x in inputs], agree / total)
    if worst > TOLERANCE or agree != total:
        path.unlink(missing_ok=True)
        raise ExportError(f"{fmt} export disagrees with PyTorch: max |logit diff| {worst:.2e} (limit "
                          f"{TOLERANCE:g}), top-1 agreement {agree}/{total}; the file was removed")
    return report


def export_onnx(model: nn.Module, info: ModelInfo, path: str | Path, *, opset: int = 17, normalize: str = "baked",
                exporter: str = "torchscript", real_images: np.ndarray | None = None) -> ExportReport:
    """Write and verify an ONNX file with a dynamic batch axis (checked against the unfolded PyTorch model).

    exporter: "torchscript" (PyTorch's TorchScript-based exporter: 0.4-1 s per ResNet here) or "dynamo"
    (the torch.export-based one, which needs onnxscript: 6 s per ResNet); both give the same graph.
    """
    import onnx

    if opset < 17:
        raise ExportError(f"opset must be 17 or newer (LayerNorm-era operators), got {opset}")
    path = Path(path)
    reference = _reference(model, info, normalize)
    example = torch.rand(2, *info.input_size, generator=torch.Generator().manual_seed(0))  # not the user's RNG

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporters' deprecation and constant-folding chatter
            if exporter == "dynamo":
                program = torch.onnx.export(reference, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},),
                                            opset_version=max(opset, 18), dynamo=True, verbose=False)
                program.save(str(tmp))
            elif exporter == "torchscript":
                torch.onnx.export(reference, (example,), str(tmp), input_names=["images"], output_names=["logits"],
                                  dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
                                  opset_version=opset, dynamo=False, do_constant_folding=True)
            else:
                raise ExportError(f"unknown exporter {exporter!r}; choose torchscript or dynamo")
        graph = onnx.load(str(tmp))
        for key, value in export_metadata(info, normalize).items():
            entry = graph.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(graph)
        onnx.save(graph, str(tmp))

    atomic_write(path, write)
    session = onnx_session(path)
    name = session.get_inputs()[0].name
    original = _reference(model, info, normalize, fold=False)
    return _verify(lambda images: session.run(None, {name: images})[0], original, _check_inputs(info, real_images),
                   path, "onnx")


def export_torchscript(model: nn.Module, info: ModelInfo, path: str | Path, *, normalize: str = "baked",
                       real_images: np.ndarray | None = None) -> ExportReport:
    """Write and verify a TorchScript file (traced; any batch size); metadata in its extra files."""
    path = Path(path)
    reference = _reference(model, info, normalize)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        example = torch.rand(2, *info.input_size, generator=torch.Generator().manual_seed(0))  # not the user's RNG
        traced = torch.jit.trace(reference, example, check_trace=False)
    def write(tmp: Path) -> None:
        # torch names the archive's inner folder after the file it writes: save under the final name in a
        # private folder, then move it to atomic_write's temporary file (which becomes `path`)
        with tempfile.TemporaryDirectory(dir=tmp.parent) as folder:
            inner = Path(folder) / path.name
            torch.jit.save(traced, str(inner), _extra_files=export_metadata(info, normalize))
            os.replace(inner, tmp)

    atomic_write(path, write)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, still widely deployed
        loaded = torch.jit.load(str(path))

    def run(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return loaded(torch.from_numpy(images)).numpy()

    return _verify(run, _reference(model, info, normalize, fold=False), _check_inputs(info, real_images), path,
                   "torchscript")


def _reference(model: nn.Module, info: ModelInfo, normalize: str, *, fold: bool = True) -> nn.Module:
    """What gets exported (fold=True: BatchNorm folded), or the untouched model it is checked against."""
    if normalize not in ("baked", "metadata"):
        raise ExportError(f"normalize must be baked or metadata, got {normalize!r}")
    network = copy.deepcopy(model).float().cpu().eval()
    network = fold_batchnorm(network, copy_first=False) if fold else network  # already a copy
    return (Preprocessed(network, info) if normalize == "baked" else network).eval()


def export_torchvision(model: nn.Module, info: ModelInfo, path: str | Path, *,
                       real_images: np.ndarray | None = None) -> ExportReport:
    """Write the weights as a plain state dict .pth and verify it: read back with weights_only=True into
    a fresh model of the architecture, same logits. resnetlab's parameter names are torchvision's (the
    import/export tests check them against torchvision's own key lists), so torchvision/timm load the
    file with strict=True."""
    from ..registry import create_model

    path = Path(path)
    reference = _reference(model, info, "metadata", fold=False)  # a copy; a state dict carries no normalization
    atomic_write(path, lambda tmp: torch.save(reference.state_dict(), tmp))
    fresh = create_model(info.arch.name, num_classes=info.arch.num_classes, in_chans=info.arch.in_chans,
                         **info.arch.options)
    try:
        fresh.load_state_dict(torch.load(path, weights_only=True), strict=True)
    except (RuntimeError, OSError) as error:
        path.unlink(missing_ok=True)
        raise ExportError(f"the state dict written to {path} does not load back into {info.arch.name}: "
                          f"{error}; the file was removed") from error
    fresh.eval()

    def run(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return fresh(torch.from_numpy(images)).numpy()

    return _verify(run, reference, _check_inputs(info, real_images), path, "torchvision")


def export_file(model_path: str | Path, fmt: str = "onnx", out: str | Path | None = None, *, weights: str | None = None,
                **options: Any) -> ExportReport:
    """Export a model file, or an architecture with published `weights` (`resnetlab export`); `out` defaults
    to the model's name with .onnx, .pt or .pth."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    from ..weights.load import open_model

    model, info = open_model(model_path, weights)
    out = Path(out) if out else Path(model_path).with_suffix({"onnx": ".onnx", "torchscript": ".pt"}.get(fmt, ".pth"))
    real = sample_images(info)
    if fmt == "onnx":
        return export_onnx(model, info, out, real_images=real, **options)
    if fmt == "torchvision":
        return export_torchvision(model, info, out, real_images=real)  # normalize does not apply: no graph
    return export_torchscript(model, info, out, real_images=real, **options)
