"""Short CUDA check, for the rare session that is lent a GPU (a few minutes at most).

    python benchmarks/gpu_check.py [--out gpu_check.json]
    python benchmarks/gpu_check.py --device cpu    # rehearse the script itself without a GPU

Checks on the GPU: every model family trains a step and matches its CPU forward; channels_last and
bf16/fp16 autocast agree with fp32; the fast-cifar recipe trains in bf16 and fp16; a full `resnetlab.train`
run on the digits; model files written on the GPU load on the CPU. Prints one line per check and writes
the results as JSON. Exits 1 if any
check fails, 2 if no GPU is visible. (Multi-process DDP over NCCL joins when training gains it.)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

import resnetlab

CHECKS = []
DEVICE = "cuda"


def check(fn):
    CHECKS.append(fn)
    return fn


@check
def models_match_cpu() -> str:
    worst = 0.0
    for name in ("resnet20", "resnet50", "preact_resnet18", "wrn16_8", "resnext50_32x4d", "tutorial_cnn"):
        torch.manual_seed(0)
        model = resnetlab.create_model(name, num_classes=10).eval()
        c, h, w = model.default_input_size
        images = torch.randn(4, c, min(h, 64), min(w, 64)) if name != "tutorial_cnn" else torch.randn(4, c, h, w)
        with torch.no_grad():
            cpu = model(images)
            gpu = model.to(DEVICE)(images.to(DEVICE)).cpu()
        worst = max(worst, (cpu - gpu).abs().max().item() / (cpu.abs().max().item() + 1e-6))
    assert worst < 1e-3, f"relative difference {worst:.2e}"  # TF32 convolutions allow ~1e-3
    return f"max relative difference {worst:.2e}"


@check
def channels_last_and_autocast() -> str:
    torch.manual_seed(0)
    model = resnetlab.create_model("resnet50", num_classes=10).to(DEVICE).eval()
    images = torch.randn(8, 3, 224, 224, device=DEVICE)
    with torch.no_grad():
        reference = model(images).float()
        last = model.to(memory_format=torch.channels_last)(images.to(memory_format=torch.channels_last)).float()
        results = {"channels_last": (last - reference).abs().max().item()}
        for dtype in (torch.bfloat16, torch.float16):
            with torch.autocast(torch.device(DEVICE).type, dtype=dtype):
                out = model(images).float()
            results[str(dtype)] = (out - reference).abs().max().item()
            assert (out.argmax(1) == reference.argmax(1)).float().mean() >= 0.75, f"{dtype} changes top-1"
    assert results["channels_last"] < 1e-2, results
    return ", ".join(f"{k} max|diff| {v:.2e}" for k, v in results.items())


@check
def train_step_every_family() -> str:
    for name in ("resnet20", "resnet18", "preact_resnet110", "wrn16_8", "plain20", "tutorial_cnn"):
        model = resnetlab.create_model(name, num_classes=10, stem="small") if name == "resnet18" else \
            resnetlab.create_model(name, num_classes=10)
        model = model.to(DEVICE).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        images, labels = torch.randn(16, 3, 32, 32, device=DEVICE), torch.randint(0, 10, (16,), device=DEVICE)
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        assert torch.isfinite(loss), name
    return "six families trained a step"


@check
def mixed_precision_training() -> str:
    """A few real training steps through the Trainer in bf16 and in fp16 with loss scaling."""
    results = []
    for precision in ("bf16", "fp16") if DEVICE.startswith("cuda") else ("bf16",):
        with tempfile.TemporaryDirectory() as project:
            result = resnetlab.train(device=DEVICE, precision=precision, epochs=3, project=project, display="none",
                                     plots=False)
        assert result.test.accuracy > 0.8, (precision, result.test.accuracy)
        results.append(f"{precision} {result.test.accuracy:.1%}")
    return "digits after 3 epochs: " + ", ".join(results)


@check
def ddp_over_nccl() -> str:
    """Two processes with torchrun when two GPUs are visible (NCCL needs one GPU per process)."""
    import subprocess
    import sys

    if not DEVICE.startswith("cuda") or torch.cuda.device_count() < 2:
        return f"skipped: {torch.cuda.device_count() if DEVICE.startswith('cuda') else 0} GPU(s), NCCL needs 2"
    with tempfile.TemporaryDirectory() as project:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                   "resnetlab", "train", "epochs=2", "device=cuda", f"project={project}", "progress=false"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    return "2-process NCCL run finished"


@check
def fast_cifar_recipe() -> str:
    """recipe=fast-cifar (resnet8_airbench with airbench's pieces, batch 1024, channels_last) for a few epochs in
    bf16 and fp16 (loss scaling), on synthetic 32x32 images: the GPU machine has no CIFAR-10."""
    import numpy as np

    from resnetlab.config import load_config

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 6144)
    images = rng.integers(0, 80, (6144, 32, 32, 3), dtype=np.uint8)
    for k in range(10):  # class k: a bright band of rows at 3k
        images[labels == k, 3 * k:3 * k + 3] = 250
    results = []
    with tempfile.TemporaryDirectory() as project:
        data = Path(project) / "bands.npz"
        np.savez(data, x_train=images[:5120], y_train=labels[:5120], x_test=images[5120:], y_test=labels[5120:])
        for precision in ("bf16", "fp16") if DEVICE.startswith("cuda") else ("bf16",):
            config = load_config(overrides={"recipe": "fast-cifar", "data": str(data), "device": DEVICE,
                                            "precision": precision, "epochs": "6",  # warm-up, restart: scaled
                                            "project": project, "plots": "false"})
            result = resnetlab.train(config, display="none")
            assert result.test.accuracy > 0.5, (precision, result.test.accuracy)
            results.append(f"{precision} {result.test.accuracy:.1%}")
    return "fast-cifar on synthetic bands after 6 epochs: " + ", ".join(results)


@check
def digits_run_on_gpu() -> str:
    with tempfile.TemporaryDirectory() as project:
        started = time.perf_counter()
        result = resnetlab.train(device=DEVICE, project=project, display="none")
        seconds = time.perf_counter() - started
        model, info = resnetlab.load_model(result.best_path, device="cpu")  # written on the GPU, read on the CPU
        data = resnetlab.load_dataset("digits")
        cpu_accuracy = resnetlab.evaluate_model(model, data.test, info, device="cpu").accuracy
    assert result.test.accuracy >= 0.97, result.test.accuracy
    assert abs(cpu_accuracy - result.test.accuracy) < 0.01
    return f"test accuracy {result.test.accuracy:.2%} in {seconds:.1f} s; on CPU after reload {cpu_accuracy:.2%}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_check.json")
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu to rehearse the script")
    args = parser.parse_args()
    global DEVICE
    DEVICE = args.device
    if DEVICE.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA GPU visible to PyTorch")
        return 2
    name = torch.cuda.get_device_name() if DEVICE.startswith("cuda") else "CPU rehearsal"
    report = {"device": name, "torch": torch.__version__, "checks": {}}
    print(f"{report['device']}, torch {report['torch']}")
    failed = 0
    for fn in CHECKS:
        started = time.perf_counter()
        try:
            detail, ok = fn(), True
        except Exception as exc:  # report every check, not just the first failure
            detail, ok = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}", False
            failed += 1
        seconds = time.perf_counter() - started
        report["checks"][fn.__name__] = {"ok": ok, "detail": detail, "seconds": round(seconds, 2)}
        print(f"{'PASS' if ok else 'FAIL'} {fn.__name__} ({seconds:.1f} s): {detail}", flush=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
