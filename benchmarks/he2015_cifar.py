"""The paper's CIFAR-10 result: a finished `he2015-cifar` run against He et al. 2015, Table 6.

    resnetlab train recipe=he2015-cifar data_dir=../shared/data/cifar10 verify=false model=resnet20 name=he2015-resnet20
    python benchmarks/he2015_cifar.py runs/he2015-resnet20

Training is a separate command because it takes hours on a CPU (64k iterations of 128 images; about
3 h for resnet20 at bf16 on the 2-core machine) and may be stopped and resumed along the way
(`resnetlab train resume=RUN`). This script reads the finished run folder and evaluates, on the
10,000 test images, both the final weights (`last.safetensors`, after the last iteration: what the
paper reports) and the weights the run kept as best on its 5k validation split. It prints a table
against the paper's test error and writes JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import yaml

from resnetlab.analysis.report import evaluate

from common import write_report

# He, Zhang, Ren, Sun 2015 (arXiv:1512.03385), Table 6: CIFAR-10 test error (%), 45k/5k split, 64k iterations
PAPER_ERROR = {"resnet20": 8.75, "resnet32": 7.51, "resnet44": 7.17, "resnet56": 6.97, "resnet110": 6.43,
               "resnet1202": 7.93}


def epochs(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return [{key: float(value) if value else None for key, value in row.items()} for row in csv.DictReader(handle)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="the folder of a finished `resnetlab train recipe=he2015-cifar` run")
    parser.add_argument("--out", help="JSON path (default benchmarks/results/he2015_cifar_MODEL.json)")
    args = parser.parse_args()
    run_dir = Path(args.run_dir)
    results_file = run_dir / "results.json"
    if not results_file.is_file():
        raise SystemExit(f"{results_file} does not exist: the run has not finished; resume it with "
                         f"`resnetlab train resume={run_dir}`")
    results = json.loads(results_file.read_text())
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    model = config["model"]["name"]
    history = epochs(run_dir)
    # fp32 PyTorch, as the paper evaluates: no backend measurement or export needed
    final = evaluate(run_dir / "last.safetensors", split="test", backend="torch").result
    best = evaluate(run_dir / "best.safetensors", split="test", backend="torch").result
    report = {
        "benchmark": "he2015_cifar", "run_dir": str(run_dir), "model": model, "recipe": config["run"].get("recipe"),
        "iterations": results["steps"], "precision": results["precision"],
        "train_hours": sum(row["seconds"] for row in history) / 3600,
        "final_test_error": 100 * (1 - final.accuracy), "best_val_epoch": results["best_epoch"],
        "best_val_model_test_error": 100 * (1 - best.accuracy), "paper_test_error": PAPER_ERROR.get(model),
        "epochs": [{"epoch": int(row["epoch"]), "train_error": 100 * (1 - row["train_accuracy"]),
                    "val_error": None if row["val_accuracy"] is None else 100 * (1 - row["val_accuracy"]),
                    "lr": row["lr"], "images_per_second": row["images_per_second"]} for row in history],
    }
    paper = report["paper_test_error"]
    print(f"{model}, {report['iterations']:,} iterations, {report['precision']}, "
          f"{report['train_hours']:.2f} h of training\n")
    print("| weights | test error | paper (Table 6) |")
    print("| --- | ---: | ---: |")
    print(f"| final (iteration {report['iterations']:,}) | {report['final_test_error']:.2f}% | "
          f"{'-' if paper is None else f'{paper:.2f}%'} |")
    print(f"| best on validation (epoch {report['best_val_epoch']}) | {report['best_val_model_test_error']:.2f}% | |")
    write_report(report, args.out or f"benchmarks/results/he2015_cifar_{model}.json")


if __name__ == "__main__":
    main()
