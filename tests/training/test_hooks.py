"""The training loop's one callback interface (training/callbacks.py): hooks, their order, state across a resume."""

from __future__ import annotations

import pytest

import resnetlab
from resnetlab.training import Callback, LambdaHooks
from resnetlab.training.divergence import TrainingError

QUIET = dict(model="tutorial_cnn", display="none", plots=False, tensorboard=False, checkpoint_minutes=0,
             batch_size=256, precision="fp32")  # the digits: 1,149 training images -> 5 steps an epoch


class Recorder(Callback):
    """Notes every hook call; counts steps as state that must survive a resume."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.calls: list[str] = []
        self.steps = 0  # over the whole run, resumes included (state_dict)
        self.stop_at = stop_at

    def on_train_begin(self, trainer):
        self.calls.append("train_begin")

    def on_epoch_begin(self, trainer):
        self.calls.append(f"epoch_begin {trainer.state.epoch}")

    def on_batch_end(self, trainer):
        self.steps += 1
        self.calls.append("batch")
        if self.stop_at is not None and trainer.state.step == self.stop_at:
            trainer.stop.request("test")

    def on_epoch_end(self, trainer, metrics):
        self.calls.append(f"epoch_end {metrics.epoch}")

    def on_checkpoint(self, trainer):
        self.calls.append("checkpoint")

    def on_train_end(self, trainer):
        self.calls.append("train_end")

    def on_exception(self, trainer, error):
        self.calls.append(f"exception {type(error).__name__}")

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = state["steps"]


def test_hooks_run_in_order_with_the_trainer(tmp_path):
    recorder = Recorder()
    resnetlab.train(epochs=2, project=str(tmp_path), callbacks=[recorder], **QUIET)
    steps = 5
    expected = ["train_begin", "epoch_begin 1", *["batch"] * steps, "epoch_end 1",
                "epoch_begin 2", *["batch"] * steps, "epoch_end 2", "train_end"]
    assert recorder.calls == expected
    assert recorder.steps == 10


def test_a_stopped_run_asks_for_a_checkpoint_and_callback_state_resumes(tmp_path):
    first = Recorder(stop_at=7)
    stopped = resnetlab.train(epochs=3, project=str(tmp_path), name="run", callbacks=[first], **QUIET)
    assert stopped.stopped == "test"
    assert first.calls[-3:] == ["batch", "checkpoint", "train_end"]  # `last` written for the resume
    assert first.steps == 7
    again = Recorder()
    resnetlab.train(resume=str(stopped.run_dir), display="none", callbacks=[again])
    assert again.steps == 15  # 7 before the stop (from the checkpoint) + the 8 steps left
    assert again.calls[:2] == ["train_begin", "epoch_begin 2"]  # the rest of epoch 2: 3 of its 5 steps
    assert again.calls.count("batch") == 8


def test_an_error_reaches_on_exception_not_on_train_end(tmp_path):
    recorder = Recorder()

    def explode(trainer):
        raise TrainingError("boom")

    with pytest.raises(TrainingError, match="boom"):
        resnetlab.train(epochs=1, project=str(tmp_path), callbacks=[recorder, LambdaHooks(on_batch_end=explode)],
                        **QUIET)
    assert recorder.calls[-1] == "exception TrainingError" and "train_end" not in recorder.calls


def test_a_function_or_a_keras_callback_is_refused_with_what_to_use(tmp_path):
    with pytest.raises(TypeError, match=r"callbacks\[0\] is a builtins.function.*LambdaHooks\(on_batch_end=fn\)"):
        resnetlab.train(epochs=1, project=str(tmp_path), callbacks=[lambda trainer: None], **QUIET)
    from resnetlab.callbacks import EarlyStopping

    with pytest.raises(TypeError, match="Keras' EarlyStopping .* Classifier.fit"):
        resnetlab.train(epochs=1, project=str(tmp_path), callbacks=[EarlyStopping()], **QUIET)
