from __future__ import annotations

import numpy as np
import pytest

from resnetlab.data import load_dataset
from resnetlab.errors import DataError


def test_keras_style_npz(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.integers(0, 255, (40, 12, 12, 3), dtype=np.uint8),
             y_train=np.arange(40) % 4, x_test=rng.integers(0, 255, (8, 12, 12, 3), dtype=np.uint8),
             y_test=np.arange(8) % 4, class_names=np.array(["a", "b", "c", "d"]))
    data = load_dataset(str(tmp_path / "d.npz"))
    assert (len(data.train), len(data.val), len(data.test)) == (36, 4, 8)
    assert data.image_shape == (3, 12, 12) and data.class_names == ["a", "b", "c", "d"]


def test_labels_shaped_n_by_1_as_keras_datasets_give_them(tmp_path):
    # keras.datasets.cifar10.load_data() returns y_train of shape (50000, 1)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "k.npz", x_train=rng.integers(0, 255, (40, 8, 8, 3), dtype=np.uint8),
             y_train=(np.arange(40) % 4).reshape(-1, 1))
    data = load_dataset(str(tmp_path / "k.npz"), val_fraction=0)
    assert data.class_names == ["0", "1", "2", "3"]
    assert data.train.labels.tolist() == [i % 4 for i in range(40)]


def test_grayscale_npz_and_errors(tmp_path):
    np.savez(tmp_path / "g.npz", x_train=np.zeros((10, 8, 8), np.uint8), y_train=np.arange(10) % 2)
    assert load_dataset(str(tmp_path / "g.npz")).image_shape == (1, 8, 8)
    np.savez(tmp_path / "one.npz", x_train=np.zeros((4, 8, 8), np.uint8), y_train=np.zeros(4))
    with pytest.raises(DataError, match="single class"):
        load_dataset(str(tmp_path / "one.npz"))
    np.savez(tmp_path / "len.npz", x_train=np.zeros((4, 8, 8), np.uint8), y_train=np.arange(3))
    with pytest.raises(DataError, match="3 labels for 4 images"):
        load_dataset(str(tmp_path / "len.npz"))
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = np.zeros((8, 8)), np.zeros((9, 9))
    np.savez(tmp_path / "ragged.npz", x_train=ragged, y_train=np.arange(2))
    with pytest.raises(DataError, match="object array"):
        load_dataset(str(tmp_path / "ragged.npz"))
    np.savez(tmp_path / "sizes.npz", x_train=np.zeros((4, 8, 8), np.uint8), y_train=np.arange(4) % 2,
             x_test=np.zeros((2, 9, 9), np.uint8), y_test=np.arange(2))
    with pytest.raises(DataError, match="x_test has images of 9x9"):
        load_dataset(str(tmp_path / "sizes.npz"))
    np.savez(tmp_path / "keys.npz", pictures=np.zeros((4, 8, 8)))
    with pytest.raises(DataError, match="expected x_train and y_train"):
        load_dataset(str(tmp_path / "keys.npz"))
    (tmp_path / "junk.npz").write_text("no zip here")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_dataset(str(tmp_path / "junk.npz"))
