"""Keras' callbacks in Classifier.fit: each one's effect on the run, on the files it writes, and its errors."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import resnetlab
from quadrants import quadrant_images
from resnetlab.keras.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
)

X, Y = quadrant_images(48, 0)
X_VAL, Y_VAL = quadrant_images(24, 1)
NEVER = 1e9  # a min_delta no change can beat: every epoch after the first counts as "no improvement"


def _classifier(lr: float = 0.01) -> resnetlab.Classifier:
    clf = resnetlab.Classifier("tutorial_cnn", num_classes=3, input_shape=(28, 28, 3), device="cpu")
    clf.compile(optimizer="sgd", learning_rate=lr, momentum=0.9)
    return clf


def _fit(clf, epochs, callbacks, **kwargs):
    return clf.fit(X, Y, epochs=epochs, batch_size=16, validation_data=(X_VAL, Y_VAL), verbose=0,
                   callbacks=callbacks, **kwargs)


def test_early_stopping_stops_and_restores_the_best_epochs_weights():
    clf = _classifier()
    seen = []
    record = LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(clf.get_weights()))
    stopper = EarlyStopping(monitor="val_loss", min_delta=NEVER, patience=1, restore_best_weights=True)
    history = _fit(clf, 10, [record, stopper])
    assert history.epoch == [0, 1]  # epoch 0 sets the best, epoch 1 is one epoch without improvement
    assert stopper.stopped_epoch == 1 and stopper.best_epoch == 0 and clf.stop_training
    restored = clf.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(restored, seen[0]))  # epoch 0's weights are back
    assert not all(np.array_equal(a, b) for a, b in zip(restored, seen[1]))


def test_early_stopping_restores_the_best_weights_even_when_it_never_stops():
    clf = _classifier()
    seen = []
    record = LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(clf.get_weights()))
    stopper = EarlyStopping(monitor="loss", min_delta=NEVER, patience=10, restore_best_weights=True)
    assert len(_fit(clf, 3, [record, stopper]).epoch) == 3 and stopper.stopped_epoch == 0
    assert all(np.array_equal(a, b) for a, b in zip(clf.get_weights(), seen[0]))  # Keras 3 restores at train end


def test_early_stopping_patience_counts_epochs_without_improvement():
    history = _fit(_classifier(), 10, [EarlyStopping(monitor="loss", min_delta=NEVER, patience=3)])
    assert len(history.epoch) == 4  # the best, then three epochs of patience


def test_a_callback_ends_fit_through_stop_training():
    class StopAfterTwo(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    clf = _classifier()
    assert len(_fit(clf, 6, [StopAfterTwo()]).epoch) == 2
    assert len(_fit(clf, 3, []).epoch) == 3 and not clf.stop_training  # the next fit starts afresh


def test_stop_training_in_a_batch_hook_stops_after_that_step():
    class StopAtBatchOne(Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.batches = getattr(self, "batches", 0) + 1
            if self.batches == 5:  # epoch 1, batch 1 (three batches an epoch)
                self.model.stop_training = True

    stopper = StopAtBatchOne()
    history = _fit(_classifier(), 4, [stopper])
    assert stopper.batches == 5 and history.epoch == [0]  # the unfinished epoch has no History row


def test_stop_training_at_the_first_step_ends_fit_cleanly():
    ended = []
    stop_now = LambdaCallback(on_train_batch_end=lambda batch, logs: setattr(clf, "stop_training", True),
                              on_train_end=lambda logs: ended.append(logs))
    clf = _classifier()
    history = _fit(clf, 3, [stop_now])
    assert history.epoch == [] and history.history["loss"] == [] and ended == [{}]
    assert clf.info.training["epochs"] == 0


def test_model_checkpoint_names_files_from_logs_and_saves_the_best(tmp_path):
    clf = _classifier()
    every = ModelCheckpoint(tmp_path / "every" / "m-{epoch:02d}-{val_accuracy:.2f}.h5")
    # "best" by the highest training loss: the loss falls, so only some epochs may save
    best = ModelCheckpoint(tmp_path / "best" / "m-{epoch}.safetensors", monitor="loss", mode="max",
                           save_best_only=True)
    history = _fit(clf, 4, [every, best]).history
    expected = [f"m-{e + 1:02d}-{acc:.2f}.h5" for e, acc in enumerate(history["val_accuracy"])]
    assert sorted(p.name for p in (tmp_path / "every").iterdir()) == expected
    improved = [f"m-{e + 1}.safetensors" for e, loss in enumerate(history["loss"]) if loss > max(history["loss"][:e],
                                                                                                  default=-np.inf)]
    assert sorted(p.name for p in (tmp_path / "best").iterdir()) == sorted(improved)
    assert len(improved) < 4
    last = resnetlab.load(tmp_path / "every" / expected[-1], device="cpu")  # the file of the last epoch
    np.testing.assert_array_equal(last.predict(X_VAL), clf.predict(X_VAL))


def test_reduce_lr_on_plateau_cuts_the_lr_and_the_next_fit_keeps_it():
    clf = _classifier(lr=0.01)
    cut = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=NEVER, min_lr=0.003)
    history = _fit(clf, 4, [cut])
    # the lr of each epoch's last step: cut at the end of epochs 1 and 2, then held at min_lr
    assert history.history["lr"] == pytest.approx([0.01, 0.01, 0.005, 0.003])
    assert clf.learning_rate == pytest.approx(0.003)
    assert _fit(clf, 1, []).history["lr"] == pytest.approx([0.003])


def test_reduce_lr_on_plateau_cooldown():
    clf = _classifier(lr=0.01)
    cut = ReduceLROnPlateau(monitor="loss", factor=0.1, patience=1, cooldown=2, min_delta=NEVER)
    lrs = _fit(clf, 6, [cut]).history["lr"]
    # as Keras counts: cut after epoch 1; epoch 2 cools down (counter 2 -> 1), epoch 3 ends the cooldown
    # (1 -> 0) and, with patience 1, cuts again
    assert lrs == pytest.approx([0.01, 0.01, 0.001, 0.001, 0.0001, 0.0001])


def test_learning_rate_scheduler_two_and_one_argument_schedules():
    clf = _classifier(lr=0.01)
    lrs = _fit(clf, 4, [LearningRateScheduler(lambda epoch, lr: lr * 0.1 if epoch == 2 else lr)]).history["lr"]
    assert lrs == pytest.approx([0.01, 0.01, 0.001, 0.001])
    lrs = _fit(clf, 3, [LearningRateScheduler(lambda epoch: 0.02 * (epoch + 1))]).history["lr"]
    assert lrs == pytest.approx([0.02, 0.04, 0.06])


def test_lr_changes_read_back_at_once_and_reach_the_next_callback():
    clf = _classifier(lr=0.01)
    read = []

    def set_and_read(epoch, logs):
        clf.learning_rate = 0.004
        read.append(clf.learning_rate)

    given = []
    scheduler = LearningRateScheduler(lambda epoch, lr: given.append(lr) or lr)
    _fit(clf, 2, [scheduler, LambdaCallback(on_epoch_end=set_and_read)])
    assert read == pytest.approx([0.004, 0.004]) and given == pytest.approx([0.01, 0.004])
    clf.learning_rate = 0.002
    given.clear()
    assert _fit(clf, 1, [scheduler]).history["lr"] == pytest.approx([0.002]) and given == pytest.approx([0.002])


def test_lr_changes_under_a_cosine_schedule_scale_it_and_survive_its_end():
    def steps_lr(callbacks):  # the lr of every step of a 3-epoch cosine run (3 steps an epoch)
        clf = _classifier()
        clf.compile(optimizer="sgd", learning_rate=0.01, schedule="cosine")
        trace = []
        _fit(clf, 3, [*callbacks, LambdaCallback(on_train_batch_end=lambda b, logs: trace.append(clf.learning_rate))])
        return trace

    plain = steps_lr([])
    # cuts after epochs 1 and 2; the second comes where the cosine is at 0 and must not fail
    cut = steps_lr([ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=NEVER)])
    assert cut[:6] == pytest.approx(plain[:6])
    assert cut[6] == pytest.approx(plain[5] * 0.5)  # the step after the cut runs at half the last one's lr
    assert cut[7] / plain[7] == pytest.approx(cut[6] / plain[6])  # and the cosine goes on, scaled


def test_a_fit_refused_before_training_keeps_the_files_and_the_lr_it_was_given(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("epoch,loss\n0,1.0\n")
    clf = _classifier()
    clf.learning_rate = 0.003
    with pytest.raises(ValueError, match="monitor='val_loss'"):
        clf.fit(X, Y, epochs=1, batch_size=16, verbose=0, callbacks=[CSVLogger(log), EarlyStopping()])
    assert log.read_text() == "epoch,loss\n0,1.0\n"  # checked before any callback ran
    assert clf.learning_rate == 0.003


def test_a_fit_that_fails_midway_closes_its_files_and_keeps_the_lr_it_reached(tmp_path):
    def fail(epoch, logs):
        if epoch == 2:
            raise RuntimeError("a user's callback failed")

    clf = _classifier(lr=0.01)
    clf.learning_rate = 0.02  # pending: the fit starts there
    logger = CSVLogger(tmp_path / "log.csv")
    cut = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=NEVER)  # cuts after epochs 1, 2
    with pytest.raises(RuntimeError, match="a user's callback failed"):
        _fit(clf, 4, [cut, logger, LambdaCallback(on_epoch_end=fail)])
    # no file is held open (each epoch rewrites it whole): the rows of the epochs done are on disk
    assert len((tmp_path / "log.csv").read_text().splitlines()) == 4  # header + 3
    assert clf.learning_rate == pytest.approx(0.005)  # 0.02 halved twice; the pending 0.02 is spent
    assert _fit(clf, 1, []).history["lr"] == pytest.approx([0.005])


def test_learning_rate_set_between_fits_is_where_the_next_fit_starts():
    clf = _classifier(lr=0.01)
    _fit(clf, 1, [])
    clf.learning_rate = 0.002
    assert clf.learning_rate == 0.002
    assert _fit(clf, 2, []).history["lr"] == pytest.approx([0.002, 0.002])
    assert clf._compiled.optimizer.param_groups[0]["lr"] == pytest.approx(0.002)  # what the steps really used


def test_csv_logger_writes_and_appends_the_epochs_logs(tmp_path):
    path = tmp_path / "log.csv"
    clf = _classifier()
    first = _fit(clf, 2, [CSVLogger(path)]).history
    second = _fit(clf, 1, [CSVLogger(path, append=True)]).history
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "accuracy", "loss", "lr", "val_accuracy", "val_loss"]
    assert [r["epoch"] for r in rows] == ["0", "1", "0"]  # as Keras: each fit counts from 0
    assert [float(r["val_loss"]) for r in rows] == pytest.approx(first["val_loss"] + second["val_loss"])


def test_csv_logger_appending_new_columns_widens_the_header(tmp_path):
    path = tmp_path / "log.csv"
    clf = _classifier()
    clf.fit(X, Y, epochs=1, batch_size=16, verbose=0, callbacks=[CSVLogger(path)])  # no validation
    _fit(clf, 1, [CSVLogger(path, append=True)])
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "accuracy", "loss", "lr", "val_accuracy", "val_loss"]
    assert rows[0]["val_loss"] == "NA" and float(rows[1]["val_loss"]) > 0


def test_lambda_callback_hooks_and_batch_logs():
    calls = {"begin": 0, "end": 0, "epochs": [], "batches": []}
    hooks = LambdaCallback(
        on_train_begin=lambda logs: calls.__setitem__("begin", calls["begin"] + 1),
        on_train_end=lambda logs: calls.__setitem__("end", calls["end"] + 1),
        on_epoch_begin=lambda epoch, logs: calls["epochs"].append(epoch),
        on_train_batch_end=lambda batch, logs: calls["batches"].append((batch, logs["loss"])))
    clf = _classifier()
    _fit(clf, 2, [hooks])
    assert calls["begin"] == calls["end"] == 1 and calls["epochs"] == [0, 1]
    assert [b for b, _ in calls["batches"]] == [0, 1, 2] * 2  # 48 images in batches of 16
    assert all(np.isfinite(loss) and loss > 0 for _, loss in calls["batches"])
    assert hooks.params["steps"] == 3 and hooks.params["epochs"] == 2
    assert hooks.params["metrics"] == ["loss", "accuracy", "val_loss", "val_accuracy", "lr"]


def test_weights_round_trip_and_shape_errors():
    clf, other = _classifier(), _classifier()
    _fit(other, 1, [])
    assert not all(np.array_equal(a, b) for a, b in zip(clf.get_weights(), other.get_weights()))
    clf.set_weights(other.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(clf.get_weights(), other.get_weights()))
    clf.info = other.info  # the input normalization is kept in info, not among the weights
    np.testing.assert_array_equal(clf.predict(X_VAL), other.predict(X_VAL))
    weights = clf.get_weights()
    with pytest.raises(ValueError, match="set_weights got 1 arrays"):
        clf.set_weights(weights[:1])
    with pytest.raises(ValueError, match="needs shape"):
        clf.set_weights([w.T if w.ndim == 2 else w for w in weights])


@pytest.mark.parametrize("make, message", [
    (lambda: ModelCheckpoint("model.keras"), "resnetlab writes .h5 .*model.h5"),
    (lambda: ModelCheckpoint("m.h5", save_freq=100), "only 'epoch' is supported"),
    (lambda: ReduceLROnPlateau(factor=1.5), "between 0 and 1"),
    (lambda: EarlyStopping(mode="up"), "use 'auto', 'min' or 'max'"),
    (lambda: EarlyStopping(patience=-1), "must be >= 0"),
])
def test_bad_callback_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("callbacks, error, message", [
    ([EarlyStopping(monitor="val_acc")], ValueError, "this fit logs loss, accuracy, lr .*validation_data"),
    ([ModelCheckpoint("m-{val_los}.h5")], ValueError, "cannot fill in the name .*\\{loss\\}"),
    ([LearningRateScheduler(lambda epoch, lr: None)], ValueError, "the schedule returned None for epoch 0"),
    ([LambdaCallback(on_train_batch_begin=lambda batch, logs: None)], ValueError, "does not call"),
    (["early_stopping"], TypeError, "callbacks\\[0\\] is a builtins.str"),
])
def test_callback_errors_name_the_problem(tmp_path, monkeypatch, callbacks, error, message):
    monkeypatch.chdir(tmp_path)
    clf = _classifier()
    with pytest.raises(error, match=message):
        clf.fit(X, Y, epochs=1, batch_size=16, verbose=0, callbacks=callbacks)
