"""Features for small data: `resnetlab embed` + a scikit-learn linear probe, measured on real datasets.

No ImageNet weights can be fetched on the build machine (no network), so the feature extractor is
trained here: resnet20 for a few epochs on MNIST (shared data, byte-exact). Its pooled features then
feed a logistic regression on a different dataset, Fashion-MNIST (2,000 train / 2,000 test images
written as PNG class folders, so `embed` reads files as a user's folder would). The probe is compared
with the same probe on raw pixels and on the features of a randomly initialized resnet20.

    python benchmarks/linear_probe.py [--epochs 2] [--per-class 200]

Writes benchmarks/results/linear_probe.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression

import resnetlab
from resnetlab.data.idx import load_idx_dataset

from common import SHARED_DATA, fresh_cache, write_report


def write_folder(images: np.ndarray, labels: np.ndarray, names: list[str], root: Path) -> None:
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[0]).save(folder / f"{i:05d}.png")


def take(images: np.ndarray, labels: np.ndarray, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
                             for c in np.unique(labels)])
    return images[chosen], labels[chosen]


def probe(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> float:
    scale = train[0].std(axis=0) + 1e-6  # standardized features: one C for every extractor
    mean = train[0].mean(axis=0)
    clf = LogisticRegression(max_iter=3000).fit((train[0] - mean) / scale, train[1])
    return float(clf.score((test[0] - mean) / scale, test[1]))


def embed(model_args: list[str], folder: Path, out: Path) -> tuple[np.ndarray, np.ndarray, float]:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "resnetlab", "embed", str(folder), *model_args, f"out={out}"], check=True)
    seconds = time.perf_counter() - started
    data = np.load(out)
    return data["features"], data["labels"], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--out", default="benchmarks/results/linear_probe.json")
    args = parser.parse_args()
    fresh_cache()
    work = Path(tempfile.mkdtemp(prefix="resnetlab-probe-"))

    fashion = load_idx_dataset("fashion-mnist", data_dir=str(SHARED_DATA / "fashion-mnist"))
    train = take(fashion.train.images.numpy(), fashion.train.labels.numpy(), args.per_class, 0)
    test = take(fashion.test.images.numpy(), fashion.test.labels.numpy(), args.per_class, 1)
    write_folder(*train, fashion.class_names, work / "train")
    write_folder(*test, fashion.class_names, work / "test")

    started = time.perf_counter()
    result = resnetlab.train(model="resnet20", data="mnist", data_dir=str(SHARED_DATA / "mnist"), epochs=args.epochs,
                             project=str(work / "runs"), display="plain")
    train_seconds = time.perf_counter() - started
    trained = result.best_path
    random_model = work / "random.safetensors"
    info = resnetlab.read_info(trained)
    fresh = resnetlab.create_model("resnet20", num_classes=10, in_chans=1)
    resnetlab.save_model(random_model, fresh, info)  # same preprocessing, untrained weights

    rows = []
    pixels = ([a.reshape(len(a), -1) / 255.0 for a in (train[0], test[0])])
    rows.append({"features": "raw pixels (784)", "probe_accuracy": probe((pixels[0], train[1]), (pixels[1], test[1]))})
    for label, model in (("resnet20, random init (64)", random_model),
                         (f"resnet20 trained {args.epochs} epochs on MNIST (64)", trained)):
        f_train, y_train, seconds = embed([f"model={model}"], work / "train", work / "train.npz")
        f_test, y_test, _ = embed([f"model={model}"], work / "test", work / "test.npz")
        rows.append({"features": label, "probe_accuracy": probe((f_train, y_train), (f_test, y_test)),
                     "embed_seconds_train_folder": round(seconds, 2)})
    print(f"{'features':48s} probe accuracy on Fashion-MNIST ({2 * args.per_class * 10} images)")
    for row in rows:
        print(f"{row['features']:48s} {row['probe_accuracy']:.2%}")
    write_report({"benchmark": "linear_probe", "command": "python benchmarks/linear_probe.py",
                  "mnist_test_accuracy": result.test.accuracy, "train_seconds": round(train_seconds, 1),
                  "per_class": args.per_class, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
