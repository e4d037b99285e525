"""Prediction over a folder of image files: batched (and decoded in worker processes) vs one at a time.

    python benchmarks/predict_folder.py MODEL_FILE [--images 1000] [--backends auto,torch]
        [--data-dir ../shared/data/cifar10]

Writes CIFAR-10 test images as JPEG files into a temporary folder, then predicts them all with
`Predictor.predict_files` (what `resnetlab predict FOLDER` does) and with one call per file (what a
loop over `predict IMAGE` does), and reports images/s of each (median of 3 passes) and the ratio,
for each backend in one run. A fresh cache: `auto` measures its choice in this run, and says it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

from resnetlab.data import load_dataset
from resnetlab.data.images import expand_paths
from resnetlab.deploy.inference import describe
from resnetlab.deploy.predict import Predictor

from common import SHARED_DATA, fresh_cache, write_report


def timed(function, count: int, repeats: int = 3) -> list[float]:
    function()  # warm-up: worker start, oneDNN kernels
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        rates.append(count / (time.perf_counter() - started))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a model file trained on CIFAR-10-sized images")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--data-dir", default=str(SHARED_DATA / "cifar10"))
    parser.add_argument("--backends", default="auto,torch", help="comma-separated: auto, torch, onnxruntime, openvino")
    parser.add_argument("--out", default="benchmarks/results/predict_folder.json")
    args = parser.parse_args()
    fresh_cache()
    test = load_dataset("cifar10", data_dir=args.data_dir, val_fraction=0, download=False,
                        verify=False).test  # the shared CIFAR-10 is a JPEG copy, not the official bytes
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.images):
            Image.fromarray(test.images[index].permute(1, 2, 0).numpy()).save(Path(tmp) / f"{index:05d}.jpg",
                                                                               quality=90)
        paths = expand_paths([tmp])
        single_paths = paths[: max(50, len(paths) // 10)]  # one at a time is slow: a tenth of the files
        for backend in args.backends.split(","):
            predictor = Predictor.from_file(args.model, device="cpu", batch_size=64, backend=backend)
            batched = timed(lambda p=predictor: p.predict_files(paths), len(paths))
            single = timed(lambda p=predictor: [p.predict_files([f], workers=0) for f in single_paths],
                           len(single_paths))
            row = {"backend": backend, "ran": " ".join(describe(predictor.runner)),
                   "batched_images_per_s": statistics.median(batched), "batched_runs": batched,
                   "single_images_per_s": statistics.median(single), "single_runs": single}
            row["ratio"] = row["batched_images_per_s"] / row["single_images_per_s"]
            rows.append(row)
            print(f"backend {backend} ({row['ran']}); folder of {len(paths)} JPEGs: "
                  f"batched {row['batched_images_per_s']:,.0f} images/s, "
                  f"one at a time {row['single_images_per_s']:,.0f} images/s: {row['ratio']:.1f}x", flush=True)
    write_report({"benchmark": "predict_folder", "model": args.model, "images": len(paths), "rows": rows}, args.out)


if __name__ == "__main__":
    main()
