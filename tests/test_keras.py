"""The Keras-style flow of the README, on small arrays of shape (N, 28, 28, 3)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import resnetlab
from quadrants import quadrant_images as _toy


@pytest.fixture(scope="module")
def trained():
    x_train, y_train = _toy(192, 0)
    x_val, y_val = _toy(48, 1)
    clf = resnetlab.Classifier("resnet20", num_classes=3, input_shape=(28, 28, 3), device="cpu")
    clf.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = clf.fit(x_train, y_train, epochs=4, batch_size=32, validation_data=(x_val, y_val), verbose=0)
    return clf, history


def test_fit_returns_keras_history(trained):
    _, history = trained
    assert history.epoch == [0, 1, 2, 3]
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert all(len(v) == 4 for v in history.history.values())
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_evaluate_and_predict(trained):
    clf, _ = trained
    x_test, y_test = _toy(60, 2)
    scores = clf.evaluate(x_test, y_test, return_dict=True)
    assert set(scores) == {"loss", "accuracy"}
    assert clf.evaluate(x_test, y_test) == [scores["loss"], scores["accuracy"]]  # Keras: loss, acc = evaluate(...)
    assert scores["accuracy"] >= 0.9  # the task is easy: a square in one of three quadrants
    probs = clf.predict(x_test)
    assert probs.shape == (60, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs.argmax(1) == y_test).mean() == pytest.approx(scores["accuracy"])
    assert np.array_equal(clf.predict_classes(x_test), probs.argmax(1))


@pytest.mark.parametrize("suffix", [".h5", ".safetensors"])
def test_save_and_load_give_identical_predictions(trained, tmp_path, suffix):
    clf, _ = trained
    x_test, _ = _toy(20, 3)
    path = clf.save(tmp_path / f"model{suffix}")
    clf2 = resnetlab.load(path, device="cpu")
    np.testing.assert_array_equal(clf.predict(x_test), clf2.predict(x_test))
    assert clf2.info.mean == clf.info.mean and clf2.info.input_size == (3, 28, 28)
    clf2.fit(*_toy(32, 4), epochs=1, verbose=0)  # a loaded model trains on, keeping its normalization
    assert clf2.info.mean == clf.info.mean


def test_nchw_tensors_float_inputs_and_one_hot_labels(trained):
    clf, _ = trained
    x, y = _toy(30, 5)
    as_tensor = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0
    one_hot = np.eye(3)[y]
    np.testing.assert_allclose(clf.evaluate(as_tensor, one_hot)[1], clf.evaluate(x, y)[1])
    np.testing.assert_allclose(clf.predict(as_tensor), clf.predict(x), atol=1e-5)


def test_validation_split_takes_the_last_samples_and_torch_optimizer():
    x, y = _toy(40, 6)
    clf = resnetlab.Classifier("tutorial_cnn", num_classes=3, input_shape=(28, 28, 3), device="cpu")
    clf.compile(optimizer=torch.optim.SGD(clf.model.parameters(), lr=0.05, momentum=0.9), metrics=["accuracy", "top5"])
    history = clf.fit(x, y, epochs=2, batch_size=8, validation_split=0.25, verbose=0)
    held_out = clf.evaluate(x[30:], y[30:], return_dict=True)
    assert history.history["val_accuracy"][-1] == pytest.approx(held_out["accuracy"])
    assert held_out["top5"] == 1.0  # 3 classes: the top-5 always holds the answer


def test_shapes_inferred_at_first_fit_grayscale():
    x = np.random.default_rng(0).integers(0, 255, (24, 12, 12), dtype=np.uint8)
    y = np.arange(24) % 4
    clf = resnetlab.Classifier("resnet20", device="cpu")
    clf.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert clf.info.input_size == (1, 12, 12) and clf.info.num_classes == 4
    assert clf.predict(x).shape == (24, 4)


@pytest.mark.parametrize("call, message", [
    (lambda c: c.fit(np.zeros((4, 32, 32, 3), np.uint8), [0, 1, 2, 0]), "the model expects 28x28"),
    (lambda c: c.fit(np.zeros((4, 28, 28, 3), np.uint8), [0, 1, 2]), "3 labels for 4 images"),
    (lambda c: c.fit(np.zeros((4, 28, 28, 3), np.uint8), [0, 1, 2, 7]), "labels must be 0..2"),
    (lambda c: c.fit(np.zeros((4, 28, 28, 3), np.uint8), [0, 1, 2, 0], validation_split=1.5), "validation_split"),
    (lambda c: c.compile(optimizer="adamax"), "unknown optimizer 'adamax'; did you mean 'adam'"),
    (lambda c: c.compile(loss="mse"), "unsupported loss 'mse'"),
    (lambda c: c.compile(metrics=["acuracy"]), "did you mean 'accuracy'"),
    (lambda c: c.compile(optimizer=torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)),
     "not this model's"),
])
def test_wrong_input_raises_value_error(call, message):
    clf = resnetlab.Classifier("resnet20", num_classes=3, input_shape=(28, 28, 3), device="cpu")
    with pytest.raises(ValueError, match=message):
        call(clf)


def test_keras_keywords_and_validation():
    x, y = _toy(16, 7)
    clf = resnetlab.Classifier("tutorial_cnn", num_classes=3, input_shape=(28, 28, 3), device="cpu")
    clf.compile(optimizer="adam", metrics=["accuracy", "top5"])
    first = clf.fit(x, y, epochs=1, batch_size=8, verbose=0, validation_data=(x, y))
    optimizer = clf._compiled.optimizer
    clf.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert clf._compiled.optimizer is optimizer  # Adam's moments carry over, as in Keras
    assert {"top5", "val_top5", "accuracy", "val_accuracy"} <= set(first.history)
    assert set(clf.evaluate(x, y, verbose=0, return_dict=True)) == {"loss", "accuracy", "top5"}
    assert clf.predict(x, verbose=0).shape == (16, 3)
    with pytest.raises(ValueError, match="did you mean 'cosine'"):
        clf.compile(schedule="cosin")
    with pytest.raises(ValueError, match="lr must be positive"):
        clf.compile(learning_rate=0.0)


@pytest.mark.parametrize("call, message", [
    (lambda c, x, y: c.fit(x[:1], y[:1], verbose=0), "at least 2 training images"),
    (lambda c, x, y: c.fit(x.astype("float32"), y, verbose=0), "float images must be 0..1 \\(divide by 255\\)"),
    (lambda c, x, y: c.fit(x[0], y[:1], verbose=0), "looks like a single image of shape \\(28, 28, 3\\); give a batch"),
])
def test_common_keras_slips_get_clear_errors(call, message):
    x, y = _toy(8, 8)
    clf = resnetlab.Classifier("tutorial_cnn", num_classes=3, input_shape=(28, 28, 3), device="cpu")
    with pytest.raises(ValueError, match=message):
        call(clf, x, y)


def test_keras_names_batch_size_none_and_a_model_left_in_training_mode():
    x, y = _toy(16, 9)
    clf = resnetlab.Classifier("tutorial_cnn", num_classes=3, input_shape=(28, 28, 3), device="cpu")
    clf.compile(optimizer="adam", metrics=["acc"])  # Keras keys results by the name given
    history = clf.fit(x, y, epochs=1, batch_size=None, validation_data=(x, y), verbose=0)
    assert set(history.history) == {"loss", "acc", "val_loss", "val_acc", "lr"}
    assert set(clf.evaluate(x, y, batch_size=None, return_dict=True)) == {"loss", "acc"}
    assert clf.model.training
    clf.predict(x, batch_size=None)
    assert clf.model.training  # predict leaves the model as it found it
    clf.compile(metrics=[])
    loss = clf.evaluate(x, y)
    assert isinstance(loss, float)  # no metrics: the loss alone, as Keras returns it


def test_repeated_fit_calls_draw_new_batches(monkeypatch):
    import resnetlab.data.loader as loaders

    seen = []

    class Recording(loaders.BatchLoader):  # notes the labels of every batch the fit trains on
        def __iter__(self):
            for images, labels in super().__iter__():
                seen.append(labels.tolist())
                yield images, labels

    monkeypatch.setattr(loaders, "BatchLoader", Recording)
    x, y = _toy(32, 10)
    runs = []
    for _ in range(2):
        clf = resnetlab.Classifier("tutorial_cnn", num_classes=3, input_shape=(28, 28, 3), device="cpu", seed=4)
        for _ in range(3):  # for epoch in range(3): clf.fit(x, y, epochs=1)
            clf.fit(x, y, epochs=1, batch_size=8, verbose=0)
        runs.append(seen[:])
        seen.clear()
    assert runs[0] == runs[1] and len(runs[0]) == 12  # reproducible from the seed
    epochs = [str(runs[0][i:i + 4]) for i in (0, 4, 8)]
    assert len(set(epochs)) == 3  # but each call shuffles anew


def test_class_weight_and_class_names_without_input_shape():
    x, y = _toy(24, 11)
    named = resnetlab.Classifier("tutorial_cnn", class_names=["a", "b", "c", "d"], device="cpu")
    named.fit(x, y, epochs=1, batch_size=8, verbose=0)  # the labels hold 0..2 only: the names say 4 classes
    assert named.info.num_classes == 4 and named.predict(x).shape == (24, 4)
    losses = {}
    for weights in (None, {0: 1.0, 1: 1.0, 2: 1.0}, {0: 10.0}):
        clf = resnetlab.Classifier("tutorial_cnn", num_classes=3, input_shape=(28, 28, 3), device="cpu")
        losses[str(weights)] = clf.fit(x, y, epochs=1, batch_size=8, verbose=0, class_weight=weights).history["loss"]
    assert losses["None"] == losses[str({0: 1.0, 1: 1.0, 2: 1.0})]  # weights of 1 change nothing
    assert losses["None"] != losses[str({0: 10.0})]
    with pytest.raises(ValueError, match="class_weight has key 5; its keys must be class indices 0..2"):
        clf.fit(x, y, epochs=1, class_weight={5: 2.0}, verbose=0)


def test_input_shape_in_channels_first_order_is_caught():
    with pytest.raises(ValueError, match=r"did you mean \(28, 28, 3\)"):
        resnetlab.Classifier("resnet20", num_classes=3, input_shape=(3, 28, 28))


def test_predict_before_building_says_what_to_do():
    with pytest.raises(ValueError, match="call fit first"):
        resnetlab.Classifier("resnet20").predict(np.zeros((1, 8, 8, 3), np.uint8))


def test_summary_prints_keras_table_once_and_returns_none(capsys):
    clf = resnetlab.Classifier("resnet20", num_classes=10, input_shape=(28, 28, 3), device="cpu")
    print(clf.summary())  # Keras' idiom shows the summary once, then "None"
    out = capsys.readouterr().out
    assert out.startswith('Model: "resnet20"\n') and out.endswith("10 classes\nNone\n") and out.count("Model:") == 1
    lines = []
    assert clf.summary(print_fn=lines.append) is None and capsys.readouterr().out == ""
    rows = {line.split()[0]: line for line in lines if line.strip() and line.split()[0] in ("conv1", "fc", "layer3")}
    assert rows["conv1"].split()[-1] == "432" and "(None, 16, 28, 28)" in rows["conv1"]  # 3x3x3x16, no bias
    assert "(None, 10)" in rows["fc"] and rows["fc"].split()[-1] == "650"
    assert "(None, 64, 7, 7)" in rows["layer3"]  # 28 -> 14 -> 7
    statistics = sum(b.numel() for n, b in clf.model.named_buffers() if "running" in n)  # BatchNorm mean and var
    assert f"Trainable params: {269_722:,} " in "\n".join(lines)  # the paper's ResNet-20 count (0.27M)
    assert f"Non-trainable params: {statistics:,} " in "\n".join(lines)
    assert f"Total params: {269_722 + statistics:,} " in "\n".join(lines)
    with torch.no_grad():  # frozen weights are non-trainable too
        for p in clf.model.fc.parameters():
            p.requires_grad_(False)
    clf.summary(print_fn=(frozen := []).append)
    assert f"Trainable params: {269_722 - 650:,} " in "\n".join(frozen)


@pytest.mark.parametrize(("name", "kind", "momentum"), [("rmsprop", torch.optim.RMSprop, 0.0),
                                                        ("nadam", torch.optim.NAdam, 0.9),
                                                        ("adagrad", torch.optim.Adagrad, None)])
def test_compile_takes_keras_optimizer_names_with_keras_defaults(name, kind, momentum):
    x, y = _toy(32, 10)
    clf = resnetlab.Classifier("tutorial_cnn", num_classes=3, input_shape=(28, 28, 3), device="cpu")
    clf.compile(optimizer=name)
    clf.fit(x, y, epochs=1, batch_size=16, verbose=0)
    optimizer = clf._compiled.optimizer
    assert isinstance(optimizer, kind) and optimizer.defaults["lr"] == pytest.approx(1e-3)  # Keras' default lr
    if kind is torch.optim.RMSprop:
        assert (optimizer.defaults["alpha"], optimizer.defaults["momentum"]) == (0.9, momentum)  # rho 0.9
    elif kind is torch.optim.NAdam:
        assert optimizer.defaults["betas"][0] == momentum
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprp'; did you mean 'rmsprop'"):
        clf.compile(optimizer="rmsprp")


def test_save_weights_load_weights_call_and_the_on_batch_methods(tmp_path):
    x, y = _toy(48, 11)
    clf = resnetlab.Classifier("tutorial_cnn", num_classes=3, input_shape=(28, 28, 3), device="cpu", seed=1)
    clf.compile(optimizer="adam", metrics=["accuracy"])
    clf.fit(x, y, epochs=1, batch_size=16, verbose=0)
    path = clf.save_weights(tmp_path / "cnn.weights.h5")
    other = resnetlab.Classifier("tutorial_cnn", num_classes=3, input_shape=(28, 28, 3), device="cpu", seed=2)
    other.info = clf.info  # the same preprocessing (fit measured it); only the weights differ
    assert not np.allclose(other.predict(x), clf.predict(x))
    other.load_weights(path)
    np.testing.assert_array_equal(other.predict(x), clf.predict(x))
    with pytest.raises(ValueError, match=r"name the file \*\.weights\.h5"):
        clf.save_weights(tmp_path / "cnn.bin")
    wrong = resnetlab.Classifier("tutorial_cnn", num_classes=5, input_shape=(28, 28, 3), device="cpu")
    with pytest.raises(resnetlab.ModelFileError, match="cnn.weights.h5 does not match"):
        wrong.load_weights(path)

    logits = clf(x[:4])  # a Keras model call: outputs for a batch, no gradient graph unless training=True
    assert isinstance(logits, torch.Tensor) and logits.shape == (4, 3) and not logits.requires_grad
    np.testing.assert_allclose(torch.softmax(logits, 1).numpy(), clf.predict(x[:4]), rtol=1e-5, atol=1e-6)
    mode = clf.model.training
    assert clf(x[:4], training=True).requires_grad and clf.model.training == mode  # the mode is put back
    np.testing.assert_allclose(clf.predict_on_batch(x[:8]), clf.predict(x[:8]), rtol=1e-5, atol=1e-6)
    assert clf.test_on_batch(x[:8], y[:8]) == pytest.approx(clf.evaluate(x[:8], y[:8]))
    before = clf.get_weights()
    loss, accuracy = clf.train_on_batch(x[:8], y[:8])
    assert math.isfinite(loss) and 0.0 <= accuracy <= 1.0
    assert any(not np.array_equal(a, b) for a, b in zip(before, clf.get_weights()))  # one step was taken
    assert set(clf.train_on_batch(x[:8], y[:8], return_dict=True)) == {"loss", "accuracy"}


def test_predict_takes_one_image_a_pil_image_and_image_files(tmp_path):
    from PIL import Image

    x, y = _toy(8, 12)
    clf = resnetlab.Classifier("tutorial_cnn", num_classes=3, input_shape=(28, 28, 3), device="cpu")
    batch = clf.predict(x[:2])
    np.testing.assert_allclose(clf.predict(x[0]), batch[:1], rtol=1e-5, atol=1e-6)  # HWC, as Keras arrays
    np.testing.assert_allclose(clf.predict(torch.from_numpy(x[0]).permute(2, 0, 1)), batch[:1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(clf.predict(Image.fromarray(x[1])), batch[1:], rtol=1e-5, atol=1e-6)
    for i in range(2):
        Image.fromarray(x[i]).save(tmp_path / f"{i}.png")
    np.testing.assert_allclose(clf.predict(str(tmp_path / "0.png")), batch[:1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(clf.predict([tmp_path / "0.png", tmp_path / "1.png"]), batch, rtol=1e-5, atol=1e-6)
    Image.fromarray(x[0]).resize((56, 56), Image.NEAREST).save(tmp_path / "big.png")  # resized as predict does
    assert clf.predict(tmp_path / "big.png").shape == (1, 3)


def test_string_labels_are_learned_kept_in_the_h5_file_and_predicted_by_name(tmp_path, capsys):
    from PIL import Image

    from resnetlab.cli import main

    x, y = _toy(48, 13)
    names = np.array(["cat", "dog", "owl"])[y]  # any hashable label, as scikit-learn's classifiers take
    clf = resnetlab.Classifier("tutorial_cnn", input_shape=(28, 28, 3), device="cpu", seed=3)
    clf.compile(optimizer="adam")
    clf.fit(x, names, epochs=3, batch_size=16, verbose=0, validation_data=(x[:8], list(names[:8])))
    assert clf.info.class_names == ["cat", "dog", "owl"]  # sorted, as LabelEncoder
    labels = clf.predict_labels(x)
    assert set(labels) <= {"cat", "dog", "owl"}
    assert list(labels) == [clf.info.class_names[i] for i in clf.predict_classes(x)]
    clf.save(tmp_path / "animals.h5")
    again = resnetlab.load(tmp_path / "animals.h5", device="cpu")
    assert list(again.predict_labels(x)) == list(labels)
    assert again.evaluate(x, names) == pytest.approx(clf.evaluate(x, names))  # string labels evaluate too
    with pytest.raises(ValueError, match="the label 'emu', which is none of the model's classes"):
        again.evaluate(x[:2], ["cat", "emu"])
    Image.fromarray(x[0]).save(tmp_path / "a.png")
    capsys.readouterr()  # evaluate printed Keras' closing lines (verbose="auto")
    assert main(["predict", str(tmp_path / "animals.h5"), str(tmp_path / "a.png"), "--json", "--backend", "torch"]) == 0
    top = json.loads(capsys.readouterr().out)[0]["top"][0]
    assert top["label"] == labels[0] and top["label"] in ("cat", "dog", "owl")


def test_initial_epoch_numbers_epochs_as_keras_and_count_params_matches_summary():
    from resnetlab.callbacks import LambdaCallback

    x, y = _toy(32, 14)
    clf = resnetlab.Classifier("resnet20", num_classes=3, input_shape=(28, 28, 3), device="cpu")
    seen = []
    history = clf.fit(x, y, epochs=5, initial_epoch=3, batch_size=16, verbose=0,
                      callbacks=[LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch))])
    assert history.epoch == [3, 4] and seen == [3, 4]  # epochs 4 and 5 of 5, counted from 0 as in Keras
    with pytest.raises(ValueError, match="initial_epoch=5 must be in 0..4"):
        clf.fit(x, y, epochs=5, initial_epoch=5, verbose=0)
    lines = []
    clf.summary(print_fn=lines.append)
    assert f"Total params: {clf.count_params():,} " in "\n".join(lines)
    assert clf.count_params() > sum(p.numel() for p in clf.model.parameters())  # with the BatchNorm statistics
