"""Training runs that meet bad luck: an empty config.yaml, a full disk, a diverging lr, settings out of range,
and a resume that must repeat the interrupted run exactly under the default precision=auto."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open

import resnetlab
from resnetlab.config import load_config, save_config
from resnetlab.errors import ConfigError, FileWriteError
from resnetlab.training import precision as precision_module
from resnetlab.training.callbacks import LambdaHooks
from resnetlab.training.divergence import TrainingError

# tutorial_cnn on the embedded 8x8 digits: 1,617 training images, 102 steps per epoch at batch 16, ~1 s an epoch
RUN = dict(model="tutorial_cnn", epochs=2, batch_size=16, lr=0.05, display="none", plots=False, tensorboard=False,
           checkpoint_minutes=0)
BN_RUN = {**RUN, "model": "resnet20", "epochs": 1, "max_steps": 6}  # a model with BatchNorm statistics


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), "pt") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118


def _same_training(a: Path, b: Path) -> None:
    expected, actual = _tensors(a), _tensors(b)
    assert expected.keys() == actual.keys()
    for key in expected:
        if not key.startswith("_train.rng"):
            assert torch.equal(expected[key], actual[key]), key


def _stop_at(step: int):
    def callback(trainer):
        if trainer.state.step == step:
            trainer.stop.request("test")
    return callback


def _stopped_run(tmp_path: Path, step: int = 5, **settings) -> Path:
    result = resnetlab.train(project=str(tmp_path), name="run", callbacks=[LambdaHooks(on_batch_end=_stop_at(step))],
                             **{**RUN, **settings})
    assert result.stopped == "test"
    return result.run_dir


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return resnetlab.train(project=str(tmp_path_factory.mktemp("whole")), name="run", **RUN)


# --- item 2: resume takes the settings recorded in the checkpoint ---------------------------------------


@pytest.mark.parametrize("damage", ["empty", "missing"])
def test_resume_after_config_yaml_was_lost_uses_the_checkpoint_settings(tmp_path, uninterrupted, damage):
    run_dir = _stopped_run(tmp_path)
    config_yaml = run_dir / "config.yaml"
    config_yaml.write_text("") if damage == "empty" else config_yaml.unlink()
    resumed = resnetlab.train(resume=str(run_dir), display="none")
    saved = yaml.safe_load(config_yaml.read_text())  # rewritten from the checkpoint's settings
    assert (saved["train"]["epochs"], saved["train"]["batch_size"]) == (2, 16)  # not the defaults 30 and 128
    _same_training(uninterrupted.last_path, resumed.last_path)


def test_resume_refuses_a_config_yaml_that_disagrees_with_the_checkpoint(tmp_path):
    run_dir = _stopped_run(tmp_path)
    config_yaml = run_dir / "config.yaml"
    edited = yaml.safe_load(config_yaml.read_text())
    edited["train"]["batch_size"] = 128
    config_yaml.write_text(yaml.safe_dump(edited))
    with pytest.raises(ConfigError, match=r"config.yaml disagrees with the settings recorded in last.safetensors "
                                          r"\(batch_size: 128 there, 16 in the checkpoint\)"):
        resnetlab.train(resume=str(run_dir), display="none")


def test_a_resume_with_new_settings_that_crashes_early_can_resume_again(tmp_path):
    run_dir = _stopped_run(tmp_path)

    def crash(trainer):
        if trainer.state.step == 8:
            raise RuntimeError("power cut")  # before the resumed run's first checkpoint

    with pytest.raises(RuntimeError, match="power cut"):
        resnetlab.train(resume=str(run_dir), epochs=3, display="none", callbacks=[LambdaHooks(on_batch_end=crash)])
    # config.yaml takes new settings with the checkpoint that records them, so the two still agree
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["epochs"] == 2
    result = resnetlab.train(resume=str(run_dir), epochs=3, display="none")
    assert len(result.history.rows) == 3
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["epochs"] == 3


def test_config_yaml_is_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "config.yaml"
    save_config(load_config(overrides={"epochs": 3}), path)
    before = path.read_text()

    def half_then_full_disk(self, text, *args, **kwargs):  # the first half reaches the disk, then ENOSPC
        with open(self, "w") as handle:
            handle.write(text[: len(text) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", half_then_full_disk)
    with pytest.raises(FileWriteError, match=r"could not write .*config.yaml: No space left on device; the previous "
                                             r"file is unchanged"):
        save_config(load_config(overrides={"epochs": 9}), path)
    monkeypatch.undo()
    assert path.read_text() == before and [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


# --- item 3: precision=auto is decided once and recorded ------------------------------------------------


def test_auto_precision_is_recorded_and_reused_on_resume(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(precision_module, "cpu_bf16_choice", lambda: (True, "test CPU"))
    whole = resnetlab.train(project=str(tmp_path / "whole"), name="run", **{**RUN, "display": "plain", "epochs": 1})
    assert "precision bf16 (auto: test CPU), channels_last on" in capsys.readouterr().out  # the run's first lines
    run_dir = _stopped_run(tmp_path, epochs=1)
    recorded = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (recorded["train"]["precision"], recorded["train"]["channels_last"], recorded["run"]["device"]) == \
        ("bf16", True, "cpu")
    assert resnetlab.read_info(run_dir / "last.safetensors").training["config"]["train"]["precision"] == "bf16"
    monkeypatch.setattr(precision_module, "cpu_bf16_choice", lambda: (False, "another verdict"))  # a new process
    resumed = resnetlab.train(resume=str(run_dir), display="none")
    _same_training(whole.last_path, resumed.last_path)


def test_the_cpu_rule_reads_feature_flags_not_a_timing(monkeypatch):
    monkeypatch.setattr(precision_module, "_onednn_has_bf16", lambda: True)
    monkeypatch.setattr(precision_module, "_bf16_measures_faster", lambda: pytest.fail("timed despite flags"))
    try:
        verdicts = {False: (False, "CPU lacks AVX-512 BF16 and AMX"), True: (True, "CPU has AVX-512 BF16/AMX")}
        for flags, verdict in verdicts.items():
            precision_module.cpu_bf16_choice.cache_clear()
            monkeypatch.setattr(precision_module, "_cpu_bf16_flags", lambda flags=flags: flags)
            assert precision_module.cpu_bf16_choice() == verdict
    finally:
        precision_module.cpu_bf16_choice.cache_clear()


# --- item 5: divergence stops the run, and no non-finite tensor reaches a file -------------------------


def _model_files(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("*.safetensors"))


def test_non_finite_batchnorm_statistics_stop_the_run(tmp_path):
    def poison(trainer):  # a finite loss, but a BatchNorm variance overflowed (what lr=30 did)
        if trainer.state.step == 6:
            trainer.model.bn1.running_var[0] = math.inf

    with pytest.raises(TrainingError, match=r"training diverged: inf or NaN in 1 of the model's tensors "
                                            r"\(bn1.running_var\) by step 6.*holds no checkpoint"):
        resnetlab.train(project=str(tmp_path), name="run", callbacks=[LambdaHooks(on_batch_end=poison)], **BN_RUN)
    assert _model_files(tmp_path / "run") == []


def test_a_non_finite_validation_loss_stops_the_run_and_names_what_exists(tmp_path, monkeypatch):
    from resnetlab.training.loop import Trainer

    validate = Trainer.validate

    def nan_in_epoch_2(self):
        result = validate(self)
        if self.state.epoch == 2:
            result.loss = math.nan
        return result

    monkeypatch.setattr(Trainer, "validate", nan_in_epoch_2)
    with pytest.raises(TrainingError, match=r"the validation loss became nan by step \d+; .*run holds last.safetensors "
                                            r"\(after epoch 1, step \d+\) and best.safetensors \(after epoch 1,"):
        resnetlab.train(project=str(tmp_path), name="run", **RUN)
    for path in _model_files(tmp_path / "run"):  # epoch 1's files, every tensor finite
        assert all(torch.isfinite(t).all() for t in _tensors(path).values() if t.is_floating_point()), path


def test_a_diverging_lr_exits_non_zero_with_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "resnetlab", "train", "lr=1e6", "epochs=1", "progress=false",
                           "plots=false", f"project={tmp_path}", "name=run"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stderr
    error = done.stderr.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: training diverged"), done.stderr
    assert "holds no checkpoint" in error[0] and not (tmp_path / "run" / "last.safetensors").exists()


# --- item 6: a full disk is one error line, and metrics.csv never repeats an epoch -----------------------

FULL_DISK = """
import resource, sys
import resnetlab.cli
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))  # any file past 200 kB: EFBIG, as a full disk
sys.exit(resnetlab.cli.main(sys.argv[1:]))
"""


def test_a_write_that_fails_mid_run_is_one_error_line(tmp_path):
    done = subprocess.run([sys.executable, "-c", FULL_DISK, "train", "model=resnet20", "epochs=1", "max_steps=2",
                           "progress=false", "plots=false", f"project={tmp_path}", "name=run"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    error = done.stderr.strip().splitlines()
    assert len(error) == 1 and "Traceback" not in done.stderr, done.stderr
    assert error[0].startswith(f"error: could not write {tmp_path}/run/") and "File too large" in error[0]
    assert "holds no checkpoint" in error[0]
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]  # no half-written file left


def test_metrics_csv_has_each_epoch_once_after_a_crash_and_resume(tmp_path, monkeypatch):
    from resnetlab.training.writer import RunWriter

    write_csv = RunWriter._write_csv

    def crash_after_epoch_2_checkpoint(self, rows):
        if len(rows) == 2:
            raise KeyboardInterrupt  # killed between `last` and metrics.csv
        write_csv(self, rows)

    monkeypatch.setattr(RunWriter, "_write_csv", crash_after_epoch_2_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        resnetlab.train(project=str(tmp_path), name="run", **{**RUN, "epochs": 3})
    monkeypatch.undo()
    resnetlab.train(resume=str(tmp_path / "run"), display="none")
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").read_text().splitlines()))
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]


# --- item 14: settings out of range are refused when parsed ---------------------------------------------


@pytest.mark.parametrize(("word", "message"), [
    ("seed=99999999999999999999999", "seed must be in 0..9223372036854775807"),
    ("seed=-1", "seed must be in 0.."),
    ("lookahead_steps=-1", "lookahead_steps must be >= 0"),
    ("gamma=0", "gamma must be positive"),
    ("warmup_until_accuracy=2", r"warmup_until_accuracy must be in \(0, 1\]"),
])
def test_settings_out_of_range_are_refused_at_parse_time(word, message):
    key, value = word.split("=")
    with pytest.raises(ConfigError, match=message):
        load_config(overrides={key: value})


def test_cli_refuses_a_huge_seed_in_one_line(tmp_path, capsys):
    from resnetlab.cli import main

    assert main(["train", "seed=99999999999999999999999", f"project={tmp_path}"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: seed must be in 0..9223372036854775807 (2**63 - 1), got 99999999999999999999999"]
    assert not any(tmp_path.iterdir())  # no run folder
