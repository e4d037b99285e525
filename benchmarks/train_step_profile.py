"""Where a training step's time goes: the ceiling on training speed-ups for a small ResNet on this machine.

    python benchmarks/train_step_profile.py [--model resnet20] [--batch 128] [--compile]

Profiles the forward + backward + SGD step of resnetlab's default CPU setting (bf16 autocast,
channels_last) with torch.profiler and sorts each operator's own time into convolutions (forward,
backward) and the memory-bound rest (BatchNorm, ReLU, additions, other). The convolutions' share
bounds what any fusion of the rest can gain: with the rest free, a step costs the convolutions alone.
The same step in eager fp32 NCHW (the plain-PyTorch setting, without its data loader) is timed in
the same run as the reference, and with --compile the torch.compile'd step too (inductor fuses
BatchNorm, ReLU and additions into generated kernels). The bf16 step is timed with glibc's default malloc
and then with freed memory kept (resnetlab's CPU setting, device.keep_freed_memory), each with its page
faults per step and its profile. Median of 20 steps after 5 warm-up steps.
Writes JSON.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

import resnetlab
from resnetlab.device import keep_freed_memory
from resnetlab.models.summary import count_flops

from common import write_report

# Operator names (torch.profiler, self time) -> group. Anything else is "other" (optimizer, copies, casts).
GROUPS = {
    "aten::mkldnn_convolution": "conv forward", "aten::_convolution": "conv forward",
    "aten::convolution_backward": "conv backward",
    "aten::native_batch_norm": "batchnorm", "aten::native_batch_norm_backward": "batchnorm",
    "aten::_batch_norm_impl_index": "batchnorm",
    "aten::relu_": "relu", "aten::clamp_min_": "relu", "aten::threshold_backward": "relu",
    "aten::add": "add", "aten::add_": "add",
    "aten::fill_": "fill (zeroing)",  # max-pool backward zeroes its input gradient (maxpool_backward.py)
}


def make_step(model_name: str | nn.Module, batch: int, *, bf16: bool, channels_last: bool, compiled: bool):
    """One step (forward, backward, SGD) on a fixed random batch; `model_name` a registry name or a model."""
    torch.manual_seed(0)
    model = resnetlab.create_model(model_name, num_classes=10) if isinstance(model_name, str) else model_name
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    forward = torch.compile(model) if compiled else model
    images = torch.randn(batch, 3, 32, 32).contiguous(memory_format=layout)
    labels = torch.randint(0, 10, (batch,))
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = criterion(forward(images), labels)
        loss.backward()
        optimizer.step()
    return step


def median_ms(step, warmup: int = 5, steps: int = 20) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def faults_per_step(step, steps: int = 5) -> float:
    """Minor page faults per step: memory the kernel maps in afresh (4 KiB each)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        step()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / steps


def breakdown(step, steps: int = 5) -> dict[str, float]:
    """ms per step by operator group (self CPU time)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    groups: dict[str, float] = {}
    for event in prof.key_averages():
        group = GROUPS.get(event.key, "other")
        groups[group] = groups.get(group, 0.0) + event.self_cpu_time_total / 1e3 / steps
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--compile", action="store_true", help="also time the torch.compile'd step")
    parser.add_argument("--out", default="benchmarks/results/train_step_profile.json")
    args = parser.parse_args()

    # the reference and the first bf16 row run with glibc's malloc as plain PyTorch has it; then the process
    # keeps freed memory as resnetlab's CPU device does (device.keep_freed_memory: it cannot be undone)
    reference = median_ms(make_step(args.model, args.batch, bf16=False, channels_last=False, compiled=False))
    default_step = make_step(args.model, args.batch, bf16=True, channels_last=True, compiled=False)
    system_malloc = median_ms(default_step)
    system_faults, system_groups = faults_per_step(default_step), breakdown(default_step)
    kept = keep_freed_memory()
    default = median_ms(default_step)
    kept_faults, groups = faults_per_step(default_step), breakdown(default_step)
    profiled = sum(groups.values())
    conv = groups.get("conv forward", 0.0) + groups.get("conv backward", 0.0)
    rest = profiled - conv
    # a 2.5x target over the reference leaves this many ms per step for everything that is not a convolution
    budget = reference / 2.5 - conv * default / profiled
    rows = [("fp32 NCHW eager (reference)", reference), ("bf16 channels_last eager, system malloc", system_malloc),
            ("bf16 channels_last eager (resnetlab default" + (", freed memory kept)" if kept else ")"), default)]
    if args.compile:
        compiled_step = make_step(args.model, args.batch, bf16=True, channels_last=True, compiled=True)
        started = time.perf_counter()
        compiled_step()
        compile_seconds = time.perf_counter() - started
        rows.append(("bf16 channels_last torch.compile", median_ms(compiled_step)))

    print(f"{args.model}, batch {args.batch}, one training step (forward, backward, SGD), median of 20:\n")
    print("| setting | ms per step | images/s | vs reference |")
    print("| --- | ---: | ---: | ---: |")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} | {args.batch / ms * 1e3:,.0f} | {reference / ms:.2f}x |")
    print(f"\npage faults per bf16 step: {system_faults:,.0f} with the system malloc "
          f"({system_faults * 4 / 1024:,.0f} MiB mapped afresh), {kept_faults:,.0f} with freed memory kept")
    print(f"\nms per bf16 step by operator group (profiled totals: resnetlab default {profiled:.1f} ms, "
          f"system malloc {sum(system_groups.values()):.1f} ms):\n")
    print("| group | resnetlab default ms | share | system malloc ms |")
    print("| --- | ---: | ---: | ---: |")
    for name, ms in sorted(groups.items(), key=lambda item: -item[1]):
        print(f"| {name} | {ms:.1f} | {ms / profiled:.0%} | {system_groups.get(name, 0.0):.1f} |")
    ceiling = reference / (conv * default / profiled)
    # a step is 3 forward passes of multiply-adds (forward, input and weight gradients); nearly all of them in convs
    conv_gflops = 3 * count_flops(resnetlab.create_model(args.model, num_classes=10), (3, 32, 32)) * args.batch \
        / (conv * default / profiled) / 1e6
    print(f"\nconvolutions {conv:.1f} ms, everything else {rest:.1f} ms: even with the rest free the step "
          f"would be {ceiling:.2f}x the reference; 2.5x leaves {budget:.1f} ms per step for the rest.\n"
          f"the convolutions compute at {conv_gflops:.0f} GFLOP/s")
    write_report({"benchmark": "train_step_profile", "model": args.model, "batch": args.batch,
                  "ms_per_step": dict(rows), "groups_ms": groups, "profiled_ms": profiled,
                  "groups_ms_system_malloc": system_groups, "page_faults_per_step": {
                      "system malloc": system_faults, "freed memory kept": kept_faults},
                  "conv_ms": conv, "rest_ms": rest, "ceiling_ratio": ceiling, "conv_gflops_per_s": conv_gflops,
                  "rest_budget_ms_for_2_5x": budget,
                  **({"compile_seconds": compile_seconds} if args.compile else {})}, args.out)


if __name__ == "__main__":
    main()
