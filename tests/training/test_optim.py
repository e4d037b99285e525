from __future__ import annotations

import math

import pytest
import torch

import resnetlab
from resnetlab.config import TrainConfig
from resnetlab.errors import ConfigError
from resnetlab.training.optim import build_optimizer, build_schedule, param_groups, set_lr


def test_cosine_with_warmup():
    schedule = build_schedule(TrainConfig(epochs=10, schedule="cosine", warmup_epochs=1), steps_per_epoch=10)
    assert schedule(0) == pytest.approx(0.1) and schedule(9) == pytest.approx(1.0)  # linear warm-up over 10 steps
    assert schedule(10) == pytest.approx(1.0)
    assert schedule(55) == pytest.approx(0.5)  # halfway through the 90 cosine steps
    assert schedule(99) == pytest.approx(0.5 * (1 + math.cos(math.pi * 89 / 90)))


def test_step_and_multistep():
    step = build_schedule(TrainConfig(epochs=9, schedule="step", step_size=3, gamma=0.1), steps_per_epoch=4)
    assert [step(i * 4) for i in range(9)] == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01])
    multi = build_schedule(TrainConfig(epochs=8, schedule="multistep", milestones=[2, 5]), steps_per_epoch=2)
    assert [multi(i * 2) for i in range(8)] == pytest.approx([1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01])
    default = build_schedule(TrainConfig(epochs=8, schedule="multistep"), steps_per_epoch=1)  # 50% and 75%
    assert [default(i) for i in range(8)] == pytest.approx([1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01])
    assert build_schedule(TrainConfig(schedule="constant"), 5)(123) == 1.0


def test_no_weight_decay_on_norms_and_biases():
    model = resnetlab.create_model("resnet20")
    decay, no_decay = param_groups(model, 5e-4, decay_norm_and_bias=False)
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 5e-4
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert len(param_groups(model, 5e-4, decay_norm_and_bias=True)) == 1


def test_optimizers_by_name_and_set_lr():
    model = resnetlab.create_model("resnet20")
    sgd = build_optimizer(model, TrainConfig(optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True))
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] is True
    assert isinstance(build_optimizer(model, TrainConfig(optimizer="adamw")), torch.optim.AdamW)
    assert set_lr(sgd, 0.5) == pytest.approx(0.05)
    assert set_lr(sgd, 1.0) == pytest.approx(0.1)  # always relative to the initial lr
    with pytest.raises(ConfigError, match="did you mean 'adam'"):
        build_optimizer(model, TrainConfig(optimizer="adamm"))
