"""`resnetlab serve` under load: latency percentiles and throughput, against the backend's own speed.

    python benchmarks/serve_load.py MODEL_FILE [--requests 2000] [--clients 32] [--data-dir DIR]

Starts the server in its own process on loopback, sends CIFAR-10 test images as PNG (one request
each) from --clients concurrent clients (the client runs on the same 2 cores as the server), then
from one client in sequence (unbatched), and reports requests/s, p50/p90/p99 latency, errors and
the micro-batch sizes the server formed. For scale it also times the bare backend on the same
images: batch-1 and batch-32 images/s with no HTTP, no PNG decoding. Writes JSON.
"""

from __future__ import annotations

import argparse
import io
import time

import httpx
import numpy as np
from PIL import Image

from resnetlab.data import load_dataset
from resnetlab.deploy.inference import describe
from resnetlab.deploy.predict import Predictor
from resnetlab.deploy.serve.load import load_test, running_server

from common import SHARED_DATA, fresh_cache, write_report


def bare_backend(model: str, pixels: np.ndarray) -> dict:
    import torch

    predictor = Predictor.from_file(model, device="cpu", batch_size=32)
    rates = {}
    for batch in (1, 32):
        chunk = torch.from_numpy(pixels[:batch])
        predictor.logits(chunk)
        started, count = time.perf_counter(), 0
        while time.perf_counter() - started < 2.0:
            predictor.logits(chunk)
            count += batch
        rates[f"batch{batch}_images_per_s"] = count / (time.perf_counter() - started)
    return {"backend": " ".join(describe(predictor.runner)), **rates}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a model file trained on CIFAR-10")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--data-dir", default=str(SHARED_DATA / "cifar10"))
    parser.add_argument("--server-args", nargs="*", default=["access_log=false"],  # as measured before the log
                        help="key=value settings for resnetlab serve")
    parser.add_argument("--out", default="benchmarks/results/serve_load.json")
    args = parser.parse_args()
    fresh_cache()  # the server (a child process) measures its auto choice anew
    test = load_dataset("cifar10", data_dir=args.data_dir, val_fraction=0, download=False,
                        verify=False).test  # the shared CIFAR-10 is a JPEG copy, not the official bytes
    pixels = test.images[:256].numpy()
    payloads = []
    for image in pixels:
        buffer = io.BytesIO()
        Image.fromarray(image.transpose(1, 2, 0)).save(buffer, format="PNG")
        payloads.append(buffer.getvalue())
    with running_server(args.model, args.server_args) as url:
        load_test(url, payloads, requests=200, clients=args.clients)  # warm-up
        before = httpx.get(f"{url}/v1/model").json()["server"]["batches"]
        loaded = load_test(url, payloads, requests=args.requests, clients=args.clients)
        after = httpx.get(f"{url}/v1/model").json()["server"]["batches"]
        sequential = load_test(url, payloads, requests=min(500, args.requests), clients=1)
        card = httpx.get(f"{url}/v1/model").json()
    batches = after["batches"] - before["batches"]
    mean_batch = (after["images"] - before["images"]) / max(1, batches)
    bare = bare_backend(args.model, pixels)
    report = {"benchmark": "serve_load", "model": args.model, "server_backend": card["backend"],
              "load": loaded.summary(), "sequential": sequential.summary(), "mean_batch": mean_batch,
              "largest_batch": after["largest"], "bare": bare}
    print(f"server: {card['arch']['name']} on {card['backend']} {card['precision']}")
    for label, result in (("load", loaded), ("one client", sequential)):
        s = result.summary()
        print(f"{label:<11} {s['requests']} requests, {s['clients']} clients: {s['requests_per_s']:.0f} req/s, "
              f"p50 {s['p50_ms']:.1f} ms, p90 {s['p90_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, errors {s['errors']}")
    print(f"micro-batches under load: mean {mean_batch:.1f} images, largest {after['largest']}")
    print(f"bare backend ({bare['backend']}): batch 1 {bare['batch1_images_per_s']:.0f} img/s, "
          f"batch 32 {bare['batch32_images_per_s']:.0f} img/s")
    write_report(report, args.out)


if __name__ == "__main__":
    main()
