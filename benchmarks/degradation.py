"""The paper explained, on a short schedule: He et al. 2015's degradation (Fig. 6, left and middle) and the
gap between resnetlab's he2015-cifar and the paper, measured against an independent script.

    python benchmarks/degradation.py [--epochs 8] [--runs plain20 plain56 resnet20 resnet56 resnet20-fp32
        reference-fp32] [--data-dir ../shared/data/cifar10]

Every run is the he2015-cifar recipe (option-A shortcuts, per-pixel mean, 4-pixel crops and flips, SGD 0.1,
momentum 0.9, weight decay 1e-4, batch 128, 45k/5k split) on the same short schedule: `--epochs` epochs with
the lr divided by 10 at 50% and 75% of the iterations (the paper's 32k and 48k of 64k).
- plain20, plain56, resnet20, resnet56: resnetlab in bf16 (the degradation problem: the deeper plain net
  trains and tests worse; the deeper residual net does not);
- resnet20-fp32: resnetlab in fp32 (with resnet20 in bf16: what the arithmetic costs);
- reference-fp32, reference-bf16: benchmarks/he2015_reference.py, the training written from the paper's text
  without resnetlab, resnet20 (does resnetlab train as the paper says?).
Training error is the running error on the augmented batches (the paper's thin lines), test error the
10,000 test images after each epoch (its bold lines). Prints the table, writes JSON after every run and
a PNG of the curves; runs already in the JSON (same epochs and seed) are kept, so a stopped invocation
continues where it stopped (delete the JSON to start over).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import resnetlab
from resnetlab.analysis.evaluation import evaluate_model
from resnetlab.config import load_config
from resnetlab.data import load_dataset
from resnetlab.runtime import Inference
from resnetlab.training.callbacks import LambdaHooks

from common import SHARED_DATA, write_report

RESNETLAB_RUNS = {"plain20": ("plain20", "bf16"), "plain56": ("plain56", "bf16"), "resnet20": ("resnet20", "bf16"),
                  "resnet56": ("resnet56", "bf16"), "resnet20-fp32": ("resnet20", "fp32")}
REFERENCE_RUNS = {"reference-fp32": "fp32", "reference-bf16": "bf16"}
PAPER_RESNET20_ERROR = 8.75  # Table 6, 64k iterations


def train_resnetlab(model: str, precision: str, epochs: int, data_dir: str, seed: int) -> dict:
    test = load_dataset("cifar10", data_dir=data_dir, val_fraction=0, download=False, verify=False).test
    log: list[dict] = []

    def evaluate_test(trainer, metrics) -> None:
        result = evaluate_model(trainer.eval_model, test, trainer.info, device=trainer.loader.device,
                                inference=Inference(trainer.precision.dtype, trainer.precision.channels_last))
        log.append({"epoch": metrics.epoch, "train_loss": metrics.train_loss,
                    "train_error": 1 - metrics.train_accuracy, "test_error": 1 - result.accuracy,
                    "seconds": round(metrics.seconds, 1)})
        print(f"  {model} {precision} epoch {metrics.epoch:>3}: train error {1 - metrics.train_accuracy:.2%}  "
              f"test error {1 - result.accuracy:.2%}", flush=True)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as project:
        config = load_config(overrides={"recipe": "he2015-cifar", "model": model, "data_dir": data_dir,
                                        "verify": "false", "project": project, "plots": "false", "seed": str(seed),
                                        "precision": precision, "epochs": str(epochs)})
        config.train.max_steps, config.train.milestone_steps = None, []  # the short schedule: 50% and 75%
        config.train.milestones = [max(1, epochs // 2), max(1, (epochs * 3) // 4)]
        result = resnetlab.train(config, display="none", callbacks=[LambdaHooks(on_epoch_end=evaluate_test)])
    return {"final_test_error": 1 - result.test.accuracy, "log": log,
            "total_seconds": round(time.perf_counter() - started, 1)}


def train_reference(precision: str, epochs: int, data_dir: str, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "reference.json"
        subprocess.run([sys.executable, str(Path(__file__).with_name("he2015_reference.py")), "--epochs", str(epochs),
                        "--precision", precision, "--seed", str(seed), "--data-dir", data_dir, "--out", str(out)],
                       check=True)
        report = json.loads(out.read_text())
    return {"final_test_error": report["final_test_error"], "log": report["log"],
            "total_seconds": report["total_seconds"]}


def plot(results: dict[str, dict], out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), sharey=True)
    top = max(100 * row[key] for run in results.values() for row in run["log"][1:] for key in ("train_error",
                                                                                              "test_error"))
    panels = [("plain (Fig. 6 left)", ["plain20", "plain56"]), ("residual (Fig. 6 middle)", ["resnet20", "resnet56"]),
              ("resnet20: resnetlab and the reference", ["resnet20", "resnet20-fp32", "reference-fp32",
                                                         "reference-bf16"])]
    for ax, (title, names) in zip(axes, panels):
        for index, name in enumerate(n for n in names if n in results):
            log, color = results[name]["log"], f"C{index}"
            epochs = [row["epoch"] for row in log]
            ax.plot(epochs, [100 * row["train_error"] for row in log], "--", color=color, lw=1)
            ax.plot(epochs, [100 * row["test_error"] for row in log], "-", color=color, lw=2, label=name)
        ax.set(title=title, xlabel="epoch", ylim=(0, min(100, top + 5)))  # from epoch 2: the first is near chance
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("error (%): dashed training, bold test")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8, help="a multiple of 4: both sides drop lr at the same step")
    parser.add_argument("--runs", nargs="+", default=[*RESNETLAB_RUNS, "reference-fp32"],
                        choices=[*RESNETLAB_RUNS, *REFERENCE_RUNS])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=str(SHARED_DATA / "cifar10"))
    parser.add_argument("--out", default="benchmarks/results/degradation.json")
    args = parser.parse_args()
    out, results = Path(args.out), {}
    if out.is_file():  # a run stopped part way: keep the runs it finished on the same schedule and seed
        earlier = json.loads(out.read_text())
        if (earlier.get("epochs"), earlier.get("seed")) == (args.epochs, args.seed):
            results = {name: run for name, run in earlier["runs"].items() if name in args.runs}
    for name in args.runs:
        if name in results:
            print(f"{name}: kept from {out}", flush=True)
            continue
        print(f"{name}: {args.epochs} epochs", flush=True)
        if name in RESNETLAB_RUNS:
            results[name] = train_resnetlab(*RESNETLAB_RUNS[name], args.epochs, args.data_dir, args.seed)
        else:
            results[name] = train_reference(REFERENCE_RUNS[name], args.epochs, args.data_dir, args.seed)
        write_report({"benchmark": "degradation", "epochs": args.epochs, "seed": args.seed, "runs": results}, out)
        plot(results, out.with_suffix(".png"))
    print(f"\n{'run':<16} {'train error':>12} {'test error':>11} {'minutes':>8}")
    for name, result in results.items():
        print(f"{name:<16} {result['log'][-1]['train_error']:>12.2%} {result['final_test_error']:>11.2%} "
              f"{result['total_seconds'] / 60:>8.1f}")
    print(f"(the paper's resnet20 after 64k iterations: {PAPER_RESNET20_ERROR}% test error)")


if __name__ == "__main__":
    main()
