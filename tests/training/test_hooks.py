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


def test_early_stopping_counts_on_across_a_resume(tmp_path, monkeypatch):
    """patience=2 on validation accuracies 0.5 0.6 0.55 0.6 0.7: the run ends after epoch 4, also when it was
    checkpointed after epoch 3 and resumed (the wait of 1 comes back from the checkpoint)."""
    import torch

    from resnetlab.analysis.evaluation import EvalResult
    from resnetlab.config import TrainConfig
    from resnetlab.data import BatchLoader, ImageSet
    from resnetlab.info import ModelInfo
    from resnetlab.training.loop import Trainer
    from resnetlab.training.state import restore_training, save_training
    from resnetlab.training.stopping import EarlyStopping

    def trainer(epochs):
        torch.manual_seed(0)
        images = torch.randint(0, 255, (32, 1, 8, 8), dtype=torch.uint8)
        data = ImageSet(images, torch.arange(32) % 2)
        model = resnetlab.create_model("tutorial_cnn", num_classes=2, in_chans=1, img_size=8)
        info = ModelInfo(arch=model.arch, class_names=["a", "b"], input_size=(1, 8, 8), mean=(0.5,), std=(0.5,))
        t = Trainer(model, info, BatchLoader(data, 16, mean=info.mean, std=info.std),
                    TrainConfig(epochs=epochs, patience=2, precision="fp32"), val_data=data)
        accuracies = iter([0.5, 0.6, 0.55, 0.6, 0.7][len(t.history.rows):])
        monkeypatch.setattr(t, "validate", lambda: EvalResult(1.0, next(accuracies), 1.0, {}, None, 16))
        return t

    whole = trainer(10)
    whole.run()
    assert len(whole.history.rows) == 4 and whole.state.stop_reason.startswith("early stopping")
    assert isinstance(whole.callbacks[0], EarlyStopping)  # what patience= adds, first

    first = trainer(3)
    first.run()
    save_training(tmp_path / "last.safetensors", first)
    resumed = trainer(10)
    restore_training(tmp_path / "last.safetensors", resumed)
    resumed.state.done = False  # given more epochs, as `resnetlab train resume=... epochs=10` does
    accuracies = iter([0.6, 0.7])  # epochs 4 and 5
    monkeypatch.setattr(resumed, "validate", lambda: EvalResult(1.0, next(accuracies), 1.0, {}, None, 16))
    resumed.run()
    assert len(resumed.history.rows) == 4 and resumed.state.stop_reason == whole.state.stop_reason


def test_keras_early_stopping_is_the_library_one():
    from resnetlab.callbacks import EarlyStopping as KerasEarlyStopping
    from resnetlab.training.stopping import EarlyStopping

    keras_style = KerasEarlyStopping(monitor="val_accuracy", patience=3, min_delta=0.01)
    assert isinstance(keras_style.stopper, EarlyStopping)
    assert (keras_style.stopper.patience, keras_style.stopper.plateau.mode) == (3, "max")
    with pytest.raises(ValueError, match=r"EarlyStopping\(mode='up'\): use 'auto', 'min' or 'max'"):
        KerasEarlyStopping(mode="up")
