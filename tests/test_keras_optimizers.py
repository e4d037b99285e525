"""compile(optimizer=) with resnetlab.optimizers objects (Keras' arguments and defaults) and torch.optim
instances, recorded by their own names; compile(loss=) with loss objects and functions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

import resnetlab
from quadrants import quadrant_images as _toy


def _clf():
    return resnetlab.Classifier("tutorial_cnn", num_classes=3, input_shape=(28, 28, 3), device="cpu")


@pytest.mark.parametrize("spec, torch_class, expected", [
    (resnetlab.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True), torch.optim.SGD,
     {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    (resnetlab.optimizers.Adam(learning_rate=3e-4, beta_2=0.99), torch.optim.Adam,
     {"lr": 3e-4, "betas": (0.9, 0.99), "eps": 1e-7}),
    (resnetlab.optimizers.AdamW(), torch.optim.AdamW, {"lr": 1e-3, "weight_decay": 0.004, "eps": 1e-7}),
    (resnetlab.optimizers.RMSprop(rho=0.8), torch.optim.RMSprop, {"alpha": 0.8, "eps": 1e-7, "momentum": 0.0}),
    (resnetlab.optimizers.Nadam(), torch.optim.NAdam, {"lr": 1e-3, "eps": 1e-7}),
    (resnetlab.optimizers.Adagrad(learning_rate=0.01), torch.optim.Adagrad, {"lr": 0.01, "eps": 1e-7}),
])
def test_keras_style_optimizer_objects_build_torchs_with_their_arguments(spec, torch_class, expected):
    clf = _clf()
    clf.compile(optimizer=spec)
    clf.fit(*_toy(32, 0), epochs=1, batch_size=16, verbose=0)
    built = clf._compiled.optimizer
    assert type(built) is torch_class
    decayed = next(g for g in built.param_groups if g["weight_decay"] or not expected.get("weight_decay"))
    for key, value in expected.items():
        assert decayed[key] == pytest.approx(value), key
    assert clf._compiled.train.optimizer == spec.name and clf._compiled.train.lr == spec.learning_rate
    assert spec.get_config()["name"] == spec.name and spec.get_config()["learning_rate"] == spec.learning_rate


def test_torch_optimizer_instances_are_recorded_by_their_own_name():
    clf = _clf()
    clf.compile(optimizer=torch.optim.AdamW(clf.model.parameters(), lr=2e-3, weight_decay=0.01))
    train = clf._compiled.train
    assert (train.optimizer, train.lr, train.weight_decay, train.momentum) == ("adamw", 2e-3, 0.01, 0.9)
    clf.compile(optimizer=torch.optim.SGD(clf.model.parameters(), lr=0.1, momentum=0.5))
    assert (clf._compiled.train.optimizer, clf._compiled.train.momentum) == ("sgd", 0.5)
    with pytest.raises(ValueError, match="Rprop is not one of the optimizers a Classifier records"):
        clf.compile(optimizer=torch.optim.Rprop(clf.model.parameters()))
    with pytest.raises(ValueError, match="an optimizer object carries its own: set them on it"):
        clf.compile(optimizer=resnetlab.optimizers.SGD(), learning_rate=0.5)


def test_loss_objects_and_functions():
    x, y = _toy(48, 0)
    clf = _clf()
    clf.compile(optimizer="adam", loss=torch.nn.CrossEntropyLoss(label_smoothing=0.2), precision="fp32")
    assert clf._compiled.loss_fn is None and clf._compiled.train.label_smoothing == 0.2  # the built-in, smoothed

    calls = []

    def squared_error(logits, targets):  # a loss of one's own: on the logits, as the loop has them
        calls.append(logits.shape)
        return ((logits.softmax(1) - F.one_hot(targets, 3)) ** 2).sum(1).mean()

    clf = _clf()
    clf.compile(optimizer="adam", loss=squared_error, precision="fp32")
    history = clf.fit(x, y, epochs=2, batch_size=16, validation_data=(x, y), verbose=0)
    assert calls and calls[0] == (16, 3)
    probs = clf.predict(x, verbose=0)
    expected = ((probs - np.eye(3)[y]) ** 2).sum(1).mean()
    assert clf.evaluate(x, y, verbose=0, return_dict=True)["loss"] == pytest.approx(expected, rel=1e-4)
    assert history.history["val_loss"][-1] == pytest.approx(expected, rel=1e-4)  # validation uses it too
    with pytest.raises(resnetlab.UserError, match="a loss function of your own must weight its terms itself"):
        clf.fit(x, y, sample_weight=np.ones(48), verbose=0)
    with pytest.raises(ValueError, match="unsupported loss 'mse'.*a torch loss module, or a function"):
        clf.compile(loss="mse")


def test_steps_per_epoch_validation_steps_and_freq():
    x, y = _toy(96, 0)
    x_val, y_val = _toy(24, 1)
    batches = []
    counter = resnetlab.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: batches.append(batch))
    clf = _clf()
    clf.compile(optimizer="adam", precision="fp32")
    history = clf.fit(x, y, epochs=4, batch_size=16, steps_per_epoch=2, validation_data=(x_val, y_val),
                      validation_steps=1, validation_batch_size=8, validation_freq=2, callbacks=[counter], verbose=0)
    assert batches == [0, 1] * 4 and history.params["steps"] == 2  # each epoch: 2 batches of a fresh shuffle
    assert len(history.history["loss"]) == 4 and len(history.history["val_loss"]) == 2  # epochs 2 and 4
    first_batch = clf.evaluate(x_val[:8], y_val[:8], verbose=0, return_dict=True)["loss"]
    assert history.history["val_loss"][-1] == pytest.approx(first_batch, rel=1e-4)  # only the first batch of 8
    with pytest.raises(ValueError, match=r"steps_per_epoch=7, but 96 images make 6 batches of 16; give at most 6"):
        clf.fit(x, y, batch_size=16, steps_per_epoch=7, verbose=0)
    with pytest.raises(ValueError, match="validation_freq must be a whole number >= 1"):
        clf.fit(x, y, validation_freq=0, verbose=0)
