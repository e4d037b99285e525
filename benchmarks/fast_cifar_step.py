"""What a training step costs: airbench94's network against fast-cifar's resnet8_airbench, ReLU and GELU.

    python benchmarks/fast_cifar_step.py [--batch 1024] [--out benchmarks/results/fast_cifar_step.json]

The three networks in one process, each timed by train_step_profile's step (forward, backward, SGD on
one random batch; bf16 autocast, channels_last, freed memory kept as resnetlab's CPU device does), median
of 20 steps after 5 warm-up, in two passes in turn (A B C A B C) so a drift of the host shows. The question
it answers: is fast-cifar's time per epoch its network's or its training loop's (the time-to-accuracy
benchmark times whole epochs, data and Lookahead included). Writes JSON.
"""

from __future__ import annotations

import argparse

import airbench_cpu
from train_step_profile import make_step, median_ms

import resnetlab
from resnetlab.device import keep_freed_memory

from common import write_report


def networks() -> dict:
    return {"airbench94's net (GELU, no shortcuts)": airbench_cpu.make_net,
            "resnet8_airbench, ReLU (its default)": lambda: resnetlab.create_model("resnet8_airbench"),
            "resnet8_airbench, GELU (fast-cifar)": lambda: resnetlab.create_model("resnet8_airbench",
                                                                                  activation="gelu")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--out", default="benchmarks/results/fast_cifar_step.json")
    args = parser.parse_args()
    kept = keep_freed_memory()
    steps = {name: make_step(build(), args.batch, bf16=True, channels_last=True, compiled=False)
             for name, build in networks().items()}
    passes = [{name: median_ms(step) for name, step in steps.items()} for _ in range(2)]
    print(f"batch {args.batch}, bf16 channels_last, freed memory kept: {kept}; ms per step, median of 20\n")
    print("| network | pass 1 ms | pass 2 ms | images/s (pass 2) |")
    print("| --- | ---: | ---: | ---: |")
    for name in steps:
        print(f"| {name} | {passes[0][name]:.1f} | {passes[1][name]:.1f} | {args.batch / passes[1][name] * 1e3:,.0f} |")
    write_report({"benchmark": "fast_cifar_step", "batch": args.batch, "freed_memory_kept": kept,
                  "ms_per_step": passes}, args.out)


if __name__ == "__main__":
    main()
