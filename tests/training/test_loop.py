from __future__ import annotations

import pytest
import torch

import resnetlab
from resnetlab.config import TrainConfig
from resnetlab.data import BatchLoader, ImageSet
from resnetlab.info import ModelInfo
from resnetlab.training import LambdaHooks, TrainingError, fit


def _toy(n=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=generator)
    images = torch.randint(0, 60, (n, 1, 8, 8), generator=generator, dtype=torch.uint8)
    images[labels == 1, :, 2:6, 2:6] = 250  # class 1 has a bright square
    return ImageSet(images, labels)


def _setup(lr=0.05):
    torch.manual_seed(0)
    model = resnetlab.create_model("resnet20", num_classes=2, in_chans=1)
    info = ModelInfo(arch=model.arch, class_names=["a", "b"], input_size=(1, 8, 8), mean=(0.3,), std=(0.4,))
    loader = BatchLoader(_toy(), 16, mean=info.mean, std=info.std, shuffle=True)
    return model, info, loader, TrainConfig(epochs=3, lr=lr, batch_size=16)


def test_fit_learns_validates_and_calls_back():
    model, info, loader, cfg = _setup()
    seen = []
    record = LambdaHooks(on_epoch_end=lambda trainer, metrics: seen.append(metrics.epoch))
    history = fit(model, info, loader, cfg, val_data=_toy(32, 1), callbacks=[record])
    assert seen == [1, 2, 3]
    assert history.rows[-1].val_accuracy >= 0.9
    assert history.rows[-1].lr < cfg.lr  # cosine decayed
    assert history.rows[0].images_per_second > 0 and history.rows[0].seconds > 0


def test_same_seed_same_weights():
    def run():
        model, info, loader, cfg = _setup()
        fit(model, info, loader, cfg)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(run(), run())


def test_divergence_stops_with_an_actionable_error():
    model, info, loader, cfg = _setup(lr=1e12)
    with pytest.raises(TrainingError, match="lower lr"):
        fit(model, info, loader, cfg)
