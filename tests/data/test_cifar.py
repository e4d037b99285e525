from __future__ import annotations

import os
import pickle
import shutil
import tarfile

import numpy as np
import pytest

import resnetlab.data.cifar as cifar
from resnetlab.data import load_dataset
from resnetlab.data.download import file_digest
from resnetlab.errors import DataError

from shared import shared


def _fake_cifar10(rng, per_batch=4):
    """(train images [5*per_batch,3,32,32], train labels, test images, test labels)."""
    train_x = rng.integers(0, 256, (5 * per_batch, 3, 32, 32), dtype=np.uint8)
    train_y = np.arange(5 * per_batch) % 10
    test_x = rng.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
    test_y = (np.arange(per_batch) * 3) % 10
    return train_x, train_y, test_x, test_y


def _write_binary10(folder, arrays):
    train_x, train_y, test_x, test_y = arrays
    folder.mkdir(parents=True, exist_ok=True)
    per = len(train_x) // 5
    for b in range(5):
        rows = np.concatenate([train_y[b * per:(b + 1) * per, None].astype(np.uint8),
                               train_x[b * per:(b + 1) * per].reshape(per, -1)], axis=1)
        rows.tofile(folder / f"data_batch_{b + 1}.bin")
    np.concatenate([test_y[:, None].astype(np.uint8), test_x.reshape(len(test_x), -1)], 1).tofile(
        folder / "test_batch.bin")
    (folder / "batches.meta.txt").write_text("\n".join(cifar.CIFAR10_CLASSES) + "\n\n")


def _write_python10(folder, arrays):
    train_x, train_y, test_x, test_y = arrays
    folder.mkdir(parents=True, exist_ok=True)
    per = len(train_x) // 5
    for b in range(5):
        batch = {b"data": train_x[b * per:(b + 1) * per].reshape(per, -1), b"labels": train_y[b * per:(b + 1) * per]
                 .tolist(), b"batch_label": b"training batch"}
        (folder / f"data_batch_{b + 1}").write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": test_x.reshape(len(test_x), -1),
                                                      b"labels": test_y.tolist()}, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [n.encode() for n in cifar.CIFAR10_CLASSES]},
                                                       protocol=2))


@pytest.mark.parametrize("writer, sub", [(_write_binary10, "cifar-10-batches-bin"), (_write_python10, "")])
def test_both_official_versions_read_the_same(tmp_path, writer, sub):
    arrays = _fake_cifar10(np.random.default_rng(0))
    writer(tmp_path / sub if sub else tmp_path, arrays)
    data = load_dataset("cifar10", data_dir=str(tmp_path), val_fraction=0, download=False, verify=False)  # fakes
    assert np.array_equal(data.train.images.numpy(), arrays[0])  # R plane, G plane, B plane: CHW as stored
    assert data.train.labels.tolist() == arrays[1].tolist()
    assert np.array_equal(data.test.images.numpy(), arrays[2]) and data.test.labels.tolist() == arrays[3].tolist()
    assert data.class_names == cifar.CIFAR10_CLASSES and data.flip and data.crop_padding == 4


def test_cifar100_fine_and_coarse(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (6, 3072), dtype=np.uint8)
    coarse, fine = np.arange(6) % 20, (np.arange(6) * 7) % 100
    for split in ("train", "test"):
        np.concatenate([coarse[:, None], fine[:, None], images], 1).astype(np.uint8).tofile(tmp_path / f"{split}.bin")
    (tmp_path / "fine_label_names.txt").write_text("\n".join(f"fine{i}" for i in range(100)))
    (tmp_path / "coarse_label_names.txt").write_text("\n".join(f"coarse{i}" for i in range(20)))
    fine_set = load_dataset("cifar100", data_dir=str(tmp_path), val_fraction=0, download=False, verify=False)
    coarse_set = load_dataset("cifar100-coarse", data_dir=str(tmp_path), val_fraction=0, download=False, verify=False)
    assert fine_set.train.labels.tolist() == fine.tolist() and fine_set.class_names[7] == "fine7"
    assert coarse_set.train.labels.tolist() == coarse.tolist() and len(coarse_set.class_names) == 20


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch EXPLOITED",))


def test_crafted_pickle_is_refused_without_running_anything(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_python10(tmp_path, _fake_cifar10(np.random.default_rng(0)))
    (tmp_path / "data_batch_3").write_bytes(pickle.dumps({b"data": _Exploit(), b"labels": [0]}, protocol=2))
    with pytest.raises(DataError, match=r"refused to load posix.system|refused to load os.system") as err:
        load_dataset("cifar10", data_dir=str(tmp_path), download=False, verify=False)
    assert "nothing in it was run" in str(err.value)
    assert not (tmp_path / "EXPLOITED").exists()


def test_truncated_binary_and_missing_files(tmp_path):
    _write_binary10(tmp_path, _fake_cifar10(np.random.default_rng(0)))
    data = (tmp_path / "data_batch_2.bin").read_bytes()
    (tmp_path / "data_batch_2.bin").write_bytes(data[:-100])
    with pytest.raises(DataError, match="not a whole number of 3073-byte CIFAR records"):
        load_dataset("cifar10", data_dir=str(tmp_path), download=False, verify=False)
    (tmp_path / "data_batch_2.bin").unlink()
    with pytest.raises(DataError, match="missing data_batch_2.bin"):
        load_dataset("cifar10", data_dir=str(tmp_path), download=False, verify=False)
    with pytest.raises(DataError, match="place them in") as err:
        load_dataset("cifar10", data_dir=str(tmp_path / "empty"), download=False)
    assert "cifar-10-binary.tar.gz" in str(err.value) and "c32a1d4ab5d03f1284b67883e8d87530" in str(err.value)


def test_download_verify_extract_from_a_mirror(tmp_path, monkeypatch):
    """The real path: archive fetched (file:// mirror), MD5 checked, extracted, read."""
    staging = tmp_path / "staging"
    _write_binary10(staging / "cifar-10-batches-bin", _fake_cifar10(np.random.default_rng(2)))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with tarfile.open(mirror / "cifar-10-binary.tar.gz", "w:gz") as tar:
        tar.add(staging / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
    archives = {**cifar.ARCHIVES, "cifar10": dict(cifar.ARCHIVES["cifar10"])}
    archives["cifar10"]["binary"] = ("cifar-10-binary.tar.gz", file_digest(mirror / "cifar-10-binary.tar.gz"),
                                     "cifar-10-batches-bin")
    monkeypatch.setattr(cifar, "ARCHIVES", archives)
    fakes = {file.name: file_digest(file, "sha1") for file in (staging / "cifar-10-batches-bin").glob("*_batch*.bin")}
    monkeypatch.setitem(cifar.EXTRACTED, ("cifar10", "binary"), fakes)  # extracted files are checked too
    monkeypatch.setenv("RESNETLAB_MIRROR", str(mirror))
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path / "cache"))
    data = load_dataset("cifar10", val_fraction=0)
    assert len(data.train) == 20 and (tmp_path / "cache" / "cifar10" / "cifar-10-binary.tar.gz").is_file()
    shutil.rmtree(mirror)  # second time: from the cache, no download
    assert len(load_dataset("cifar10", val_fraction=0).train) == 20


def test_shared_cifar10_official_counts_order_and_names():
    folder = shared("cifar10")
    data = load_dataset("cifar10", data_dir=str(folder), val_fraction=0, download=False, verify=False)  # JPEG copy
    assert (len(data.train), len(data.test)) == (50_000, 10_000)
    assert data.train.labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]  # as in the official files
    assert data.test.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert data.train.labels.bincount().tolist() == [5000] * 10
    assert data.class_names[0] == "airplane" and data.class_names[9] == "truck"
    split = load_dataset("cifar10", data_dir=str(folder), download=False, verify=False)  # 45,000 / 5,000 (He et al.)
    assert (len(split.train), len(split.val)) == (45_000, 5_000)
    assert split.val.labels.bincount().tolist() == [500] * 10
