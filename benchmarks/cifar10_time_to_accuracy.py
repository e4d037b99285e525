"""Time to accuracy: a recipe (default fast-cifar) on CIFAR-10, test accuracy against wall time.

    python benchmarks/cifar10_time_to_accuracy.py [--data-dir ../shared/data/cifar10] [key=value ...]

After every epoch the test set is evaluated (the run's precision, the recipe's TTA) and logged with
the run's wall time so far; the time this logging takes is not counted. Reports the time to 85, 90
and 93% test accuracy and the run's own final test accuracy (fp32, as `predict` runs it), prints a
table and writes JSON.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import resnetlab
from resnetlab.analysis.evaluation import evaluate_model
from resnetlab.config import load_config, parse_overrides
from resnetlab.data import load_dataset
from resnetlab.runtime import Inference
from resnetlab.training.callbacks import LambdaHooks

from common import SHARED_DATA, write_report

SHARED = SHARED_DATA / "cifar10"
TARGETS = (0.85, 0.90, 0.93)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="*", help="key=value settings on top of the recipe")
    parser.add_argument("--recipe", default="fast-cifar")
    parser.add_argument("--data-dir", default=str(SHARED))
    parser.add_argument("--out", default="benchmarks/results/cifar10_time_to_accuracy.json")
    args = parser.parse_args()

    test = load_dataset("cifar10", data_dir=args.data_dir, val_fraction=0, download=False,
                        verify=False).test  # the shared CIFAR-10 is a JPEG copy, not the official bytes
    log: list[dict] = []
    excluded = [0.0]  # seconds spent in this script's own evaluations
    started = time.perf_counter()

    def evaluate_test(trainer, metrics) -> None:
        began = time.perf_counter()
        inference = Inference(trainer.precision.dtype, trainer.precision.channels_last, config.run.tta)
        result = evaluate_model(trainer.eval_model, test, trainer.info, device=trainer.loader.device,
                                inference=inference)
        clock = began - started - excluded[0]
        log.append({"epoch": metrics.epoch, "seconds": round(clock, 1), "test_accuracy": result.accuracy,
                    "train_loss": metrics.train_loss, "images_per_second": metrics.images_per_second})
        print(f"epoch {metrics.epoch:>3}  {clock / 60:6.2f} min  test accuracy {result.accuracy:.2%}  "
              f"({metrics.images_per_second:,.0f} img/s)", flush=True)
        excluded[0] += time.perf_counter() - began

    with tempfile.TemporaryDirectory() as project:
        overrides = {"recipe": args.recipe, "data_dir": args.data_dir, "verify": "false", "project": project,
                     "plots": "false",
                     **parse_overrides(args.settings)}
        config = load_config(overrides=overrides)
        result = resnetlab.train(config, display="none", callbacks=[LambdaHooks(on_epoch_end=evaluate_test)])
    total = time.perf_counter() - started - excluded[0]
    reached = {f"{int(t * 100)}%": next((row["seconds"] for row in log if row["test_accuracy"] >= t), None)
               for t in TARGETS}
    report = {"benchmark": "cifar10_time_to_accuracy", "recipe": args.recipe, "settings": args.settings,
              "final_test_accuracy": result.test.accuracy, "tta": config.run.tta, "total_seconds": round(total, 1),
              "seconds_to": reached, "epochs": log, "config": config.to_dict()}
    print(f"\nfinal test accuracy {result.test.accuracy:.2%} (fp32, tta={config.run.tta}) after "
          f"{total / 60:.1f} min of wall time")
    for target, seconds in reached.items():
        print(f"  time to {target}: " + (f"{seconds / 60:.1f} min" if seconds is not None else "not reached"))
    write_report(report, args.out)


if __name__ == "__main__":
    main()
