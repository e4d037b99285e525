"""Lr changes from outside the schedule (LrScale) and the run folder's best model: both are callbacks whose
state a checkpoint keeps, so a resumed run goes on as the uninterrupted one."""

from __future__ import annotations

import pytest
import torch

import resnetlab
from resnetlab.analysis.evaluation import EvalResult
from resnetlab.checkpoint import read_info
from resnetlab.config import Config, RunConfig, TrainConfig
from resnetlab.data import BatchLoader, ImageSet
from resnetlab.info import ModelInfo
from resnetlab.training import LambdaHooks
from resnetlab.training.history import History
from resnetlab.training.loop import Trainer
from resnetlab.training.lr_scale import LrScale
from resnetlab.training.state import restore_training, save_training, saved_callback_state
from resnetlab.training.writer import RunWriter


def _trainer(epochs: int, callbacks=(), **settings) -> Trainer:
    torch.manual_seed(0)
    images = torch.randint(0, 255, (32, 1, 8, 8), dtype=torch.uint8)
    data = ImageSet(images, torch.arange(32) % 2)
    model = resnetlab.create_model("tutorial_cnn", num_classes=2, in_chans=1, img_size=8)
    info = ModelInfo(arch=model.arch, class_names=["a", "b"], input_size=(1, 8, 8), mean=(0.5,), std=(0.5,))
    cfg = TrainConfig(epochs=epochs, precision="fp32", optimizer="sgd", lr=0.1, **settings)
    return Trainer(model, info, BatchLoader(data, 16, mean=info.mean, std=info.std), cfg, val_data=data,
                   callbacks=list(callbacks))


def test_lr_scale_scales_the_schedule_and_its_factor_survives_a_resume(tmp_path):
    scale = LrScale()
    halve = LambdaHooks(on_epoch_end=lambda t, m: scale.scale_to(t, 0.05) if m.epoch == 1 else None)
    first = _trainer(2, [scale, halve], schedule="constant", warmup_epochs=0)
    first.run()
    assert [row.lr for row in first.history.rows] == pytest.approx([0.1, 0.05])
    assert scale.state_dict() == {"factor": pytest.approx(0.5)}
    save_training(tmp_path / "last.safetensors", first)

    resumed = _trainer(3, [LrScale()], schedule="constant", warmup_epochs=0)
    restore_training(tmp_path / "last.safetensors", resumed)
    resumed.state.done = False
    resumed.run()
    assert [row.lr for row in resumed.history.rows] == pytest.approx([0.1, 0.05, 0.05])  # the factor came back


def test_lr_scale_without_a_step_leaves_the_factor_as_it_was():
    scale = LrScale(0.5)
    scale.pending = 0.02
    trainer = _trainer(1, [scale], schedule="constant", warmup_epochs=0, max_steps=1)
    trainer.state.step = trainer.cfg.max_steps  # already at the end: no step runs
    trainer.state.done = True
    trainer.run()
    assert (scale.factor, scale.pending) == (0.5, 0.02)  # the next run still starts at 0.02
    with pytest.raises(RuntimeError, match="running Trainer"):
        LrScale().scale_to(trainer, 0.1)


def test_the_best_model_is_the_best_score_also_across_a_resume(tmp_path, monkeypatch):
    """Validation accuracies 0.5 0.7 0.6 | resume | 0.65: best.safetensors keeps epoch 2 (the resumed run's
    first epoch is not taken for the best because it is the first one it saw)."""
    config = Config(run=RunConfig(plots=False, tensorboard=False))

    def run(epochs, accuracies, resume=False):
        writer = RunWriter(tmp_path, config, resumed=resume)
        trainer = _trainer(epochs, [writer])
        if resume:
            restore_training(writer.last_path, trainer)
            trainer.state.done = False
        values = iter(accuracies)
        monkeypatch.setattr(trainer, "validate", lambda: EvalResult(1.0, next(values), 1.0, {}, None, 32))
        trainer.run()
        return writer

    first = run(3, [0.5, 0.7, 0.6])
    assert first.best_epoch == 2 and read_info(first.best_path).training["epoch"] == 2
    resumed = run(4, [0.65], resume=True)
    assert resumed.best_epoch == 2 and read_info(resumed.best_path).training["epoch"] == 2


def test_a_checkpoint_of_an_older_version_hands_its_best_to_the_run_folder():
    old = {"loop": {"epoch": 4, "best_score": [0.7, -0.3], "best_epoch": 2}, "callbacks": {}}
    assert saved_callback_state(old)["RunWriter"] == {"best": [0.7, -0.3], "wait": 0, "best_epoch": 2}
    older = {"loop": {"best_accuracy": 0.6, "best_epoch": 1}}
    assert saved_callback_state(older)["RunWriter"]["best"] == [0.6, -float("inf")]
    kept = {"loop": {"best_score": [0.1, 0.0]}, "callbacks": {"RunWriter": {"best": [0.9, -0.1], "wait": 0,
                                                                         "best_epoch": 3}}}
    assert saved_callback_state(kept)["RunWriter"]["best_epoch"] == 3  # a newer checkpoint's own state wins


def test_the_loops_history_uses_its_own_names():
    trainer = _trainer(1, schedule="constant", warmup_epochs=0)
    history = trainer.run()
    assert isinstance(history, History) and history.epochs == [1]
    assert list(history.by_name()) == ["loss", "accuracy", "top5", "val_loss", "val_accuracy", "val_top5", "lr"]
    assert history["val_accuracy"] == [history.rows[0].val_accuracy]
    with pytest.raises(KeyError, match="has no 'acc'; it has loss, accuracy"):
        history["acc"]
