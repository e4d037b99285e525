"""Time to accuracy on CIFAR-10: airbench94 (benchmarks/airbench_cpu.py) and resnetlab's recipe, one after the
other on the same data and machine, test accuracy against wall time.

    python benchmarks/cifar10_time_to_accuracy.py [--seeds 0 1 2] [--recipe fast-cifar] [--no-airbench | --no-recipe]
        [--airbench-seeds 0] [--airbench-malloc system|kept]
        [--eval-every 1] [--data-dir ../shared/data/cifar10] [key=value ...]

airbench94 runs first for every seed, then `resnetlab.train` with the recipe (key=value settings on top).
After every `--eval-every` epochs (and the last epoch of each lr cycle, `restart_epochs`) the test set is
evaluated with each side's TTA (airbench's tta_level 2, the recipe's `tta`; the six views are the same) and
logged with the wall time so far; these
evaluations are not on the clock (airbench's rule). resnetlab's clock covers everything `train` does
(data loading, model set-up, training, its final fp32 test evaluation, files written); airbench's covers
its whitening set-up and training. Reports per run the final accuracy, the time to 85/90/93% and to
airbench94's final accuracy of the same seed, and the medians over seeds; writes JSON after every run and
a PNG of the curves (docs/benchmarks.md shows it).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import airbench_cpu

import resnetlab
from resnetlab.analysis.evaluation import evaluate_model
from resnetlab.config import load_config, parse_overrides
from resnetlab.data import load_dataset
from resnetlab.device import keep_freed_memory
from resnetlab.runtime import Inference
from resnetlab.training.callbacks import LambdaHooks

from common import SHARED_DATA, write_report

SHARED = SHARED_DATA / "cifar10"
TARGETS = (0.85, 0.90, 0.93)


def first_time(log: list[dict], target: float) -> float | None:
    return next((row["seconds"] for row in log if row["test_accuracy"] >= target), None)


def run_recipe(recipe: str, settings: list[str], data_dir: str, seed: int, eval_every: int) -> dict:
    test = load_dataset("cifar10", data_dir=data_dir, val_fraction=0, download=False,
                        verify=False).test  # the shared CIFAR-10 is a JPEG copy, not the official bytes
    log: list[dict] = []
    excluded = [0.0]  # seconds spent in this script's own evaluations
    started = time.perf_counter()

    def evaluate_test(trainer, metrics) -> None:
        ends = {trainer.cfg.epochs, *trainer.cfg.restart_epochs}  # the last epoch and each lr cycle's last
        if metrics.epoch % eval_every and metrics.epoch not in ends:
            return
        began = time.perf_counter()
        inference = Inference(trainer.precision.dtype, trainer.precision.channels_last, config.run.tta)
        result = evaluate_model(trainer.eval_model, test, trainer.info, device=trainer.loader.device,
                                inference=inference)
        clock = began - started - excluded[0]
        spent = time.perf_counter() - began
        log.append({"epoch": metrics.epoch, "seconds": round(clock, 1), "test_accuracy": result.accuracy,
                    "train_loss": metrics.train_loss, "images_per_second": metrics.images_per_second,
                    "eval_seconds": round(spent, 1)})
        print(f"  {recipe} epoch {metrics.epoch:>3}  {clock / 60:6.2f} min  test accuracy {result.accuracy:.2%}  "
              f"({metrics.images_per_second:,.0f} img/s)", flush=True)
        excluded[0] += time.perf_counter() - began

    with tempfile.TemporaryDirectory() as project:
        overrides = {"recipe": recipe, "data_dir": data_dir, "verify": "false", "project": project,
                     "plots": "false", "seed": str(seed), **parse_overrides(settings)}
        config = load_config(overrides=overrides)
        result = resnetlab.train(config, display="none", callbacks=[LambdaHooks(on_epoch_end=evaluate_test)])
    total = time.perf_counter() - started - excluded[0]
    return {"recipe": recipe, "seed": seed, "final_test_accuracy": result.test.accuracy, "tta": config.run.tta,
            "total_seconds": round(total, 1), "evaluation_seconds": round(excluded[0], 1), "epochs": log,
            "config": config.to_dict()}


def plot(runs: list[dict], out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = {}
    for run in runs:
        color = colors.setdefault(run["name"], f"C{len(colors)}")
        xs = [row["seconds"] / 60 for row in run["epochs"]]
        ys = [100 * row["test_accuracy"] for row in run["epochs"]]
        first = run is next(r for r in runs if r["name"] == run["name"])
        ax.plot(xs, ys, marker=".", color=color, alpha=0.8, label=run["name"] if first else None)
    ax.set(xlabel="wall time (min), evaluations excluded", ylabel="test accuracy (%), 6-view TTA",
           ylim=(70, 95), title="CIFAR-10 (shared JPEG copy), 2-core CPU")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"wrote {out}")


def summarize(runs: list[dict]) -> dict:
    summary = {}
    for name in dict.fromkeys(run["name"] for run in runs):
        mine = [run for run in runs if run["name"] == name]
        finals = [run["final_test_accuracy"] for run in mine]
        clocks = [run["total_seconds"] for run in mine]
        summary[name] = {"runs": len(mine), "median_final_test_accuracy": statistics.median(finals),
                         "median_total_seconds": statistics.median(clocks),
                         "median_seconds_to_airbench_final": _median_or_none(
                             [run.get("seconds_to_airbench_final") for run in mine])}
    return summary


def _median_or_none(values: list[float | None]) -> float | None:
    """The median, where a run that never got there counts as infinitely slow; None if the median is one."""
    ranked = sorted(values, key=lambda v: float("inf") if v is None else v)
    return ranked[(len(ranked) - 1) // 2] if ranked else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="*", help="key=value settings on top of the recipe")
    parser.add_argument("--recipe", default="fast-cifar")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--no-airbench", action="store_true", help="run only the recipe")
    only.add_argument("--no-recipe", action="store_true", help="run only airbench94")
    parser.add_argument("--airbench-seeds", type=int, nargs="+", help="airbench94's seeds when not all of --seeds")
    parser.add_argument("--airbench-malloc", choices=("system", "kept"), default="system",
                        help="system: airbench94 as published runs with glibc's default malloc (all its seeds run "
                             "before resnetlab's, whose CPU device keeps freed memory for the rest of the process); "
                             "kept: resnetlab's keep_freed_memory for both sides from the start")
    parser.add_argument("--eval-every", type=int, default=1, help="evaluate the test set every this many epochs")
    parser.add_argument("--airbench-epochs", type=float, default=airbench_cpu.HYP["opt"]["train_epochs"],
                        help="airbench94's budget (its published 9.9; less only for a quick check of this script)")
    parser.add_argument("--data-dir", default=str(SHARED))
    parser.add_argument("--out", default="benchmarks/results/cifar10_time_to_accuracy.json")
    args = parser.parse_args()
    out = Path(args.out)
    airbench_cpu.HYP["opt"]["train_epochs"] = args.airbench_epochs
    runs: list[dict] = []
    name = args.recipe + ("" if not args.settings else " " + " ".join(args.settings))

    def report() -> None:
        write_report({"benchmark": "cifar10_time_to_accuracy", "recipe": args.recipe, "settings": args.settings,
                      "seeds": args.seeds, "summary": summarize(runs), "runs": runs}, out)
        plot(runs, out.with_suffix(".png"))

    if args.airbench_malloc == "kept":
        keep_freed_memory()
    airbench_finals: dict[int, float] = {}
    anchor_name = "airbench94" + ("" if args.airbench_malloc == "system" else ", kept malloc")
    for seed in [] if args.no_airbench else args.airbench_seeds or args.seeds:
        print(f"seed {seed}: airbench94 ({args.airbench_malloc} malloc)", flush=True)

        def show(row: dict) -> None:
            print(f"  airbench94 epoch {row['epoch']:>3}  {row['seconds'] / 60:6.2f} min  test accuracy "
                  f"{row['test_accuracy']:.2%}", flush=True)

        anchor = airbench_cpu.run(Path(args.data_dir), seed, args.eval_every, show)
        anchor.pop("hyp")
        airbench_finals[seed] = anchor["final_test_accuracy"]
        runs.append({"name": anchor_name, **anchor, "total_seconds": anchor["train_seconds"],
                     "malloc": args.airbench_malloc, "seconds_to_airbench_final": anchor["train_seconds"],
                     "seconds_to": {f"{int(t * 100)}%": first_time(anchor["epochs"], t) for t in TARGETS}})
        report()
    for seed in [] if args.no_recipe else args.seeds:
        # a seed airbench94 did not run is compared with the median of those it ran
        airbench_final = airbench_finals.get(seed, statistics.median(airbench_finals.values()) if airbench_finals
                                             else None)
        print(f"seed {seed}: resnetlab {name}", flush=True)
        mine = run_recipe(args.recipe, args.settings, args.data_dir, seed, args.eval_every)
        mine["name"] = f"resnetlab {name}"
        mine["seconds_to"] = {f"{int(t * 100)}%": first_time(mine["epochs"], t) for t in TARGETS}
        if airbench_final is not None:
            mine["airbench_final_test_accuracy"] = airbench_final
            mine["seconds_to_airbench_final"] = first_time(mine["epochs"], airbench_final)
        runs.append(mine)
        report()

    print(f"\n{'run':<40} {'seeds':>5} {'final acc':>10} {'minutes':>8} {'min to airbench94 final':>24}")
    for run_name, row in summarize(runs).items():
        reach = row["median_seconds_to_airbench_final"]
        print(f"{run_name:<40} {row['runs']:>5} {row['median_final_test_accuracy']:>10.2%} "
              f"{row['median_total_seconds'] / 60:>8.1f} {'' if reach is None else f'{reach / 60:.1f}':>24}")


if __name__ == "__main__":
    main()
