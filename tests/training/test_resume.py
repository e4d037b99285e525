"""Never lose a run: interrupted and resumed equals uninterrupted; signals; a kill during a save."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors import safe_open

import resnetlab
from resnetlab.tensorfile import TRAIN_META_KEY
from resnetlab.training.callbacks import LambdaHooks

# drop_path draws random numbers (the RNG must resume too); EMA and lookahead keep weights of their own
SETTINGS = dict(epochs=3, lr=0.05, drop_path_rate=0.1, ema_decay=0.9, lookahead_steps=3, checkpoint_minutes=0,
                display="none", tensorboard=False, plots=False)


def _tensors(path):
    with safe_open(str(path), "pt") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118


def _rows(run_dir):
    rows = list(csv.DictReader((run_dir / "metrics.csv").read_text().splitlines()))
    return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_second")} for r in rows]


def _stop_at(step):
    def callback(trainer):
        if trainer.state.step == step:
            trainer.stop.request("test")
    return callback


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return resnetlab.train(project=str(tmp_path_factory.mktemp("whole")), **SETTINGS)


@pytest.mark.parametrize("stop_step", [14, 20])  # mid-epoch 2 (10 steps per epoch), and an epoch boundary
def test_interrupted_and_resumed_run_ends_with_exactly_the_same_weights(uninterrupted, tmp_path, stop_step):
    stopped = resnetlab.train(project=str(tmp_path), callbacks=[LambdaHooks(on_batch_end=_stop_at(stop_step))],
                              **SETTINGS)
    assert stopped.stopped == "test" and stopped.test is None
    with safe_open(stopped.last_path, "pt") as handle:  # the checkpoint records where it stopped
        loop = json.loads(handle.metadata()[TRAIN_META_KEY])["loop"]
    assert loop["step"] == stop_step and (loop["epoch"], loop["batch"]) == (stop_step // 10 + 1, stop_step % 10)
    resumed = resnetlab.train(resume=str(stopped.run_dir), display="none")
    assert resumed.stopped is None and resumed.run_dir == stopped.run_dir
    expected, actual = _tensors(uninterrupted.last_path), _tensors(resumed.last_path)
    assert expected.keys() == actual.keys()
    for key in expected:
        if not key.startswith("_train.rng"):
            assert torch.equal(expected[key], actual[key]), key  # model, EMA, optimizer state: bit for bit
    assert _rows(resumed.run_dir) == _rows(uninterrupted.run_dir)  # the same metrics, epoch by epoch
    assert resumed.test.accuracy == uninterrupted.test.accuracy


def test_resume_needs_a_checkpoint(tmp_path):
    from resnetlab.errors import ConfigError

    with pytest.raises(ConfigError, match="no checkpoint at"):
        resnetlab.train(resume=str(tmp_path))


def test_sigint_finishes_the_step_writes_last_and_says_how_to_resume(tmp_path):
    command = [sys.executable, "-m", "resnetlab", "train", "epochs=200", f"project={tmp_path}", "name=sig",
               "progress=false", "plots=false", "checkpoint_minutes=0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "sig" / "metrics.csv"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3) and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "stopped by SIGINT" in err and f"Resume with: resnetlab train resume={tmp_path / 'sig'}" in err
    done = len(_rows(tmp_path / "sig"))
    assert 2 <= done < 200
    last = resnetlab.load_model(tmp_path / "sig" / "last.safetensors")  # intact and loadable
    assert last[1].training["step"] >= done * 10
    resumed = resnetlab.train(resume=str(tmp_path / "sig"), epochs=done + 1, display="none")
    assert [int(r["epoch"]) for r in _rows(resumed.run_dir)] == list(range(1, done + 2))


def _one_epoch_run(tmp_path):
    return resnetlab.train(model="tutorial_cnn", epochs=1, lr=0.05, project=str(tmp_path), name="short",
                           display="none", checkpoint_minutes=0, tensorboard=False, plots=False)


def test_a_finished_run_resumed_from_the_cli_with_more_epochs_trains_on(tmp_path, capsys):
    from resnetlab.cli import main

    first = _one_epoch_run(tmp_path)
    steps = resnetlab.load_model(first.last_path)[1].training["step"]
    assert main(["train", f"resume={first.run_dir}", "epochs=3", "progress=false"]) == 0
    assert [int(r["epoch"]) for r in _rows(first.run_dir)] == [1, 2, 3]
    assert resnetlab.load_model(first.last_path)[1].training["step"] == 3 * steps
    assert "epochs: 3" in (first.run_dir / "config.yaml").read_text()  # the run's settings now say so


def test_a_prebuilt_config_resumes_with_the_settings_it_changes(tmp_path):
    from resnetlab.config import load_config

    first = _one_epoch_run(tmp_path)
    config = load_config(overrides={"resume": str(first.run_dir), "epochs": 2})  # lr and model at their defaults
    resumed = resnetlab.train(config, display="none")
    assert [int(r["epoch"]) for r in _rows(resumed.run_dir)] == [1, 2]  # epochs=2 was not dropped
    saved = load_config(first.run_dir / "config.yaml")
    assert (saved.train.epochs, saved.train.lr, saved.model.name) == (2, 0.05, "tutorial_cnn")  # the run's own


KILLER = """
import sys, torch, resnetlab
from resnetlab.checkpoint import save_model
from resnetlab.info import ModelInfo
model = resnetlab.create_model("resnet50", num_classes=10)
info = ModelInfo(arch=model.arch, class_names=[str(i) for i in range(10)], input_size=(3, 224, 224),
                 mean=(0.5,) * 3, std=(0.25,) * 3)
for version in range(1000):
    with torch.no_grad():
        model.fc.bias.fill_(version)
    save_model(sys.argv[1], model, info)
    print(version, flush=True)
"""


def test_killing_a_process_while_it_writes_never_leaves_a_broken_file(tmp_path):
    target = tmp_path / "model.safetensors"
    process = subprocess.Popen([sys.executable, "-c", KILLER, str(target)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "0"  # the first version is complete
    time.sleep(0.35)  # well inside a later write (each takes about 0.2-0.5 s for 100 MB)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    model, _ = resnetlab.load_model(target)  # whatever version it holds is whole
    versions = set(model.fc.bias.unique().tolist())
    assert len(versions) == 1 and versions.pop() >= 0
