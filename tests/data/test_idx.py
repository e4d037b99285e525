from __future__ import annotations

import gzip

import numpy as np
import pytest

from resnetlab.data import load_dataset
from resnetlab.data.idx import read_idx
from resnetlab.errors import DataError

from shared import shared


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_read_idx_gzipped_and_raw(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.gz").write_bytes(gzip.compress(_idx(images)))
    (tmp_path / "a").write_bytes(_idx(images))
    assert np.array_equal(read_idx(tmp_path / "a.gz"), images)
    assert np.array_equal(read_idx(tmp_path / "a"), images)


def test_read_idx_errors(tmp_path):
    (tmp_path / "magic").write_bytes(b"\x12\x34\x56\x78" + b"\x00" * 20)
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "magic")
    (tmp_path / "short").write_bytes(_idx(np.zeros((5, 4, 4)))[:-7])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(DataError, match="could not be read"):
        read_idx(tmp_path / "bad.gz")


def test_mnist_style_folder(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 10)):
        (tmp_path / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(_idx(rng.integers(0, 256, (n, 28, 28)))))
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(np.arange(n) % 10))  # uncompressed works too
    data = load_dataset("kmnist", data_dir=str(tmp_path), download=False, verify=False)  # fake files
    assert (len(data.train), len(data.val), len(data.test)) == (27, 3, 10)
    assert data.image_shape == (1, 28, 28) and data.class_names[0] == "o"
    assert not data.flip  # characters are not mirror-symmetric


@pytest.mark.parametrize("name, first_train, first_test, names", [
    ("mnist", [5, 0, 4, 1, 9, 2, 1, 3, 1, 4], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9], ("0", "9")),
    ("fashion-mnist", [9, 0, 0, 3, 0, 2, 7, 2, 5, 5], [9, 2, 1, 1, 6, 1, 4, 6, 5, 7], ("T-shirt/top", "Ankle boot")),
])
def test_shared_mnist_style_official_files(name, first_train, first_test, names):
    data = load_dataset(name, data_dir=str(shared(name)), val_fraction=0, download=False)
    assert (len(data.train), len(data.test)) == (60_000, 10_000)
    assert data.train.labels[:10].tolist() == first_train and data.test.labels[:10].tolist() == first_test
    assert (data.class_names[0], data.class_names[-1]) == names
    assert data.train.images.shape == (60_000, 1, 28, 28)
