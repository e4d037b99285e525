"""Training features: EMA, accumulation, class weights, early stopping, warm-up, fine-tuning, precision."""

from __future__ import annotations

import json
import math

import pytest
import torch

import resnetlab
from resnetlab.analysis.evaluation import EvalResult
from resnetlab.config import TrainConfig, load_config
from resnetlab.data import BatchLoader, ImageSet
from resnetlab.errors import ConfigError, ModelFileError
from resnetlab.info import ModelInfo
from resnetlab.training import precision as precision_module
from resnetlab.training.callbacks import LambdaHooks
from resnetlab.training.divergence import TrainingError
from resnetlab.training.ema import Lookahead, ModelEma
from resnetlab.training.loop import Trainer
from resnetlab.training.optim import class_weights
from resnetlab.training.precision import resolve_precision

QUIET = dict(display="none", plots=False, tensorboard=False, checkpoint_minutes=0)


def _toy(n=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=generator)
    images = torch.randint(0, 60, (n, 1, 8, 8), generator=generator, dtype=torch.uint8)
    images[labels == 1, :, 2:6, 2:6] = 250
    return ImageSet(images, labels)


def _trainer(cfg: TrainConfig, model_name="tutorial_cnn", batch=16, data=None):
    torch.manual_seed(0)
    model = resnetlab.create_model(model_name, num_classes=2, in_chans=1, img_size=8)
    info = ModelInfo(arch=model.arch, class_names=["a", "b"], input_size=(1, 8, 8), mean=(0.3,), std=(0.4,))
    loader = BatchLoader(data or _toy(), batch, mean=info.mean, std=info.std, shuffle=True)
    return Trainer(model, info, loader, cfg)


def test_ema_follows_the_weights_with_a_warming_decay():
    model = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = ModelEma(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # first update: decay min(0.9, 2/11)
    assert ema.module.weight.flatten().tolist() == pytest.approx([1 - 2 / 11] * 2)
    for _ in range(200):
        ema.update(model)
    assert ema.module.weight.flatten().tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
    assert not any(p.requires_grad for p in ema.module.parameters())


@pytest.mark.parametrize("whole_batch, accumulate", [(32, 4), (24, 3)])  # 24: the epoch's last step has 2 of 3
def test_gradient_accumulation_matches_the_whole_batch(whole_batch, accumulate):
    def weights(accumulate):
        trainer = _trainer(TrainConfig(epochs=2, batch_size=whole_batch, accumulate=accumulate, precision="fp32",
                                       lr=0.05), batch=whole_batch // accumulate)
        trainer.run()
        return torch.cat([p.detach().flatten() for p in trainer.model.parameters()]), trainer.state.step

    whole, steps_whole = weights(1)
    split, steps_split = weights(accumulate)
    assert steps_whole == steps_split == 2 * math.ceil(64 / whole_batch)  # 64 images, 2 epochs
    torch.testing.assert_close(split, whole, rtol=1e-5, atol=1e-6)


def test_lr_find_ends_where_the_loss_blows_up(tmp_path):
    from resnetlab.training.lr_find import lr_find

    # lr x100 per step up to 1e12, and no early stop for a loss 4x the best: it must run into inf/NaN
    config = load_config(overrides={"project": str(tmp_path), "model": "tutorial_cnn", "momentum": 0})
    result = lr_find(config, steps=10, end_lr=1e12, diverge=math.inf, write=False)
    assert 3 <= len(result.lrs) < 10 and result.lrs[0] == pytest.approx(1e-6)
    assert all(math.isfinite(loss) for loss in result.losses)  # the blown-up steps are left out


def test_reported_lr_is_the_full_scale_group():
    trainer = _trainer(TrainConfig(epochs=1, lr=0.1, backbone_lr_scale=0.1, head_epochs=0, precision="fp32"))
    trainer.train_epoch()
    scales = sorted(g.get("lr_scale", 1.0) for g in trainer.optimizer.param_groups)
    assert scales[0] == pytest.approx(0.1) and scales[-1] == 1.0  # a backbone group at a tenth
    assert trainer.lr == max(g["lr"] for g in trainer.optimizer.param_groups)
    assert trainer.finish_epoch().lr == trainer.lr


def test_the_same_seed_trains_the_same_weights_twice_in_one_process(tmp_path, monkeypatch):
    # the first auto-precision run of a process measures bf16 against fp32; that must not draw from the
    # run's random numbers, or the first run's drop-path masks differ from every later run's
    precision_module.cpu_bf16_choice.cache_clear()
    monkeypatch.setattr(precision_module, "_cpu_bf16_flags", lambda: None)  # the measurement path
    settings = dict(model="resnet20", epochs=1, drop_path_rate=0.2, max_steps=3, **QUIET)
    first, second = (resnetlab.train(project=str(tmp_path / name), **settings) for name in ("a", "b"))
    precision_module.cpu_bf16_choice.cache_clear()  # later tests decide by the flags again
    weights = [resnetlab.load_model(result.last_path)[0].state_dict() for result in (first, second)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_non_finite_weights_never_reach_a_checkpoint(tmp_path):
    def poison(trainer):  # the epoch's last step leaves a NaN weight behind a finite loss
        if trainer.state.batch == len(trainer.loader):
            with torch.no_grad():
                next(trainer.model.parameters()).view(-1)[0] = math.nan

    with pytest.raises(TrainingError, match=r"inf or NaN in 1 of the model's tensors \(conv1.weight\) by step"):
        resnetlab.train(model="tutorial_cnn", epochs=2, project=str(tmp_path), name="nan",
                        callbacks=[LambdaHooks(on_batch_end=poison)],
                        **QUIET)
    assert not (tmp_path / "nan" / "last.safetensors").exists()  # epoch 1's end would have saved it


def test_class_weights_balanced_and_explicit():
    labels = torch.tensor([0, 0, 0, 1])
    balanced = class_weights(TrainConfig(class_weight="balanced"), labels, 2)
    assert balanced.tolist() == pytest.approx([4 / (2 * 3), 4 / (2 * 1)])
    assert class_weights(TrainConfig(class_weights=[1.0, 3.0]), labels, 2).tolist() == [1.0, 3.0]
    assert class_weights(TrainConfig(), labels, 2) is None
    with pytest.raises(ConfigError, match="3 values for 2 classes"):
        class_weights(TrainConfig(class_weights=[1, 2, 3]), labels, 2)
    with pytest.raises(ConfigError, match="classes \\[2\\] have no training images"):
        class_weights(TrainConfig(class_weight="balanced"), labels, 3)


def test_early_stopping_after_patience_epochs(monkeypatch):
    trainer = _trainer(TrainConfig(epochs=10, patience=2, precision="fp32"), data=_toy())
    trainer.val_data = _toy(16, 1)
    accuracies = iter([0.5, 0.6, 0.55, 0.6, 0.7])
    monkeypatch.setattr(trainer, "validate", lambda: EvalResult(1.0, next(accuracies), 1.0, {}, None, 16))
    trainer.run()
    assert len(trainer.history.rows) == 4  # best 0.6 at epoch 2; epochs 3 and 4 are no better
    assert trainer.state.stop_reason.startswith("early stopping")


def test_he_warmup_holds_the_low_lr_until_training_accuracy_passes_the_threshold():
    lrs = []
    trainer = _trainer(TrainConfig(epochs=30, lr=0.1, warmup_lr=0.001, warmup_until_accuracy=0.9,
                                   schedule="constant", precision="fp32"), batch=8)
    trainer.callbacks.append(LambdaHooks(
        on_batch_end=lambda t: lrs.append((t.optimizer.param_groups[0]["lr"], t.state.warming))))
    trainer.run()
    warm = [lr for lr, warming in lrs if warming]
    assert warm and set(warm) == {0.001}
    assert lrs[-1] == (0.1, False)  # reached 90% and went back to the schedule


def test_head_first_fine_tuning_freezes_the_backbone_and_its_statistics():
    trainer = _trainer(TrainConfig(epochs=2, head_epochs=1, backbone_lr_scale=0.1, precision="fp32", lr=0.05),
                       model_name="resnet20")
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    states = []
    trainer.callbacks.append(LambdaHooks(on_epoch_end=lambda t, m: states.append(
        {k: v.clone() for k, v in trainer.model.state_dict().items()})))
    trainer.run()
    after_head, after_all = states
    assert torch.equal(after_head["conv1.weight"], before["conv1.weight"])
    assert torch.equal(after_head["bn1.running_mean"], before["bn1.running_mean"])  # BN kept in eval mode
    assert not torch.equal(after_head["fc.weight"], before["fc.weight"])
    assert not torch.equal(after_all["conv1.weight"], before["conv1.weight"])
    scales = {g["lr_scale"] for g in trainer.optimizer.param_groups}
    assert scales == {1.0, 0.1}


def test_precision_choice(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(precision_module, "cpu_bf16_choice", lambda: (True, "flags"))
    assert resolve_precision("auto", None, cpu).name == "bf16" and resolve_precision("auto", None, cpu).channels_last
    monkeypatch.setattr(precision_module, "cpu_bf16_choice", lambda: (False, "flags"))
    assert resolve_precision("auto", False, cpu).name == "fp32"
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16", None, cpu)


def test_bf16_training_runs_in_bf16_and_learns():
    seen = []
    trainer = _trainer(TrainConfig(epochs=3, precision="bf16", lr=0.05), model_name="resnet20")
    trainer.model.fc.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    trainer.run()
    assert seen[0] == torch.bfloat16
    assert trainer.history.rows[-1].train_accuracy > 0.8


def test_max_steps_stops_the_run(tmp_path):
    result = resnetlab.train(max_steps=7, epochs=5, project=str(tmp_path), **QUIET)
    assert json.loads((result.run_dir / "results.json").read_text())["steps"] == 7
    assert len(result.history.rows) == 1


def test_weights_from_a_model_file_and_a_torchvision_state_dict(tmp_path, digits_run):
    from reference_weights import synthetic_state_dict

    result = resnetlab.train(weights=str(digits_run.best_path), epochs=1, lr=0.01, project=str(tmp_path),
                             **QUIET)
    assert result.test.accuracy > 0.8  # starts from a trained digits model
    with torch.device("meta"):
        reference = resnetlab.create_model("resnet18")
    shapes = {k: list(v.shape) for k, v in reference.state_dict().items()}
    state = {f"module.{k}": v for k, v in synthetic_state_dict(shapes).items()}  # as saved from DDP
    torch.save({"state_dict": state}, tmp_path / "resnet18.pth")
    model = resnetlab.create_model("resnet18", num_classes=10, in_chans=1)
    notes = resnetlab.statedict.load_pretrained(model, tmp_path / "resnet18.pth")
    assert "classifier replaced: 1000 -> 10 classes" in notes[0] and "summed over its 3 input channels" in notes[1]
    torch.testing.assert_close(model.conv1.weight.sum(), state["module.conv1.weight"].sum())
    timm_style = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(timm_style, tmp_path / "timm.pth")
    assert resnetlab.statedict.load_pretrained(resnetlab.create_model("resnet18"), tmp_path / "timm.pth") == []
    wrong = resnetlab.create_model("resnet34")
    with pytest.raises(ModelFileError, match="does not match its architecture resnet34.*missing"):
        resnetlab.statedict.load_pretrained(wrong, tmp_path / "resnet18.pth")


def test_recipes_apply_with_per_model_settings_and_overrides():
    he = load_config(overrides={"recipe": "he2015-cifar", "model": "resnet110", "lr": "0.05"})
    assert (he.train.warmup_lr, he.train.max_steps, he.train.lr) == (0.01, 64000, 0.05)
    assert he.data.normalize == "pixel_mean" and he.run.recipe == "he2015-cifar"
    assert load_config(overrides={"recipe": "he2015-cifar"}).train.warmup_lr is None
    fast = load_config(overrides={"recipe": "fast-cifar"})
    assert fast.train.schedule == "onecycle" and fast.run.tta == "flip+shift" and fast.data.val_fraction == 0
    with pytest.raises(ConfigError, match="did you mean 'fast-cifar'"):
        load_config(overrides={"recipe": "fast-cifr"})


def test_pixel_mean_normalization_is_stored_and_used(tmp_path):
    result = resnetlab.train(normalize="pixel_mean", epochs=1, project=str(tmp_path), **QUIET)
    mean = result.info.mean
    assert len(mean) == 1 and len(mean[0]) == 8 and len(mean[0][0]) == 8  # [C][H][W]
    assert result.info.std == (1.0,)
    data = resnetlab.load_dataset("digits")
    predictions = resnetlab.Predictor.from_file(result.best_path).predict_proba(data.test.images)
    assert (predictions.argmax(1) == data.test.labels.numpy()).mean() == pytest.approx(result.test.accuracy)


def test_suggested_lr_is_where_the_loss_falls_fastest():
    from resnetlab.training.lr_find import suggest_lr

    lrs = [10 ** (-6 + i / 10) for i in range(61)]
    losses = [2 - math.tanh(2 * (math.log10(lr) + 3)) for lr in lrs]  # steepest at 1e-3
    assert suggest_lr(lrs, losses) == pytest.approx(1e-3, rel=0.01)
    assert suggest_lr(lrs, [1.0 + 0.01 * i for i in range(61)]) is None  # a rising loss: no suggestion
    assert suggest_lr(lrs[:5], losses[:5]) is None


def test_lr_find_writes_a_plot_and_suggests_an_lr(tmp_path):
    from resnetlab.training.lr_find import lr_find

    result = lr_find(load_config(overrides={"project": str(tmp_path)}), steps=40, end_lr=1.0)
    assert len(result.lrs) >= 20 and all(a < b for a, b in zip(result.lrs, result.lrs[1:]))
    assert result.lrs[0] == pytest.approx(1e-6)
    # the loss falls on digits in this range: the steepest fall comes before the lowest loss
    assert result.suggestion is not None and result.min_loss_lr is not None
    assert result.suggestion <= result.min_loss_lr
    assert (result.out_dir / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((result.out_dir / "lr_find.json").read_text())["lrs"][0] == pytest.approx(1e-6)


def test_tensorboard_events_and_curves(tmp_path, monkeypatch):
    import resnetlab.training.writer as writer

    calls = []

    class FakeSummaryWriter:
        def add_scalar(self, tag, value, step):
            calls.append((tag, step))

        def flush(self):
            pass

        def close(self):
            calls.append(("closed", 0))

    monkeypatch.setattr(writer, "_tensorboard", lambda run_dir: FakeSummaryWriter())
    result = resnetlab.train(epochs=2, project=str(tmp_path), display="none", checkpoint_minutes=0, tensorboard=True)
    assert ("train/loss", 1) in calls and ("val/accuracy", 2) in calls and calls[-1] == ("closed", 0)
    assert (result.run_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_deterministic_mode_holds_during_the_run_and_is_put_back(tmp_path):
    seen = []
    deterministic = torch.are_deterministic_algorithms_enabled
    result = resnetlab.train(deterministic=True, epochs=1, project=str(tmp_path), **QUIET,
                             callbacks=[LambdaHooks(on_batch_end=lambda _: seen.append(deterministic()))])
    assert seen and all(seen) and result.test is not None
    assert not torch.are_deterministic_algorithms_enabled()  # later code in the process is not affected


def test_lookahead_pulls_toward_slow_weights_on_airbench_schedule():
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    lookahead = Lookahead(model, every=2, cycles=[(0, 4)])
    with torch.no_grad():
        model.weight.fill_(1.0)
    lookahead.step(1)  # not a lookahead step: nothing moves
    assert model.weight.item() == 1.0 and lookahead.slow[0].item() == 0.0
    lookahead.step(2)  # decay 0.95**2 * (2/4)**3
    decay = 0.95 ** 2 * 0.125
    assert lookahead.slow[0].item() == pytest.approx(1 - decay) and model.weight.item() == pytest.approx(1 - decay)
    with torch.no_grad():
        model.weight.fill_(3.0)
    lookahead.finish()  # the model ends at the slow weights
    assert model.weight.item() == pytest.approx(1 - decay)
    with pytest.raises(ValueError, match="lookahead_steps"):
        Lookahead(model, every=0, cycles=[(0, 4)])


def test_lookahead_ramps_again_in_each_lr_cycle_and_ends_each_on_the_slow_weights():
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    lookahead = Lookahead(model, every=2, cycles=[(0, 4), (4, 12)])
    with torch.no_grad():
        model.weight.fill_(1.0)
    lookahead.step(2)
    lookahead.step(3)
    with torch.no_grad():
        model.weight.fill_(5.0)  # the fast weights wander off ...
    lookahead.step(4)  # ... the first cycle's last step: decay 0.95**2 * (4/4)**3, then the model takes the slow
    slow = (1 - 0.95 ** 2 * 0.125) * (0.95 ** 2) + 5.0 * (1 - 0.95 ** 2)
    assert model.weight.item() == pytest.approx(slow)
    with torch.no_grad():
        model.weight.fill_(9.0)
    lookahead.step(6)  # second cycle, 2 of its 8 steps: decay 0.95**2 * (2/8)**3
    decay = 0.95 ** 2 / 64
    assert model.weight.item() == pytest.approx(decay * slow + (1 - decay) * 9.0)


def test_training_with_lookahead_ends_on_the_slow_weights():
    trainer = _trainer(TrainConfig(epochs=2, lr=0.1, lookahead_steps=3, precision="fp32"))
    initial = [s.clone() for s in trainer.lookahead.slow]
    seen = []
    trainer.callbacks.append(LambdaHooks(on_batch_end=lambda t: seen.append(
        (t.state.step, [s.clone() for s in t.lookahead.slow], [w.detach().clone() for w in t.lookahead._fast]))))
    trainer.run()  # 4 batches per epoch: 8 steps, lookahead at 3 and 6, the slow weights taken at 8
    by_step = {step: (slow, fast) for step, slow, fast in seen}
    assert all(torch.equal(a, b) for a, b in zip(by_step[2][0], initial))  # untouched before step 3
    slow3, fast3 = by_step[3]
    assert any(not torch.equal(a, b) for a, b in zip(slow3, initial))  # step 3 pulled the slow weights ...
    assert all(torch.equal(a, b) for a, b in zip(slow3, fast3))  # ... and reset the model to them
    assert any(not torch.equal(a, b) for a, b in zip(by_step[7][1], by_step[7][0]))  # fast weights drift between
    weights = [v for v in trainer.model.state_dict().values() if v.is_floating_point()]
    assert all(torch.equal(w, s) for w, s in zip(weights, trainer.lookahead.slow))  # ... and end on the slow ones


def test_ctrl_c_after_a_stop_asked_by_code_is_a_first_ctrl_c():
    import os
    import signal

    from resnetlab.training.signals import StopRequest

    stop = StopRequest()
    with stop.installed():
        stop.request("stopped by a callback")
        os.kill(os.getpid(), signal.SIGINT)  # the user's first Ctrl-C: still a clean stop
        assert stop.signalled and stop.reason == "stopped by a callback"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # the second stops at once
