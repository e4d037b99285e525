"""CPU inference: every backend and precision against plain PyTorch eager fp32, in one run.

    python benchmarks/inference.py [--model-file runs/<cifar run>/best.safetensors] [--data-dir DIR]

Speed: for resnet18 and resnet50 at 224x224 (1000 classes) and resnet20 at 32x32 (10 classes),
batch-1 latency (median and p99 over --runs calls after warm-up; the baseline is timed before and
after the variants and both blocks are pooled) and batch-32 throughput (median of 5 calls), for
- baseline: the model as PyTorch gives it, eager fp32, NCHW, under torch.no_grad (what a plain script does);
- resnetlab's backends: torch (BatchNorm folded, channels_last), onnxruntime and openvino in fp32
  (each must agree with the baseline to 1e-4), and the reduced-precision options bf16 (torch autocast,
  OpenVINO) and int8 (static quantization calibrated on images; run by onnxruntime and OpenVINO);
- which backend `backend=auto` picks.
Weights for the speed part are random with BatchNorm statistics measured on random images (speed does
not depend on the values). Accuracy: for each --model-file (trained on CIFAR-10), top-1 on the
10,000 test images in fp32 and at each reduced precision (int8 calibrated on 256 training images),
and the change in points. Writes JSON.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

import resnetlab
from resnetlab.data.stats import IMAGENET_MEAN, IMAGENET_STD
from resnetlab.deploy.export import TOLERANCE
from resnetlab.deploy.inference import call_times
from resnetlab.info import ModelInfo

from common import SHARED_DATA, fresh_cache, write_report

VARIANTS = [("torch", "fp32"), ("onnxruntime", "fp32"), ("openvino", "fp32"),
            ("torch", "bf16"), ("openvino", "bf16"), ("onnxruntime", "int8"), ("openvino", "int8")]
MODELS = [("resnet18", 224, 1000), ("resnet50", 224, 1000), ("resnet20", 32, 10)]


def conditioned_model(name: str, size: int, classes: int) -> tuple[torch.nn.Module, ModelInfo]:
    torch.manual_seed(0)
    model = resnetlab.create_model(name, num_classes=classes)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None
        model.train()
        for _ in range(2):
            model(torch.randn(4, 3, size, size))
    info = ModelInfo(arch=model.arch, class_names=[str(i) for i in range(classes)], input_size=(3, size, size),
                     mean=IMAGENET_MEAN, std=IMAGENET_STD)
    return model.eval(), info


def latency_times(run, images, runs: int) -> list[float]:
    """Batch-1 call times in seconds, after warm-up and a pause (PyTorch's OpenMP threads keep spinning
    for a while after a parallel region; timing the next backend during that would charge it for them)."""
    time.sleep(0.5)
    return call_times(run, images, runs, warmup=3)


def ms(times: list[float]) -> tuple[float, float]:
    return 1000 * statistics.median(times), 1000 * float(np.percentile(times, 99))


def throughput(run, images, runs: int = 5) -> float:
    time.sleep(0.5)
    run(images)
    rates = []
    for _ in range(runs):
        started = time.perf_counter()
        run(images)
        rates.append(len(images) / (time.perf_counter() - started))
    return statistics.median(rates)


def speed(runs: int, batch: int) -> list[dict]:
    return [row for name, size, classes in MODELS for row in speed_of(name, size, classes, runs, batch)]


def speed_of(name: str, size: int, classes: int, runs: int, batch: int) -> list[dict]:
    from resnetlab.deploy.inference import build_backend, installed

    rows = []
    model, info = conditioned_model(name, size, classes)
    rng = np.random.default_rng(0)
    one = rng.standard_normal((1, 3, size, size), dtype=np.float32)
    many = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
    check = rng.standard_normal((4, 3, size, size), dtype=np.float32)

    @torch.no_grad()
    def eager(images: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(images)).numpy()

    expected = eager(check)
    base_times = latency_times(eager, one, runs)  # timed again after the variants; both blocks count
    base_rate = throughput(eager, many)
    baseline = {"model": name, "size": size, "backend": "PyTorch eager (baseline)", "precision": "fp32",
                "batch_images_per_s": base_rate, "batch_speedup": 1.0, "max_abs_diff": 0.0}
    rows.append(baseline)
    base_median = ms(base_times)[0]
    print(f"{name}@{size} baseline: {base_median:.2f} ms, {base_rate:.0f} img/s", flush=True)
    calibration = lambda: np.random.default_rng(1).random((64, 3, size, size), dtype=np.float32)  # noqa: E731
    for backend, precision in VARIANTS:
        if not installed(backend):
            continue
        run = build_backend(model, info, backend=backend, precision=precision, calibration=calibration)
        diff = float(np.abs(run(check) - expected).max())
        median, p99 = ms(latency_times(run, one, runs))
        rate = throughput(run, many)
        rows.append({"model": name, "size": size, "backend": backend, "precision": precision,
                     "median_ms": median, "p99_ms": p99, "batch_images_per_s": rate,
                     "batch_speedup": rate / base_rate, "max_abs_diff": diff,
                     "fp32_agrees": diff <= TOLERANCE if precision == "fp32" else None})
        print(f"{name}@{size} {backend} {precision}: {median:.2f} ms ({base_median / median:.2f}x), "
              f"{rate:.0f} img/s ({rate / base_rate:.2f}x), max |diff| {diff:.1e}", flush=True)
    base_times += latency_times(eager, one, runs)
    baseline["median_ms"], baseline["p99_ms"] = ms(base_times)
    baseline["speedup"] = 1.0
    for row in rows[1:]:
        row["speedup"] = baseline["median_ms"] / row["median_ms"]
    auto = build_backend(model, info, backend="auto")
    rows.append({"model": name, "size": size, "backend": f"auto -> {auto.name}", "precision": "fp32"})
    return rows


def accuracy(model_file: str, data_dir: str) -> list[dict]:
    from resnetlab.checkpoint import load_model
    from resnetlab.data import load_dataset
    from resnetlab.data.sample import split_images
    from resnetlab.deploy.inference import CALIBRATION_IMAGES, Runner, build_backend, installed
    from resnetlab.runtime import batched_logits

    model, info = load_model(model_file)
    data = load_dataset("cifar10", data_dir=data_dir, val_fraction=0, download=False,
                        verify=False)  # the shared CIFAR-10 is a JPEG copy, not the official bytes
    labels = data.test.labels

    def top1(run) -> float:
        logits = batched_logits(run, data.test.images, info, batch_size=250, device="cpu")
        return float((logits.argmax(1) == labels).float().mean())

    reference = top1(model)
    rows = [{"model_file": model_file, "arch": info.arch.name, "backend": "PyTorch eager", "precision": "fp32",
             "top1": reference, "change_points": 0.0}]
    print(f"{model_file}: fp32 eager {reference:.2%}", flush=True)
    calibration = lambda: split_images(data.train, info, CALIBRATION_IMAGES)  # noqa: E731
    for backend, precision in VARIANTS:
        if not installed(backend):
            continue
        run = Runner(build_backend(model, info, backend=backend, precision=precision, calibration=calibration))
        value = top1(run)
        rows.append({"model_file": model_file, "arch": info.arch.name, "backend": backend, "precision": precision,
                     "top1": value, "change_points": 100 * (value - reference)})
        print(f"  {backend} {precision}: {value:.2%} ({100 * (value - reference):+.2f} points)", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-file", action="append", default=[], help="CIFAR-10 model file(s) for accuracy")
    parser.add_argument("--data-dir", default=str(SHARED_DATA / "cifar10"))
    parser.add_argument("--runs", type=int, default=50, help="batch-1 calls timed per variant")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", default="benchmarks/results/inference.json")
    args = parser.parse_args()
    fresh_cache()
    rows = speed(args.runs, args.batch)
    accuracy_rows = [row for path in args.model_file for row in accuracy(path, args.data_dir)]
    print(f"\n{'model':<14}{'backend':<26}{'prec':<6}{'b1 median':>10}{'b1 p99':>9}{'x':>7}"
          f"{'b32 img/s':>11}{'x':>7}{'max|diff|':>11}")
    for r in rows:
        if "median_ms" not in r:
            print(f"{r['model'] + '@' + str(r['size']):<14}{r['backend']:<26}")
            continue
        print(f"{r['model'] + '@' + str(r['size']):<14}{r['backend']:<26}{r['precision']:<6}{r['median_ms']:>9.2f}m"
              f"{r['p99_ms']:>8.2f}m{r['speedup']:>6.2f}x{r['batch_images_per_s']:>11.0f}{r['batch_speedup']:>6.2f}x"
              f"{r['max_abs_diff']:>11.1e}" + ("  <- fp32 disagrees" if r.get("fp32_agrees") is False else ""))
    for r in accuracy_rows:
        print(f"{r['arch']:<10}{r['backend']:<16}{r['precision']:<6} top-1 {r['top1']:.2%} "
              f"({r['change_points']:+.2f} points)")
    write_report({"benchmark": "inference", "runs": args.runs, "batch": args.batch, "speed": rows,
                  "accuracy": accuracy_rows}, args.out)


if __name__ == "__main__":
    main()
