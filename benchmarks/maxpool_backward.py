"""Is max-pool backward worth rewriting? resnet8_airbench's three 2x2 max-pools, forward + backward.

    python benchmarks/maxpool_backward.py [--out benchmarks/results/maxpool_backward.json]

The step profile (train_step_profile.py) shows aten::fill_, max-pool backward zeroing its input gradient,
at 56-190 ms a step. This times, on the pools' input shapes at batch 1024 (bf16, channels_last):
F.max_pool2d (PyTorch's kernel: zero the gradient, scatter through saved indices), a reshape + amax
(autograd's amax backward, no scatter), and a compare-and-mask backward (no zeroing), each checked to
give the same forward; and a plain zero_ of the input-sized tensor. Median of 15 calls after 3 warm-up.
Writes JSON.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from common import write_report

SHAPES = [(1024, 64, 31, 31), (1024, 256, 15, 15), (1024, 256, 7, 7)]  # resnet8_airbench's pool inputs


def maxpool(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 2)


def reshape_amax(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[2] // 2, x.shape[3] // 2
    return x[:, :, : 2 * h, : 2 * w].unflatten(2, (h, 2)).unflatten(4, (w, 2)).amax((3, 5))


class MaskPool(torch.autograd.Function):
    """Forward as F.max_pool2d; backward sends the gradient to every input equal to its window's max."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = F.max_pool2d(x, 2)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        x, y = ctx.saved_tensors
        n, c, h, w = x.shape
        h2, w2 = h // 2 * 2, w // 2 * 2

        def up(t: torch.Tensor) -> torch.Tensor:
            return t[:, :, :, None, :, None].expand(n, c, h // 2, 2, w // 2, 2).reshape(n, c, h2, w2)
        gx = torch.where(x[:, :, :h2, :w2] == up(y), up(grad), 0)
        return F.pad(gx, (0, w - w2, 0, h - h2)).contiguous(memory_format=torch.channels_last)


def mask_pool(x: torch.Tensor) -> torch.Tensor:
    return MaskPool.apply(x)


VARIANTS = {"F.max_pool2d": maxpool, "reshape + amax": reshape_amax, "compare-and-mask backward": mask_pool}


def make_input(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(shape, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last).requires_grad_()


def median_ms(fn, x: torch.Tensor, warmup: int = 3, reps: int = 15) -> float:
    times = []
    for _ in range(warmup + reps):
        began = time.perf_counter()
        y = fn(x)
        y.backward(torch.ones_like(y))
        x.grad = None
        times.append(time.perf_counter() - began)
    return statistics.median(times[warmup:]) * 1e3


def zero_ms(shape: tuple[int, ...], reps: int = 10) -> float:
    t = torch.empty(shape, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
    times = []
    for _ in range(reps):
        began = time.perf_counter()
        t.zero_()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/maxpool_backward.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    for shape in SHAPES:
        x = make_input(shape)
        reference = maxpool(x)
        for name, fn in VARIANTS.items():
            if not torch.equal(fn(x), reference):
                raise SystemExit(f"{name} does not give F.max_pool2d's forward on {shape}")
        rows.append({"shape": list(shape), **{name: median_ms(fn, x) for name, fn in VARIANTS.items()},
                     "plain zero_ of the input": zero_ms(shape)})
    columns = [*VARIANTS, "plain zero_ of the input"]
    print("| input (bf16, channels_last) | " + " | ".join(f"{c} ms" for c in columns) + " |")
    print("| --- |" + " ---: |" * len(columns))
    for row in rows:
        print(f"| {'x'.join(map(str, row['shape']))} | " + " | ".join(f"{row[c]:.1f}" for c in columns) + " |")
    write_report({"benchmark": "maxpool_backward", "threads": torch.get_num_threads(), "rows": rows}, args.out)


if __name__ == "__main__":
    main()
