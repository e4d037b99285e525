"""Test accuracy and wall time of the default run (`resnetlab train`: resnet20 on the embedded digits).

    python benchmarks/digits_default.py [--seeds 5] [--out benchmarks/results/digits_default.json]

Prints a table (one row per seed, then the median) and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import resnetlab

from common import write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/digits_default.json")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as project:
        for seed in range(args.seeds):
            started = time.perf_counter()
            result = resnetlab.train(seed=seed, project=project, display="none")
            seconds = time.perf_counter() - started
            rows.append({"seed": seed, "test_accuracy": result.test.accuracy, "seconds": round(seconds, 2),
                         "best_epoch": result.info.training["epoch"]})
            print(f"seed {seed}: test accuracy {result.test.accuracy:.2%}, {seconds:.1f} s "
                  f"(best epoch {rows[-1]['best_epoch']})", flush=True)
    accuracies = [r["test_accuracy"] for r in rows]
    summary = {
        "benchmark": "digits_default", "command": "resnetlab train (defaults)",
        "median_test_accuracy": statistics.median(accuracies), "min_test_accuracy": min(accuracies),
        "median_seconds": statistics.median(r["seconds"] for r in rows), "runs": rows,
    }
    print(f"median: {summary['median_test_accuracy']:.2%} test accuracy (min {summary['min_test_accuracy']:.2%}), "
          f"{summary['median_seconds']:.1f} s per run")
    write_report(summary, args.out)


if __name__ == "__main__":
    main()
