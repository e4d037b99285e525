"""fit/evaluate/predict take what Keras takes besides arrays: torch Datasets and DataLoaders, generators of
(x, y[, sample_weight]) batches, a folder of class folders (labels by name, kept through .h5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

import resnetlab
from quadrants import quadrant_images as _toy
from resnetlab.errors import DataError


def _clf():
    clf = resnetlab.Classifier("tutorial_cnn", num_classes=3, input_shape=(28, 28, 3), device="cpu", seed=1)
    clf.compile(optimizer="adam", precision="fp32")
    return clf


def _tensors(n, seed):
    x, y = _toy(n, seed)
    return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255, torch.from_numpy(y)


def test_a_dataset_and_a_dataloader_train_as_their_arrays_do():
    images, labels = _tensors(64, 0)
    from_arrays, in_order = _clf(), _clf()
    from_arrays.fit(images, labels, epochs=1, batch_size=16, verbose=0)
    in_order.fit(images, labels, epochs=1, batch_size=16, verbose=0, shuffle=False)
    from_dataset = _clf()  # a Dataset is read into memory: shuffled as arrays are
    from_dataset.fit(TensorDataset(images, labels), epochs=1, batch_size=16, verbose=0)
    from_loader = _clf()  # a DataLoader is read batch by batch, in its own order (here unshuffled)
    history = from_loader.fit(DataLoader(TensorDataset(images, labels), batch_size=16), epochs=1, verbose=0)
    for expected, other in ((from_arrays, from_dataset), (in_order, from_loader)):  # same images, order, draws
        for a, b in zip(expected.model.parameters(), other.model.parameters()):
            torch.testing.assert_close(a, b)
    assert history.params["steps"] == 4
    x_test, y_test = _tensors(32, 2)
    expected = from_arrays.evaluate(x_test, y_test, verbose=0)
    assert from_arrays.evaluate(TensorDataset(x_test, y_test), verbose=0) == pytest.approx(expected)
    probs = from_arrays.predict(DataLoader(TensorDataset(x_test, y_test), batch_size=8), verbose=0)
    np.testing.assert_allclose(probs, from_arrays.predict(x_test, verbose=0), rtol=1e-5, atol=1e-6)


def test_an_endless_generator_with_weights_and_steps():
    rng = np.random.default_rng(0)
    x, y = _toy(96, 0)

    def batches():
        while True:  # Keras' endless generator of (x, y, sample_weight)
            index = rng.integers(0, 96, 16)
            yield x[index], y[index], np.ones(16, dtype=np.float32)

    clf = _clf()
    history = clf.fit(batches(), epochs=2, steps_per_epoch=3, batch_size=16, validation_data=(x[:32], y[:32]),
                      verbose=0)
    assert history.params["steps"] == 3 and len(history.history["loss"]) == 2
    scores = clf.evaluate(((x[i:i + 16], y[i:i + 16]) for i in range(0, 96, 16)), steps=2, return_dict=True,
                          verbose=0)
    assert scores == pytest.approx(clf.evaluate(x[:32], y[:32], return_dict=True, verbose=0))
    with pytest.raises(ValueError, match="x is an array: give its labels as y"):
        clf.fit(x, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"must yield \(x, y\) or \(x, y, sample_weight\) tuples"):
        clf.fit(iter([x[:4]]), verbose=0)


def test_a_generator_gives_fresh_batches_each_epoch_and_running_out_stops_training():
    x, y = _toy(16 * 7, 0)
    names = np.array(["left", "right", "top"])[y]  # string labels: classes learned from the first batches
    given = []

    def batches(count):
        for k in range(count):
            given.append(k)
            yield x[16 * k:16 * (k + 1)], names[16 * k:16 * (k + 1)]

    clf = _clf()
    history = clf.fit(batches(7), epochs=3, steps_per_epoch=2, verbose=0)
    assert len(history.history["loss"]) == 3 and given == list(range(7))  # 6 trained on, 1 read ahead
    assert clf.info.class_names == ["left", "right", "top"]
    given.clear()
    with pytest.warns(UserWarning, match="x ran out of data; training stopped after epoch 2"):
        history = clf.fit(batches(3), epochs=5, steps_per_epoch=2, verbose=0)
    assert len(history.history["loss"]) == 2 and given == [0, 1, 2]
    with pytest.raises(ValueError, match="validation_split needs arrays"):
        clf.fit(batches(3), steps_per_epoch=2, validation_split=0.2, verbose=0)


def test_a_dataloader_is_passed_over_once_per_epoch_with_its_own_shuffle():
    images, labels = _tensors(64, 0)
    read = []

    class Recorded(TensorDataset):
        def __getitem__(self, index):
            read.append(index)
            return super().__getitem__(index)

    loader = DataLoader(Recorded(images, labels), batch_size=16, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    clf = _clf()
    history = clf.fit(loader, epochs=3, verbose=0)
    assert history.params["steps"] == 4 and len(history.history["loss"]) == 3
    assert sorted(read) == sorted(list(range(64)) * 3)  # each image once per epoch
    assert read[:64] != read[64:128]  # a new shuffle each pass
    read.clear()
    clf.fit(loader, epochs=1, steps_per_epoch=3, verbose=0)  # 3 batches; the next epoch would take the 4th
    assert len(read) == 64  # the 4 batches read ahead to build from are the pass's first 4
    bad = DataLoader(TensorDataset(images, labels + 5), batch_size=16)
    with pytest.raises(DataError, match="the labels of the first 4 batches of x holds labels from 5 to 7"):
        _clf().fit(bad, epochs=1, verbose=0)
    late = DataLoader(TensorDataset(torch.cat([images, images[:16]]), torch.cat([labels, labels[:16] + 5])),
                      batch_size=16)
    with pytest.raises(DataError, match="the labels of batch 5 of x holds labels from 5 to 7"):
        _clf().fit(late, epochs=1, verbose=0)


def test_a_folder_of_class_folders_trains_with_its_class_names_through_h5(tmp_path):
    x, y = _toy(60, 0)
    names = ["left", "middle", "right"]
    for i, (image, label) in enumerate(zip(x, y)):
        folder = tmp_path / "photos" / names[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i}.png")
    clf = resnetlab.Classifier("tutorial_cnn", input_shape=(28, 28, 3), device="cpu")
    clf.fit(str(tmp_path / "photos"), epochs=3, batch_size=16, verbose=0)
    assert clf.info.class_names == names
    clf.save(tmp_path / "model.h5")
    again = resnetlab.load(tmp_path / "model.h5")
    predicted = again.predict_labels(x[:20])
    assert set(predicted) <= set(names) and np.array_equal(predicted, clf.predict_labels(x[:20]))
    assert again.evaluate(str(tmp_path / "photos"), return_dict=True, verbose=0)["accuracy"] == pytest.approx(
        clf.evaluate(x, np.array(names, dtype=object)[y], return_dict=True, verbose=0)["accuracy"])


def test_an_iterable_dataset_of_single_items_is_batched_as_a_dataloader_would():
    images, labels = _tensors(48, 0)

    class Items(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(zip(images, labels))

    from_items, from_arrays = _clf(), _clf()  # no length: read into memory, then shuffled as arrays are
    history = from_items.fit(Items(), epochs=1, batch_size=16, verbose=0)
    from_arrays.fit(images, labels, epochs=1, batch_size=16, verbose=0)
    assert history.params["steps"] == 3
    for a, b in zip(from_arrays.model.parameters(), from_items.model.parameters()):
        torch.testing.assert_close(a, b)
    assert from_items.evaluate(Items(), verbose=0) == pytest.approx(from_items.evaluate(images, labels, verbose=0))
    assert from_items.predict(Items(), verbose=0).shape == (48, 3)
    streamed = _clf().fit(Items(), epochs=2, steps_per_epoch=2, batch_size=16, verbose=0)  # with steps: streamed
    assert streamed.params["steps"] == 2 and len(streamed.history["loss"]) == 2


def test_a_loss_of_ones_own_refuses_a_generators_sample_weights():
    x, y = _toy(64, 0)
    clf = _clf()
    clf.compile(optimizer="adam", loss=lambda logits, y: torch.nn.functional.cross_entropy(logits, y), precision="fp32")

    def weighted():
        while True:
            yield x[:16], y[:16], np.ones(16)

    with pytest.raises(resnetlab.errors.UserError, match="a loss function of your own must weight its terms"):
        clf.fit(weighted(), steps_per_epoch=2, verbose=0)
