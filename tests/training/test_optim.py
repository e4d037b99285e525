from __future__ import annotations

import math

import pytest
import torch

import resnetlab
from resnetlab.config import TrainConfig, load_config
from resnetlab.errors import ConfigError
from resnetlab.training import optim
from resnetlab.training.optim import build_optimizer, build_schedule, param_groups, set_lr


def test_cosine_with_warmup():
    schedule = build_schedule(TrainConfig(epochs=10, schedule="cosine", warmup_epochs=1), steps_per_epoch=10)
    assert schedule(0) == pytest.approx(0.1) and schedule(9) == pytest.approx(1.0)  # linear warm-up over 10 steps
    assert schedule(10) == pytest.approx(1.0)
    assert schedule(55) == pytest.approx(0.5)  # halfway through the 90 cosine steps
    assert schedule(99) == pytest.approx(0.5 * (1 + math.cos(math.pi * 89 / 90)))


def test_onecycle_rises_then_falls_linearly():
    schedule = build_schedule(TrainConfig(epochs=4, schedule="onecycle"), steps_per_epoch=25)  # 25 warm-up steps
    assert schedule(0) == pytest.approx(1 / 25 + (1 - 1 / 25) / 25)
    assert schedule(24) == pytest.approx(1.0)
    assert schedule(62) == pytest.approx(0.5, abs=0.01)  # halfway down
    assert schedule(99) == pytest.approx(0.0, abs=0.02)


def test_restarts_run_the_schedule_again_in_each_cycle_with_the_same_share_of_warm_up():
    cfg = TrainConfig(epochs=40, schedule="onecycle", warmup_epochs=10, start_lr_factor=0.2, end_lr_factor=0.0,
                      restart_epochs=[8])
    schedule = build_schedule(cfg, steps_per_epoch=10)  # cycles of 80 and 320 steps, warm-ups of 20 and 80
    first = build_schedule(TrainConfig(epochs=1, schedule="onecycle", warmup_epochs=0.25, start_lr_factor=0.2), 80)
    second = build_schedule(TrainConfig(epochs=1, schedule="onecycle", warmup_epochs=0.25, start_lr_factor=0.2), 320)
    assert [schedule(s) for s in (0, 19, 79)] == pytest.approx([first(0), 1.0, first(79)])
    assert first(79) < 0.02 and schedule(80) == pytest.approx(0.2 + 0.8 / 80)  # back to the start of a triangle
    assert [schedule(80 + s) for s in (79, 200, 319)] == pytest.approx([1.0, second(200), second(319)])
    assert optim.cycles(cfg, 10, 400) == [(0, 80), (80, 400)]
    assert optim.cycles(cfg, 10, 50) == [(0, 50)]  # max_steps before the restart: one cycle, cut
    assert optim.cycles(TrainConfig(epochs=3), 10, 30) == [(0, 30)]


@pytest.mark.parametrize(("overrides", "match"), [
    ({"restart_epochs": [5, 3]}, "restart_epochs must rise strictly"),
    ({"restart_epochs": [10]}, "before epochs=10"),
    ({"restart_epochs": [4], "schedule": "multistep"}, "not schedule=multistep"),
])
def test_bad_restarts_are_refused(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(overrides={"epochs": 10, **overrides})


def test_multistep_in_iterations_as_he_et_al():
    schedule = build_schedule(TrainConfig(schedule="multistep", milestone_steps=[32000, 48000]), 352, 64000)
    assert [schedule(s) for s in (0, 31999, 32000, 47999, 48000, 63999)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01])


def test_step_and_multistep():
    step = build_schedule(TrainConfig(epochs=9, schedule="step", step_size=3, gamma=0.1), steps_per_epoch=4)
    assert [step(i * 4) for i in range(9)] == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01])
    multi = build_schedule(TrainConfig(epochs=8, schedule="multistep", milestones=[2, 5]), steps_per_epoch=2)
    assert [multi(i * 2) for i in range(8)] == pytest.approx([1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01])
    default = build_schedule(TrainConfig(epochs=8, schedule="multistep"), steps_per_epoch=1)  # 50% and 75%
    assert [default(i) for i in range(8)] == pytest.approx([1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01])
    assert build_schedule(TrainConfig(schedule="constant"), 5)(123) == 1.0


def test_no_weight_decay_on_norms_and_biases_and_backbone_lr_scale():
    model = resnetlab.create_model("resnet20")
    groups = param_groups(model, 5e-4, decay_norm_and_bias=False, backbone_lr_scale=0.1)
    for group in groups:
        if group["weight_decay"]:
            assert all(p.ndim > 1 for p in group["params"]) and group["weight_decay"] == 5e-4
        else:
            assert all(p.ndim == 1 for p in group["params"])
        assert group["lr_scale"] == (1.0 if group["is_head"] else 0.1)
    head = [p for g in groups if g["is_head"] for p in g["params"]]
    assert {id(p) for p in head} == {id(model.fc.weight), id(model.fc.bias)}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert all(g["weight_decay"] for g in param_groups(model, 5e-4, decay_norm_and_bias=True))


def test_optimizers_by_name_and_set_lr():
    model = resnetlab.create_model("resnet20")
    sgd = build_optimizer(model, TrainConfig(optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True))
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] is True
    assert isinstance(build_optimizer(model, TrainConfig(optimizer="adamw")), torch.optim.AdamW)
    assert set_lr(sgd, 0.5) == pytest.approx(0.05)
    assert set_lr(sgd, 1.0) == pytest.approx(0.1)  # always relative to the initial lr
    scaled = build_optimizer(model, TrainConfig(lr=0.1, backbone_lr_scale=0.1))
    set_lr(scaled, 1.0)
    assert sorted({round(g["lr"], 6) for g in scaled.param_groups}) == [0.01, 0.1]
    assert set_lr(scaled, 1.0, absolute=0.01) == pytest.approx(0.01)  # He et al.'s warm-up lr
    with pytest.raises(ConfigError, match="did you mean 'adam'"):
        build_optimizer(model, TrainConfig(optimizer="adamm"))


@pytest.mark.parametrize(("name", "kind"), [("rmsprop", torch.optim.RMSprop), ("nadam", torch.optim.NAdam),
                                            ("adagrad", torch.optim.Adagrad)])
def test_keras_optimizers_by_name_train_and_resume_exactly(name, kind, tmp_path):
    """Their state (square averages, accumulators, NAdam's momentum product) survives a checkpoint bit for bit."""
    from resnetlab.checkpoint import load_checkpoint, save_checkpoint
    from resnetlab.info import ModelInfo

    torch.manual_seed(0)
    model = resnetlab.create_model("tutorial_cnn", num_classes=2, in_chans=1, img_size=8)
    optimizer = build_optimizer(model, TrainConfig(optimizer=name, lr=1e-3, momentum=0.5))
    assert isinstance(optimizer, kind)
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(4, 1, 8, 8)).square().mean().backward()
        optimizer.step()
    info = ModelInfo(arch=model.arch, class_names=["a", "b"], input_size=(1, 8, 8), mean=(0.5,), std=(0.5,))
    save_checkpoint(tmp_path / "c.safetensors", model, info, optimizer, {})
    fresh = resnetlab.create_model("tutorial_cnn", num_classes=2, in_chans=1, img_size=8)
    restored = build_optimizer(fresh, TrainConfig(optimizer=name, lr=1e-3, momentum=0.5))
    load_checkpoint(tmp_path / "c.safetensors", fresh, restored)
    for before, after in zip(optimizer.state.values(), restored.state.values()):
        assert before.keys() == after.keys()
        for key in before:
            assert torch.equal(torch.as_tensor(before[key]), torch.as_tensor(after[key])), (name, key)
