"""Inference backends for predict, evaluate and serve: PyTorch, ONNX Runtime, OpenVINO; fp32, bf16, int8.

Every backend takes normalized images float32 [N, C, H, W] (what the model itself takes) and returns
logits float32 [N, K]; `runner()` wraps one as a module, so batched_logits, test-time augmentation and
evaluation run through it unchanged. fp32 is the default and every fp32 backend is checked against
PyTorch (export parity, 1e-4); bf16 and int8 are only used when asked for, since they change the
numbers (`resnetlab evaluate precision=int8` and the inference benchmark report by how much).
`backend="auto"` times the fp32 backends that are installed on this model and this machine and keeps
the fastest; the choice is cached per model and machine.

Measured at batch 1 on the reference 2-core CPU, resnet50 at 224x224 (docs/benchmarks.md): PyTorch
eager fp32 61 ms, ONNX Runtime fp32 38 ms, OpenVINO fp32 40 ms, OpenVINO bf16 21 ms, int8 11-12 ms.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_write
from ..cache import cache_dir
from ..data.loader import Normalize
from ..errors import ConfigError, UserError
from ..info import ModelInfo
from ..models.fold import fold_batchnorm
from .export import TOLERANCE, export_onnx
from .onnx_runtime import onnx_session

BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16", "int8")
CALIBRATION_IMAGES = 256  # images for int8 calibration (ONNX Runtime's static quantization)


def installed(backend: str) -> bool:
    """Whether the backend's package is importable (found without importing it: OpenVINO takes 0.5 s)."""
    return importlib.util.find_spec(backend) is not None


def check_choice(backend: str, precision: str) -> None:
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")


def describe(run: nn.Module) -> tuple[str, str]:
    """(backend, precision) of what `runner()` returned."""
    backend = getattr(run, "backend", None)
    if isinstance(backend, Backend):
        return backend.name, backend.precision
    return "torch", "bf16" if isinstance(run, _Autocast) else "fp32"


class Backend:
    """A callable images -> logits, with its name and precision."""

    def __init__(self, name: str, precision: str, run: Callable[[np.ndarray], np.ndarray]):
        self.name, self.precision, self._run = name, precision, run

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self._run(np.ascontiguousarray(images, dtype=np.float32)), dtype=np.float32)

    def __repr__(self) -> str:
        return f"Backend({self.name}, {self.precision})"


def model_key(model: nn.Module, info: ModelInfo) -> str:
    """A short hash of the weights and metadata: names the cached exports of this exact model."""
    digest = hashlib.sha1(json.dumps(info.to_dict(), sort_keys=True, default=str).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def _torch_backend(model: nn.Module, info: ModelInfo, precision: str) -> Backend:
    if precision == "int8":
        raise ConfigError("precision=int8 runs on onnxruntime or openvino, not the torch backend")
    network = fold_batchnorm(model).float().cpu().to(memory_format=torch.channels_last)  # a copy: model untouched
    dtype = torch.bfloat16 if precision == "bf16" else None

    @torch.no_grad()
    def run(images: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(images).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
            return network(batch).float().numpy()

    return Backend("torch", precision, run)


def _onnx_file(model: nn.Module, info: ModelInfo, key: str | None, precision: str,
               calibration: Callable[[], np.ndarray] | None) -> Path:
    """The verified fp32 ONNX export of this model, or its int8 quantization; cached by model key."""
    key = key or model_key(model, info)
    folder = cache_dir() / "onnx"
    fp32 = folder / f"{key}.onnx"
    if not fp32.is_file():
        export_onnx(model, info, fp32, normalize="metadata")  # verified against PyTorch, or it raises
    if precision != "int8":
        return fp32
    int8 = folder / f"{key}-int8.onnx"
    if not int8.is_file():
        if calibration is None:
            raise ConfigError("precision=int8 needs calibration images: the model's training data was not found "
                              "(give data_dir=, or evaluate with the dataset at hand)")
        images = torch.from_numpy(np.ascontiguousarray(calibration(), dtype=np.float32))
        quantize_int8(fp32, int8, Normalize(info.mean, info.std, 1.0, torch.device("cpu"))(images).numpy())
    return int8


def _int8_saturates() -> bool:
    """True on x86 CPUs without VNNI: there ONNX Runtime's uint8 x int8 products go through AVX2's pairwise
    16-bit sums (vpmaddubsw), which saturate for full-range weights, so weights are quantized to 7 bits
    (`reduce_range`, ONNX Runtime's advice for such machines). Measured on a Zen 3 host with the digits
    model of tests/test_shipping_cli.py: accuracy change 10 points at 8 bits."""
    import platform

    probe = getattr(torch.cpu, "_is_vnni_supported", None)
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    return x86 and probe is not None and not probe()


def quantize_int8(source: Path, target: Path, images: np.ndarray) -> Path:
    """Post-training static quantization: int8 weights per channel, uint8 activations calibrated on `images`
    (normalized, as the model takes them); QDQ format, which both onnxruntime and OpenVINO run as int8."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(np.array_split(images.astype(np.float32), max(1, len(images) // 16)))

        def get_next(self) -> dict | None:
            batch = next(self.batches, None)
            return None if batch is None else {"images": batch}

    prepared = target.with_suffix(".prep.onnx")
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    try:
        atomic_write(target, lambda tmp: quantize_static(
            str(prepared), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=_int8_saturates()))
    finally:
        prepared.unlink(missing_ok=True)
    return target


def _onnxruntime_backend(path: Path, precision: str) -> Backend:
    if precision == "bf16":
        raise ConfigError("onnxruntime has no fast bf16 CPU kernels; use backend=openvino or torch for bf16")
    session = onnx_session(path)
    name = session.get_inputs()[0].name
    return Backend("onnxruntime", precision, lambda images: session.run(None, {name: images})[0])


def _openvino_backend(path: Path, precision: str) -> Backend:
    import openvino as ov

    hint = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}[precision]  # int8 comes from the QDQ graph itself
    compiled = ov.Core().compile_model(str(path), "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                                          "INFERENCE_PRECISION_HINT": hint})
    request = compiled.create_infer_request()

    def run(images: np.ndarray) -> np.ndarray:
        return request.infer({0: images})[compiled.output(0)]

    return Backend("openvino", precision, run)


def _build(model: nn.Module, info: ModelInfo, backend: str, precision: str, key: str | None,
           calibration: Callable[[], np.ndarray] | None) -> Backend:
    if backend == "torch":
        return _torch_backend(model, info, precision)
    if not installed(backend):
        raise ConfigError(f"backend={backend} needs the {backend} package: pip install 'resnetlab[export]'"
                          + (" openvino" if backend == "openvino" else ""))
    path = _onnx_file(model, info, key, precision, calibration)
    return _onnxruntime_backend(path, precision) if backend == "onnxruntime" else _openvino_backend(path, precision)


def call_times(run: Callable[[np.ndarray], object], images: np.ndarray, runs: int = 8, warmup: int = 2
               ) -> list[float]:
    """Seconds per call of `run(images)`, after `warmup` untimed calls."""
    for _ in range(warmup):
        run(images)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run(images)
        times.append(time.perf_counter() - started)
    return times


def _latency(backend: Backend, info: ModelInfo) -> float:
    images = np.random.default_rng(0).standard_normal((1, *info.input_size), dtype=np.float32)
    return float(np.median(call_times(backend, images)))


def build_backend(model: nn.Module, info: ModelInfo, *, backend: str = "auto", precision: str = "fp32",
                  calibration: Callable[[], np.ndarray] | None = None) -> Backend:
    """The backend to predict with. `auto`: the fastest installed one at this precision, by measurement.

    calibration: returns images float32 0..1 [N, C, H, W] for int8 calibration (called only when quantizing).
    """
    check_choice(backend, precision)
    if backend != "auto":
        return _build(model, info, backend, precision, None, calibration)
    key = model_key(model, info)  # names the cached choice and the cached exports
    candidates = {"fp32": ["torch", "onnxruntime", "openvino"], "bf16": ["torch", "openvino"],
                  "int8": ["onnxruntime", "openvino"]}[precision]
    candidates = [c for c in candidates if installed(c)]
    if not candidates:
        raise ConfigError(f"precision={precision} needs onnxruntime or openvino: pip install 'resnetlab[export]'")
    choices_file = cache_dir() / "backend-choices.json"
    machine = f"{os.cpu_count()}cpu-torch{torch.__version__}"
    choice_key = f"{key}-{precision}-{machine}"
    try:
        choices = json.loads(choices_file.read_text())
    except (OSError, ValueError):
        choices = {}
    if choices.get(choice_key) in candidates:
        try:
            return _build(model, info, choices[choice_key], precision, key, calibration)
        except UserError:
            pass  # the cached choice no longer works here: measure again
    timed, refusals = {}, []
    probe = np.random.default_rng(0).standard_normal((2, *info.input_size), dtype=np.float32)
    weight = next(model.parameters())
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(probe).to(weight.device, weight.dtype)).float().cpu().numpy()
    for name in candidates:
        try:
            candidate = _build(model, info, name, precision, key, calibration)
        except UserError as exc:
            refusals.append(f"{name}: {exc}")
            continue
        if precision == "fp32" and np.abs(candidate(probe) - expected).max() > TOLERANCE:
            continue  # auto keeps fp32 agreement: a backend that drifts here is never picked
        timed[name] = (_latency(candidate, info), candidate)
    if not timed:
        reasons = sorted(set(r.split(": ", 1)[1] for r in refusals))  # usually one reason shared by every backend
        raise ConfigError(f"no backend could run this model at precision={precision}"
                          + (f": {'; '.join(reasons)}" if reasons else ""))
    fastest = min(timed, key=lambda n: timed[n][0])
    choices[choice_key] = fastest
    atomic_write(choices_file, lambda tmp: tmp.write_text(json.dumps(choices, indent=1)))  # servers may start together
    return timed[fastest][1]


class Runner(nn.Module):
    """A backend as a module: normalized float tensor -> logits tensor (CPU), for code written for models."""

    def __init__(self, backend: Backend):
        super().__init__()
        self.backend = backend

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.backend(images.detach().float().cpu().numpy()))

    def extra_repr(self) -> str:
        return f"{self.backend.name}, {self.backend.precision}"


class _Autocast(nn.Module):
    """A GPU model run under bf16 autocast (precision=bf16 on CUDA)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.autocast(images.device.type, dtype=torch.bfloat16):
            return self.model(images).float()


def calibration_images(info: ModelInfo, count: int = CALIBRATION_IMAGES, folder: str | Path | None = None
                       ) -> Callable[[], np.ndarray]:
    """Images for int8 calibration (read only when called): up to `count` image files of `folder`, or else the
    training images of the model's own dataset."""
    from ..data.sample import sample_images

    def images() -> np.ndarray:
        if folder is not None:
            return folder_images(folder, info, count)
        found = sample_images(info, count, split="train")
        if found is None:
            where = info.training.get("dataset")
            raise ConfigError("precision=int8 calibrates on images like those the model will see, and "
                              + (f"its training data ({where}) is not at hand here" if where else
                                 "this model file names no dataset (a Keras-style Classifier's, or imported weights)")
                              + "; give calibration=FOLDER (a few hundred of your images)")
        return found

    return images


def folder_images(folder: str | Path, info: ModelInfo, count: int) -> np.ndarray:
    """Up to `count` image files below `folder` (sorted, evenly spread), as float32 0..1 [N, C, H, W]."""
    from ..data.images import BadImageError, expand_paths, read_for_model

    paths = expand_paths([folder])
    picks = [paths[i] for i in np.linspace(0, len(paths) - 1, min(count, len(paths))).astype(int)]
    arrays = []
    for path in picks:
        try:
            arrays.append(read_for_model(path, info.input_size, info.interpolation, info.crop_pct))
        except BadImageError:
            continue  # a bad file among calibration images only makes the sample smaller
    if not arrays:
        raise ConfigError(f"calibration={folder}: none of its image files could be read")
    return np.stack(arrays).astype(np.float32) / 255.0


def runner(model: nn.Module, info: ModelInfo, device: torch.device, *, backend: str = "auto",
           precision: str = "fp32", calibration: Callable[[], np.ndarray] | str | Path | None = None) -> nn.Module:
    """What predict/evaluate/serve run: the model itself on a GPU (or with backend=torch at fp32 on a GPU),
    else the chosen CPU backend wrapped as a module."""
    if device.type != "cpu":
        if backend not in ("auto", "torch") or precision == "int8":
            raise ConfigError(f"backend={backend} precision={precision} runs on the CPU; use device=cpu")
        return _Autocast(model) if precision == "bf16" else model
    if precision == "int8" and (calibration is None or isinstance(calibration, (str, Path))):
        calibration = calibration_images(info, folder=calibration)  # a folder of images, or the training data
    return Runner(build_backend(model, info, backend=backend, precision=precision, calibration=calibration))
