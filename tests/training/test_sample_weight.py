"""Sample weights (Keras' sample_weight): the step is that of sum(w x loss) / batch size, the epoch's loss the
weighted mean, validation weighted too, and a stopped and resumed run ends bit-exact."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch.nn import functional as F

import resnetlab
from quadrants import quadrant_images as _toy
from resnetlab.config import TrainConfig
from resnetlab.data import BatchLoader, ImageSet
from resnetlab.data.loader import Normalize
from resnetlab.errors import DataError
from resnetlab.info import ModelInfo
from resnetlab.training import LambdaHooks
from resnetlab.training.loop import Trainer
from resnetlab.training.state import restore_training, save_training


def test_train_on_batch_steps_on_keras_weighted_loss():
    x, y = _toy(16, 0)
    weights = np.linspace(0.0, 2.0, 16)
    clf = resnetlab.Classifier("resnet20", num_classes=3, input_shape=(28, 28, 3), device="cpu")
    clf.compile(optimizer="sgd", learning_rate=0.1, precision="fp32")
    clf.fit(x, y, epochs=1, batch_size=16, verbose=0)  # sets the normalization; then a copy to step by hand
    reference = copy.deepcopy(clf.model).train()
    pixels = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
    inputs = Normalize(clf.info.mean, clf.info.std, 1.0, torch.device("cpu"))(pixels)
    losses = F.cross_entropy(reference(inputs), torch.from_numpy(y), reduction="none")
    expected_loss = (torch.from_numpy(weights).float() * losses).sum() / 16  # Keras: sum over batch size
    expected_loss.backward()
    with torch.no_grad():
        for p in reference.parameters():
            if p.grad is not None:
                p -= 0.1 * p.grad
    loss = clf.train_on_batch(x, y, sample_weight=weights)
    assert loss[0] == pytest.approx(expected_loss.item(), rel=1e-4)
    for mine, theirs in zip(clf.model.parameters(), reference.parameters()):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)


def test_validation_weights_and_bad_weights():
    x, y = _toy(48, 0)
    x_val, y_val = _toy(24, 1)
    w_val = np.random.default_rng(0).uniform(0, 2, 24)
    clf = resnetlab.Classifier("tutorial_cnn", num_classes=3, input_shape=(28, 28, 3), device="cpu")
    clf.compile(optimizer="adam", precision="fp32")
    history = clf.fit(x, y, epochs=1, batch_size=16, validation_data=(x_val, y_val, w_val), verbose=0,
                      sample_weight=np.ones(48))
    weighted = clf.evaluate(x_val, y_val, sample_weight=w_val, return_dict=True, verbose=0)["loss"]
    assert history.history["val_loss"][-1] == pytest.approx(weighted, rel=1e-4)
    clf.fit(x, y, epochs=1, batch_size=16, validation_data=[x_val, y_val, w_val], verbose=0)  # a list, as before
    assert clf.history.history["val_loss"][-1] == pytest.approx(
        clf.evaluate(x_val, y_val, sample_weight=w_val, return_dict=True, verbose=0)["loss"], rel=1e-4)
    with pytest.raises(ValueError, match="sample_weight has 3 values for 48 images"):
        clf.fit(x, y, sample_weight=[1, 2, 3], verbose=0)
    with pytest.raises(ValueError, match="validation_data\\[2\\] must be finite and >= 0"):
        clf.fit(x, y, validation_data=(x_val, y_val, -w_val), verbose=0)
    with pytest.raises(DataError, match="sample weights of shape"):
        ImageSet(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long), torch.ones(3))


def _weighted_trainer(callbacks=(), class_counts=True):
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (64,), generator=generator)
    images = torch.randint(0, 60, (64, 1, 8, 8), generator=generator, dtype=torch.uint8)
    images[labels == 1, :, 2:6, 2:6] = 250
    weights = torch.rand(64, generator=generator) * 2
    model = resnetlab.create_model("resnet20", num_classes=2, in_chans=1)
    info = ModelInfo(arch=model.arch, class_names=["a", "b"], input_size=(1, 8, 8), mean=(0.3,), std=(0.4,))
    loader = BatchLoader(ImageSet(images, labels, weights), 16, mean=info.mean, std=info.std, shuffle=True,
                         seed=3)
    cfg = TrainConfig(epochs=2, lr=0.05, batch_size=16, precision="fp32", lookahead_steps=2)
    return Trainer(model, info, loader, cfg, callbacks=callbacks, class_counts=class_counts), weights


def test_a_weighted_run_stopped_and_resumed_ends_bit_exact(tmp_path):
    whole, _ = _weighted_trainer()
    whole.run()

    def stop(trainer):
        if trainer.state.step == 6:  # mid-epoch 2
            trainer.stop.request("test")

    stopped, _ = _weighted_trainer([LambdaHooks(on_batch_end=stop)])
    stopped.run()
    assert stopped.state.step == 6 and stopped.state.sums[0] > 0
    save_training(tmp_path / "last.safetensors", stopped)
    resumed, _ = _weighted_trainer()
    restore_training(tmp_path / "last.safetensors", resumed)
    resumed.run()
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert [r.train_loss for r in resumed.history.rows] == [r.train_loss for r in whole.history.rows]
    # the counts behind weighted_metrics too: the stopped epoch's first half came back from the checkpoint
    for name in ("confusion", "weighted_confusion"):
        np.testing.assert_array_equal(getattr(resumed.epoch_counts, name), getattr(whole.epoch_counts, name))
    assert resumed.epoch_counts.weight_total == whole.epoch_counts.weight_total


def test_the_epoch_counts_are_scikit_learns_weighted_confusion_matrix():
    from sklearn.metrics import confusion_matrix

    batches = []

    def record(trainer):
        if trainer.state.epoch == 2:
            logits, labels, weights = trainer.last_output
            batches.append((logits.argmax(1), labels, weights))

    trainer, weights = _weighted_trainer([LambdaHooks(on_batch_end=record)])
    trainer.run()
    predicted, labels, w = (torch.cat(parts).numpy() for parts in zip(*batches))
    counts = trainer.epoch_counts
    np.testing.assert_allclose(counts.weighted_confusion, confusion_matrix(labels, predicted, sample_weight=w))
    np.testing.assert_array_equal(counts.confusion, confusion_matrix(labels, predicted))
    assert counts.weight_total == pytest.approx(float(weights.double().sum()), rel=1e-12)
    assert _weighted_trainer(class_counts=False)[0].state.sums == [0.0] * 3  # only what is asked for is summed


def test_each_process_takes_the_weights_of_its_own_images():
    images = torch.arange(8, dtype=torch.uint8).view(8, 1, 1, 1).expand(8, 1, 2, 2).contiguous()
    data = ImageSet(images, torch.zeros(8, dtype=torch.long), torch.arange(8, dtype=torch.float32) / 10)
    seen = []
    for rank in (0, 1):  # two processes of a DDP run: each its half of every global batch of 4
        loader = BatchLoader(data, 4, mean=(0.0,), std=(1.0 / 255,), shuffle=True, seed=5, shard=(rank, 2))
        for x, _, w in loader:
            assert torch.equal(w, x[:, 0, 0, 0] / 10)  # the weight of image k is k / 10
            seen += w.tolist()
    assert sorted(seen) == pytest.approx([k / 10 for k in range(8)])  # together: every image once


def test_resuming_with_counts_from_a_checkpoint_without_them_keeps_the_epochs_loss(tmp_path):
    def stop(trainer):
        if trainer.state.step == 6:  # mid-epoch 2
            trainer.stop.request("test")

    whole, _ = _weighted_trainer(class_counts=False)
    whole.run()
    stopped, _ = _weighted_trainer([LambdaHooks(on_batch_end=stop)], class_counts=False)
    stopped.run()
    save_training(tmp_path / "last.safetensors", stopped)
    resumed, _ = _weighted_trainer(class_counts=True)  # the settings changed: counts asked for from now on
    restore_training(tmp_path / "last.safetensors", resumed)
    resumed.run()
    assert [r.train_loss for r in resumed.history.rows] == [r.train_loss for r in whole.history.rows]
    assert resumed.epoch_counts.confusion.sum() == 32  # counted from the resume on: 2 of the epoch's 4 batches
