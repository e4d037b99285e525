"""Kill a training run with SIGKILL at a random moment, resume it, and check that it ends bit for bit where
an uninterrupted run ends: the model, EMA and optimizer tensors of the final `last.safetensors`.

Each trial is a fresh `resnetlab train` process (so `precision=auto` and every other automatic choice is
made anew in each process, as when a user's run dies), killed after its first checkpoint at a uniformly
random time before its end, then `resnetlab train resume=RUN` in another fresh process.

    python benchmarks/sigkill_resume.py --trials 30          # digits, resnet20, 3 epochs (about 10 s a run)
    python benchmarks/sigkill_resume.py --trials 3 epochs=2  # quick look; words after the flags are settings

Writes benchmarks/results/sigkill_resume.json as it goes (one entry per trial).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors import safe_open

from common import write_report

# the newcomer's run (resnet20 on the embedded digits, every other setting at its default, precision=auto
# included) made short, with a mid-epoch checkpoint every ~0.6 s so that kills land mid-epoch too
SETTINGS = ["epochs=3", "checkpoint_minutes=0.01", "progress=false", "plots=false", "tensorboard=false"]


def _train(words: list[str], project: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "resnetlab", "train", *words, f"project={project}", "name=run"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), "pt") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118


def _differences(reference: dict[str, torch.Tensor], path: Path) -> list[str]:
    """Names of the tensors that differ from the reference (the RNG states included: they must match too)."""
    actual = _tensors(path)
    if actual.keys() != reference.keys():
        return sorted(set(actual) ^ set(reference))
    return [k for k in reference if not torch.equal(reference[k], actual[k])]


def _finish(process: subprocess.Popen, what: str) -> None:
    _, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{what} failed ({process.returncode}): {stderr.strip()[-2000:]}")


def trial(number: int, words: list[str], reference: dict[str, torch.Tensor], seconds: float, root: Path,
          rng: random.Random) -> dict:
    """One kill and resume; a run that finishes before its kill time is started again with a new draw, so that
    every trial is a real kill."""
    for attempt in range(1, 6):
        row = _trial(f"{number}-{attempt}", words, reference, seconds, root, rng)
        if not row["finished_before_kill"]:
            break
    return {**row, "trial": number, "attempts": attempt}


def _trial(number: str, words: list[str], reference: dict[str, torch.Tensor], seconds: float, root: Path,
           rng: random.Random) -> dict:
    project = root / f"trial-{number}"
    run_dir = project / "run"
    process = _train(words, project)
    started = time.perf_counter()
    while not (run_dir / "last.safetensors").exists() and process.poll() is None:
        time.sleep(0.02)
    first_checkpoint = time.perf_counter() - started
    # the uninterrupted run's time includes the final test evaluation: stop short of it, so that the kill
    # lands while the run trains
    delay = rng.uniform(0, max(0.8 * (seconds - first_checkpoint), 0.1))
    time.sleep(delay)
    finished_first = process.poll() is not None
    if not finished_first:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = time.perf_counter() - started
    resumed = _train([f"resume={run_dir}", "progress=false"], project)
    _finish(resumed, f"trial {number}: resume")
    different = _differences(reference, run_dir / "last.safetensors")
    row = {"trial": number, "killed_after_s": round(killed_at, 2), "finished_before_kill": finished_first,
           "exact": not different, "different_tensors": len(different), "first_different": different[:5]}
    print(f"trial {number:>4}: killed after {killed_at:5.2f} s -> {'exact' if not different else different[:3]}")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill times")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "sigkill_resume.json"))
    args, settings = parser.parse_known_args()
    words = SETTINGS + settings
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="sigkill-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        whole = _train(words, root / "reference")
        _finish(whole, "the uninterrupted run")
        seconds = time.perf_counter() - started
        reference = _tensors(root / "reference" / "run" / "last.safetensors")
        config = (root / "reference" / "run" / "config.yaml").read_text()
        rows = []
        for number in range(1, args.trials + 1):
            rows.append(trial(number, words, reference, seconds, root, rng))
            exact = sum(row["exact"] for row in rows)
            killed = sum(not row["finished_before_kill"] for row in rows)
            report = {"benchmark": "sigkill_resume", "command": " ".join(["python", *sys.argv]),
                      "settings": words, "uninterrupted_seconds": round(seconds, 2), "trials": len(rows),
                      "killed": killed, "exact": exact, "all_exact": exact == len(rows), "resolved_config": config,
                      "rows": rows}
            write_report(report, args.out)
    print(f"{exact} of {len(rows)} runs ended bit for bit as the uninterrupted one ({killed} were killed mid-run, "
          f"{len(rows) - killed} had finished before their kill time)")
    if exact != len(rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
