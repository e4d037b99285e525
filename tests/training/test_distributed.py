"""Multi-process training with torchrun: 2 CPU processes over gloo against one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

import resnetlab

COMMON = ["epochs=1", "batch_size=64", "lr=0.05", "precision=fp32", "plots=false", "progress=false",
          "checkpoint_minutes=0"]


def _weights(path):
    with safe_open(str(path), "pt") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys() if not k.startswith("_train.")}  # noqa: SIM118


def _torchrun(tmp_path, model, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one core per process
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "resnetlab", "train", f"model={model}", *COMMON, f"project={tmp_path}", "name=ddp", *extra]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
@pytest.mark.parametrize("steps, tolerance", [(2, 1e-6), (None, 1e-4)])
def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path, steps, tolerance):
    """tutorial_cnn has no BatchNorm, so two half batches give the gradient of one whole batch; the only
    differences are float rounding (summation order), about 1e-8 after a step, growing to about 1e-5
    over the 20 steps of an epoch."""
    extra = [f"max_steps={steps}"] if steps else []
    result = _torchrun(tmp_path, "tutorial_cnn", *extra)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]  # one run folder, written by rank 0
    assert result.stdout.count("run folder:") == 1
    settings = dict(word.split("=") for word in COMMON + extra)
    single = resnetlab.train(model="tutorial_cnn", project=str(tmp_path / "single"), display="none", **settings)
    ddp, one = _weights(tmp_path / "ddp" / "last.safetensors"), _weights(single.last_path)
    assert ddp.keys() == one.keys()
    for key in one:
        torch.testing.assert_close(ddp[key], one[key], rtol=tolerance * 10, atol=tolerance)


@pytest.mark.slow
def test_resnet_trains_with_batchnorm_under_ddp(tmp_path):
    _torchrun(tmp_path, "resnet20", "precision=auto")
    model, info = resnetlab.load_model(tmp_path / "ddp" / "best.safetensors")
    assert info.training["test_accuracy"] > 0.3  # it learnt; per-process BatchNorm makes it differ slightly


STOP_ON_ONE_RANK = """
import sys
import resnetlab
from resnetlab.training.callbacks import LambdaHooks

def stop_on_rank_1(trainer):
    if trainer.distributed.rank == 1 and trainer.state.step == 3:
        trainer.stop.request("rank 1 asked")

result = resnetlab.train(model="tutorial_cnn", epochs=1, batch_size=64, lr=0.05, precision="fp32", plots=False,
                         checkpoint_minutes=0, project=sys.argv[1], name="ddp", display="none",
                         callbacks=[LambdaHooks(on_batch_end=stop_on_rank_1)])
print(f"stopped={result.stopped!r}", flush=True)
"""


@pytest.mark.slow
def test_a_stop_asked_of_one_process_stops_all_at_the_same_step(tmp_path):
    from resnetlab.training.loop import STOP_CHECK_STEPS

    script = tmp_path / "stop.py"
    script.write_text(STOP_ON_ONE_RANK)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
               str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    # rank 0 was never asked itself, yet stops with rank 1 at their next common check, and writes `last`
    assert "stopped='rank 1 asked'" in result.stdout and "stopped=\"another process's stop request\"" in result.stdout
    _, info = resnetlab.load_model(tmp_path / "ddp" / "last.safetensors")
    assert info.training["step"] == STOP_CHECK_STEPS


@pytest.mark.slow
def test_fine_tuning_trains_the_head_first_under_ddp(tmp_path):
    """The backbone is frozen for head_epochs after DDP wrapped the model: DDP must not wait for its gradients."""
    start = resnetlab.train(model="tutorial_cnn", epochs=1, precision="fp32", project=str(tmp_path / "start"),
                            display="none", plots=False, checkpoint_minutes=0, tensorboard=False)
    _torchrun(tmp_path, "tutorial_cnn", f"weights={start.best_path}", "head_epochs=1", "epochs=2")
    rows = (tmp_path / "ddp" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3  # header, the head-only epoch, the all-layers epoch
    before, after = _weights(start.best_path), _weights(tmp_path / "ddp" / "last.safetensors")
    assert not torch.equal(before["conv1.weight"], after["conv1.weight"])  # the backbone trained in epoch 2


@pytest.mark.slow
def test_weighted_counts_over_two_processes_are_those_of_one(tmp_path):
    """The confusion matrices and weight total behind the Keras metrics and weighted_metrics are summed over
    processes with the loss: a 2-process epoch counts every image once, as one process does."""
    from ddp_counts import weighted_counts

    script = Path(__file__).parent.parent / "ddp_counts.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
               str(tmp_path / "ddp.json")]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ddp, one = json.loads((tmp_path / "ddp.json").read_text()), weighted_counts()
    assert ddp["confusion"] == one["confusion"] and sum(map(sum, one["confusion"])) == 96
    np.testing.assert_allclose(ddp["weighted_confusion"], one["weighted_confusion"], rtol=1e-6)
    assert ddp["weight_total"] == pytest.approx(one["weights_sum"], rel=1e-12)  # every weight once per epoch
    assert ddp["weighted_top5"] == pytest.approx(one["weight_total"], rel=1e-12)  # 3 classes: all in the top 5
    assert ddp["train_loss"] == pytest.approx(one["train_loss"], rel=1e-5)
