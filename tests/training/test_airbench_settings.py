"""airbench94's training pieces as general settings (decoupled units, the norm-bias lr multiplier, the
triangle schedule, the whitening-bias epochs), resumable bit-exact; and the two fast-cifar recipes."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import resnetlab
from resnetlab.config import TrainConfig, load_config
from resnetlab.data import BatchLoader, ImageSet
from resnetlab.errors import ConfigError, UserError
from resnetlab.info import ModelInfo
from resnetlab.training import LambdaHooks
from resnetlab.training.loop import Trainer
from resnetlab.training.optim import build_optimizer, build_schedule, norm_biases, set_lr, torch_sgd_hyperparameters

AIRBENCH = dict(lr=11.5, momentum=0.85, weight_decay=0.0153)  # airbench94's hyp, per 1024 images


def test_decoupled_sgd_steps_exactly_as_airbench_on_its_summed_loss():
    torch.manual_seed(0)
    ours = nn.Linear(6, 4)
    theirs = copy.deepcopy(ours)
    x, y = torch.randn(32, 6), torch.randint(0, 4, (32,))
    cfg = TrainConfig(batch_size=32, decoupled=True, decay_norm_and_bias=True, **AIRBENCH)
    optimizer = build_optimizer(ours, cfg)
    kilostep = 1024 * (1 + 1 / (1 - 0.85))  # airbench94's train(): lr and wd for the summed loss
    lr, wd = 11.5 / kilostep, 0.0153 * 32 / kilostep
    reference = torch.optim.SGD(theirs.parameters(), lr=lr, weight_decay=wd / lr, momentum=0.85, nesterov=True)
    for _ in range(3):
        for model, opt, reduction in ((ours, optimizer, "mean"), (theirs, reference, "sum")):
            opt.zero_grad()
            F.cross_entropy(model(x), y, reduction=reduction).backward()
            opt.step()
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # the units are per 1024 images: twice the batch steps twice as far on the mean loss, decays as much per image
    lr_1024, wd_1024 = torch_sgd_hyperparameters(TrainConfig(batch_size=1024, decoupled=True, **AIRBENCH))
    lr_2048, wd_2048 = torch_sgd_hyperparameters(TrainConfig(batch_size=2048, decoupled=True, **AIRBENCH))
    assert lr_1024 == pytest.approx(1.5) and lr_2048 == pytest.approx(2 * lr_1024)
    assert lr_2048 * wd_2048 == pytest.approx(2 * lr_1024 * wd_1024)
    assert torch_sgd_hyperparameters(TrainConfig(lr=0.1, weight_decay=5e-4)) == (0.1, 5e-4)  # off: as given


def test_decoupled_is_refused_for_other_optimizers():
    with pytest.raises(ConfigError, match="decoupled=true is SGD's airbench units; optimizer=adamw"):
        load_config(overrides={"decoupled": "true", "optimizer": "adamw"})


def test_norm_biases_step_64x_further_but_decay_no_faster():
    model = resnetlab.create_model("resnet8_airbench")
    cfg = TrainConfig(norm_bias_lr_scale=64, decay_norm_and_bias=True, lr=0.5, weight_decay=0.01)
    optimizer = build_optimizer(model, cfg)
    set_lr(optimizer, 0.5)
    shifts = norm_biases(model)
    bn_biases = {id(m.bias) for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    assert shifts == bn_biases and len(shifts) == 6
    for group in optimizer.param_groups:
        is_shift = all(id(p) in shifts for p in group["params"])
        assert is_shift or not any(id(p) in shifts for p in group["params"])
        assert group["lr"] == pytest.approx(0.25 * (64 if is_shift else 1))
        assert group["lr"] * group["weight_decay"] == pytest.approx(0.25 * 0.01)  # the same decay per step
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


def test_onecycle_with_airbench_ends_is_its_triangle():
    cfg = TrainConfig(epochs=10, schedule="onecycle", warmup_epochs=2.3, start_lr_factor=0.2, end_lr_factor=0.07)
    schedule = build_schedule(cfg, steps_per_epoch=100)
    total, warmup = 1000, int(1000 * 0.23)

    def airbench(step):  # airbench94's get_lr
        if step < warmup:
            frac = step / warmup
            return 0.2 * (1 - frac) + frac
        frac = (step - warmup) / (total - warmup)
        return (1 - frac) + 0.07 * frac

    for step in range(total):
        assert schedule(step) == pytest.approx(airbench(step), abs=0.8 / warmup + 1e-9), step
    assert schedule(total - 1) == pytest.approx(0.07, abs=2e-3) and schedule(warmup - 1) == pytest.approx(1.0)


def _toy(n=48, size=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=generator)
    images = torch.randint(0, 60, (n, 3, size, size), generator=generator, dtype=torch.uint8)
    images[labels == 1, :, 4:12, 4:12] = 250
    return ImageSet(images, labels)


def _trainer(cfg, model_name="resnet8_airbench", callbacks=()):
    torch.manual_seed(0)
    model = resnetlab.create_model(model_name, num_classes=2)
    info = ModelInfo(arch=model.arch, class_names=["a", "b"], input_size=(3, 16, 16), mean=(0.2,) * 3,
                     std=(0.3,) * 3)
    loader = BatchLoader(_toy(), 16, mean=info.mean, std=info.std, shuffle=True)
    return Trainer(model, info, loader, cfg, callbacks=callbacks)


def test_the_whitening_bias_trains_in_its_epochs_then_freezes_and_the_weights_never_train():
    snapshots = []
    record = LambdaHooks(on_epoch_end=lambda trainer, metrics: snapshots.append(
        {k: v.clone() for k, v in trainer.model.state_dict().items()}))
    trainer = _trainer(TrainConfig(epochs=3, batch_size=16, lr=0.05, whiten_bias_epochs=2, precision="fp32"),
                       callbacks=[record])
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.run()
    assert not torch.equal(snapshots[0]["conv1.bias"], start["conv1.bias"])  # epoch 1 trains it ...
    assert not torch.equal(snapshots[1]["conv1.bias"], snapshots[0]["conv1.bias"])  # ... and epoch 2
    assert torch.equal(snapshots[2]["conv1.bias"], snapshots[1]["conv1.bias"])  # epoch 3 leaves it
    assert not torch.equal(snapshots[2]["layer1.0.conv.weight"], snapshots[1]["layer1.0.conv.weight"])
    assert all(torch.equal(s["conv1.weight"], start["conv1.weight"]) for s in snapshots)  # frozen throughout


def test_whiten_bias_epochs_on_a_model_without_a_whitening_stem_says_what_to_do():
    with pytest.raises(UserError, match=r"whiten_bias_epochs trains the bias of a whitening stem.*stem=whiten"):
        _trainer(TrainConfig(whiten_bias_epochs=3), model_name="resnet20")


def test_fine_tuning_phases_leave_the_models_own_frozen_weights_frozen():
    trainer = _trainer(TrainConfig(epochs=1, batch_size=16))
    trainer.set_head_only(True)
    trainer.set_head_only(False)
    frozen = sorted(name for name, p in trainer.model.named_parameters() if not p.requires_grad)
    assert frozen[0] == "conv1.weight" and all(n == "conv1.weight" or n.endswith("bn.weight") for n in frozen)


@pytest.mark.slow
def test_a_run_with_every_airbench_piece_resumes_bit_exact_across_the_bias_freeze(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.integers(0, 255, (96, 16, 16, 3), dtype=np.uint8),
             y_train=rng.integers(0, 3, 96), x_test=rng.integers(0, 255, (24, 16, 16, 3), dtype=np.uint8),
             y_test=rng.integers(0, 3, 24))
    settings = dict(model="resnet8_airbench", data=str(tmp_path / "d.npz"), val_fraction=0, epochs=3,
                    batch_size=32, decoupled=True, decay_norm_and_bias=True, norm_bias_lr_scale=64,
                    schedule="onecycle", warmup_epochs=0.7, start_lr_factor=0.2, end_lr_factor=0.07,
                    label_smoothing=0.2, lookahead_steps=2, whiten_bias_epochs=1, crop_padding=2,
                    pad_mode="reflect", flip=True, alternate_flip=True, display="none", plots=False,
                    checkpoint_minutes=0, restart_epochs=[2], **AIRBENCH)  # the resumed part restarts the lr
    whole = resnetlab.train(project=str(tmp_path / "whole"), **settings)

    def stop(trainer):
        if trainer.state.step == 4:  # mid-epoch 2: the bias froze at the epoch boundary before
            trainer.stop.request("test")

    stopped = resnetlab.train(project=str(tmp_path / "parts"), callbacks=[LambdaHooks(on_batch_end=stop)],
                              **settings)
    assert stopped.stopped == "test"
    resumed = resnetlab.train(resume=str(stopped.run_dir), display="none")
    from safetensors.torch import load_file

    expected, actual = load_file(whole.last_path), load_file(resumed.last_path)
    assert expected.keys() == actual.keys()
    for key in expected:
        if not key.startswith("_train.rng"):
            assert torch.equal(expected[key], actual[key]), key
    assert resumed.test.accuracy == whole.test.accuracy


def test_fast_cifar_is_the_residual_airbench_recipe_and_resnet20s_keeps_its_name():
    fast = load_config(overrides={"recipe": "fast-cifar"})
    assert fast.model.name == "resnet8_airbench"
    assert fast.model.options() == {"activation": "gelu"}  # airbench94's GELU, set for this model only
    assert load_config(overrides={"recipe": "fast-cifar", "model": "resnet20"}).model.options() == {}
    assert fast.train.restart_epochs == [11]  # a first short cycle of 11 epochs, then 25 more
    t = fast.train
    assert (t.batch_size, t.decoupled, t.lr, t.momentum, t.weight_decay) == (1024, True, 11.5, 0.85, 0.0153)
    assert (t.norm_bias_lr_scale, t.start_lr_factor, t.end_lr_factor, t.label_smoothing) == (64, 0.2, 0.07, 0.2)
    assert (t.lookahead_steps, t.whiten_bias_epochs) == (5, 3)
    assert t.warmup_epochs == pytest.approx(0.23 * t.epochs, abs=0.01)  # the triangle's peak at 23%
    assert fast.data.pad_mode == "reflect" and fast.data.crop_padding == 2 and fast.data.alternate_flip
    old = load_config(overrides={"recipe": "fast-cifar-resnet20"})
    assert old.model.name == "resnet20" and old.train.batch_size == 128


def test_resnet8_airbench_has_airbench94s_size_with_a_shortcut_around_each_second_conv():
    from resnetlab.models.resnet9 import Residual

    model = resnetlab.create_model("resnet8_airbench")
    assert sum(p.numel() for p in model.parameters()) == 1_972_792  # airbench94's net: 1.97M
    assert [m.branch[0].conv.out_channels for m in model.modules() if isinstance(m, Residual)] == [64, 256, 256]
    assert isinstance(model.layer1[0].act, nn.ReLU)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
