"""Test accuracy of one model file under each test-time augmentation mode (none, flip, flip+shift).

    python benchmarks/tta_modes.py MODEL [--data-dir ../shared/data/cifar10] [--out FILE]

fp32, as `predict` runs it, on the dataset the model was trained on (CIFAR-10 by default). Writes JSON.
"""

from __future__ import annotations

import argparse

from resnetlab.analysis.evaluation import evaluate_model
from resnetlab.checkpoint import load_model
from resnetlab.data import load_dataset
from resnetlab.runtime import TTA_MODES, Inference

from common import SHARED_DATA, write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--data", default="cifar10")
    parser.add_argument("--data-dir", default=str(SHARED_DATA / "cifar10"))
    parser.add_argument("--out", default="benchmarks/results/tta_modes.json")
    args = parser.parse_args()
    model, info = load_model(args.model)
    test = load_dataset(args.data, data_dir=args.data_dir, val_fraction=0, download=False,
                        verify=False).test  # the shared CIFAR-10 is a JPEG copy, not the official bytes
    accuracy = {tta: evaluate_model(model, test, info, inference=Inference(tta=tta)).accuracy for tta in TTA_MODES}
    for tta, value in accuracy.items():
        print(f"{tta:<12} {value:.2%}")
    write_report({"benchmark": "tta_modes", "model": args.model, "training": info.training.get("config", {}),
                  "test_accuracy": accuracy}, args.out)


if __name__ == "__main__":
    main()
