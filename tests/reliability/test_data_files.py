"""Dataset files that are wrong, hostile or unlucky: a look-alike dataset in data_dir, absurd labels, YAML bombs,
exotic image modes, crafted CIFAR pickles, lying IDX and NPZ headers, odd file names and unreadable folders.

Every case must end as one DataError/ConfigError line (or a BadImageError for that one image) naming the file,
quickly and before any run folder exists; none may allocate what a header claims."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import resnetlab
import resnetlab.data.cifar as cifar
import resnetlab.data.idx as idx
import resnetlab.data.verify as verify
from resnetlab.config import Config, load_config, save_config
from resnetlab.data import load_dataset
from resnetlab.data.folder import discover_folder, read_manifest
from resnetlab.data.images import BadImageError, load_image, read_for_model
from resnetlab.data.inspect import inspect_dataset
from resnetlab.data.scan import scan_file
from resnetlab.errors import ConfigError, DataError
from resnetlab.training.run import _write_skipped, load_run_data


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path / "cache"))


def _one_line(exc: pytest.ExceptionInfo, *parts: str) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, (part, message)
    return message


# --- A. official files are checked against their published checksums, wherever they were found --------------

def _idx_bytes(array: np.ndarray, type_byte: int = 0x08) -> bytes:
    header = bytes([0, 0, type_byte, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def _mnist_files(folder: Path, seed: int) -> list[Path]:
    """Four small gzipped IDX files in the official names (30 train + 10 test images, 10 classes)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for prefix, count in (("train", 30), ("t10k", 10)):
        for kind, array in (("images-idx3", rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)),
                            ("labels-idx1", ((np.arange(count) + seed) % 10).astype(np.uint8))):
            path = folder / f"{prefix}-{kind}-ubyte.gz"
            path.write_bytes(gzip.compress(_idx_bytes(array), mtime=0))
            paths.append(path)
    return paths  # idx.FILES order


@pytest.fixture
def official_mnist(tmp_path, monkeypatch):
    """Fake "official" MNIST and Fashion-MNIST: the published-MD5 tables point at two synthetic sets."""
    digits = _mnist_files(tmp_path / "mnist", 0)
    clothes = _mnist_files(tmp_path / "fashion", 1)
    for name, files in (("mnist", digits), ("fashion-mnist", clothes)):
        mirrors, _, names, stats = idx.SOURCES[name]
        md5s = tuple(verify.file_digest(p, "md5") for p in files)
        monkeypatch.setitem(idx.SOURCES, name, (mirrors, md5s, names, stats))
    return tmp_path


def test_fashion_mnist_folder_given_as_mnist_is_refused_naming_both_hashes(official_mnist):
    with pytest.raises(DataError) as err:
        load_dataset("mnist", data_dir=str(official_mnist / "fashion"), download=False)
    expected = idx.SOURCES["mnist"][1][0]
    found = verify.file_digest(official_mnist / "fashion" / "train-images-idx3-ubyte.gz", "md5")
    _one_line(err, "train-images-idx3-ubyte.gz", expected, found, "verify=false", "fashion-mnist's")
    assert len(load_dataset("mnist", data_dir=str(official_mnist / "mnist"), download=False).test) == 10


def test_verify_false_accepts_a_copy_and_the_run_says_so(official_mnist, capsys):
    config = Config()
    config.data.name, config.data.data_dir, config.data.verify = "mnist", str(official_mnist / "fashion"), False
    data = load_run_data(config)
    assert data.notes["verify"] == "off" and len(data.train) == 27
    assert "verify=false" in capsys.readouterr().out  # a warning line, and config.yaml keeps the setting
    save_config(config, official_mnist / "config.yaml")
    assert load_config(official_mnist / "config.yaml").data.verify is False


def test_verdict_is_cached_by_path_size_and_mtime(official_mnist, monkeypatch):
    calls = []
    real = verify.file_digest
    monkeypatch.setattr(verify, "file_digest", lambda path, algorithm: calls.append(path) or real(path, algorithm))
    folder = str(official_mnist / "mnist")
    load_dataset("mnist", data_dir=folder, download=False)
    assert len(calls) == 4
    load_dataset("mnist", data_dir=folder, download=False)
    assert len(calls) == 4  # nothing re-hashed: size and mtime unchanged
    labels = official_mnist / "mnist" / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(_idx_bytes((np.arange(10) % 10).astype(np.uint8)[::-1].copy()), mtime=0))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz is not the official"):
        load_dataset("mnist", data_dir=folder, download=False)
    assert calls[-1] == labels


def test_extracted_cifar_files_are_checked_too(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    record = np.zeros((2, 3073), np.uint8)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        record.tofile(folder / name)
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", data_dir=str(tmp_path), download=False)
    _one_line(err, "data_batch_1.bin", cifar.EXTRACTED[("cifar10", "binary")]["data_batch_1.bin"],
              verify.file_digest(folder / "data_batch_1.bin", "sha1"), "verify=false")
    assert len(load_dataset("cifar10", data_dir=str(tmp_path), download=False, verify=False).train) == 9


# --- B. integer labels are bounded before anything is sized by them ----------------------------------------

def test_manifest_label_of_99999999999_names_file_and_line(tmp_path):
    (tmp_path / "list.csv").write_text("path,label\na.png,0\nb.png,99999999999\n")
    with pytest.raises(DataError) as err:
        read_manifest(tmp_path / "list.csv")
    _one_line(err, "list.csv, line 3", "99999999999")
    with pytest.raises(DataError, match="line 3"):
        inspect_dataset(str(tmp_path / "list.csv"))


def test_npz_label_of_1e9_names_file_and_row(tmp_path):
    np.savez(tmp_path / "big.npz", x_train=np.zeros((3, 8, 8), np.uint8), y_train=np.array([0.0, 1.0, 1e9]))
    with pytest.raises(DataError) as err:
        load_dataset(str(tmp_path / "big.npz"))
    _one_line(err, "big.npz:y_train[2]", "1e+09")


# --- C. YAML settings are bounded: size, alias expansion, encoding -----------------------------------------

def _laughs(level: int) -> str:
    """Flow YAML whose level-`level` list holds nine of the level below: 9^(level + 1) x's once expanded."""
    if level == 0:
        return "&a [x, x, x, x, x, x, x, x, x]"
    return f"&{chr(97 + level)} [{_laughs(level - 1)}" + f", *{chr(96 + level)}" * 8 + "]"


BILLION_LAUGHS = f"train:\n  milestones: {_laughs(8)}\n"  # under a real setting, as in the report


def test_yaml_alias_bomb_is_refused_naming_the_file(tmp_path):
    (tmp_path / "bomb.yaml").write_text(BILLION_LAUGHS)
    assert len(BILLION_LAUGHS) < 400
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "bomb.yaml")
    _one_line(err, "bomb.yaml", "billion laughs")
    (tmp_path / "loop.yaml").write_text("train: &t {milestones: *t}\n")
    with pytest.raises(ConfigError, match="loop.yaml"):
        load_config(tmp_path / "loop.yaml")
    with pytest.raises(ConfigError):  # the same bound on a list given on the command line
        load_config(overrides={"milestones": _laughs(8)})


def test_yaml_size_cap_and_non_utf8(tmp_path):
    (tmp_path / "huge.yaml").write_text("# padding\n" * 120_000)
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "huge.yaml")
    _one_line(err, "huge.yaml", "at most")
    (tmp_path / "latin1.yaml").write_bytes("run:\n  name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "latin1.yaml")
    _one_line(err, "latin1.yaml", "not UTF-8")
    (tmp_path / "fine.yaml").write_text("train:\n  milestones: &m [3, 6]\n  milestone_steps: *m\n")
    assert load_config(tmp_path / "fine.yaml").train.milestone_steps == [3, 6]  # ordinary aliases still work


# --- D. any image mode, any decoder failure: converted, or a BadImageError for that file ---------------------

def test_cielab_tiff_converts_for_rgb_and_grayscale_models(tmp_path):
    Image.new("LAB", (6, 4), (136, 208, 195)).save(tmp_path / "red.tif")  # L* 53, a* 80, b* 67: sRGB red
    assert Image.open(tmp_path / "red.tif").mode == "LAB"
    red, green, blue = load_image(tmp_path / "red.tif").getpixel((0, 0))
    assert red > 200 and green < 60 and blue < 60
    assert load_image(tmp_path / "red.tif", channels=1).mode == "L"
    assert read_for_model(tmp_path / "red.tif", (1, 8, 8)).shape == (1, 8, 8)  # predict on a grayscale model
    assert scan_file(str(tmp_path / "red.tif")).ok


def test_unexpected_decoder_exceptions_become_bad_image_errors(tmp_path, monkeypatch):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")

    def crash(*_args, **_kwargs):
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(Image, "open", crash)
    with pytest.raises(BadImageError, match="a.png: could not be decoded .*decoder bug"):
        load_image(tmp_path / "a.png")
    assert "decoder bug" in scan_file(str(tmp_path / "a.png")).error  # train on_bad_image=skip lists it


def test_unconvertible_mode_is_a_bad_image(tmp_path, monkeypatch):  # as LAB -> L is in Pillow 13
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    def convert(self, mode=None, *_args, **_kwargs):
        raise ValueError(f"conversion from {self.mode} to {mode} not supported")

    monkeypatch.setattr(Image.Image, "convert", convert)
    with pytest.raises(BadImageError, match="a.png: its RGB pixels cannot be converted"):
        load_image(tmp_path / "a.png")


# --- E. damaged or hostile dataset files: one DataError line, before any run folder -------------------------

def _cifar_python(folder: Path, batch_3: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]},
                                                     protocol=2))
    (folder / "data_batch_3").write_bytes(batch_3)


def _batch(labels: object) -> bytes:
    return pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": labels}, protocol=2)


BAD_CODEC = b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86R."
HUGE_BINBYTES8 = b"\x80\x04\x8e" + struct.pack("<Q", 2**62) + b"abc"


@pytest.mark.parametrize("batch_3, message", [
    (BAD_CODEC, "refused codec 'rot13'"),
    (HUGE_BINBYTES8, "larger than memory"),
    (_batch("abc"), "'labels' must be a flat list of integer labels"),
    (_batch([[1, 2], [3]]), "'labels' must be a flat list"),
    (_batch([0, 1, 2]), "3 labels for 2 images"),
    (_batch([0, -3]), "labels range from -3"),
])
def test_crafted_cifar_python_batches(tmp_path, batch_3, message):
    _cifar_python(tmp_path, batch_3)
    with pytest.raises(DataError) as err:
        inspect_dataset("cifar10", data_dir=str(tmp_path), verify=False)
    _one_line(err, message)


def test_negative_cifar_label_stops_training_before_the_run_folder(tmp_path):
    _cifar_python(tmp_path / "data", _batch([0, -3]))
    with pytest.raises(DataError, match="-3"):
        resnetlab.train(data="cifar10", data_dir=str(tmp_path / "data"), verify=False, epochs=1,
                        project=str(tmp_path / "runs"), display="none")
    assert not (tmp_path / "runs").exists()


def test_non_utf8_manifest_is_one_line(tmp_path):
    (tmp_path / "list.csv").write_bytes("path,label\ncaf\xe9.png,cat\n".encode("latin-1"))
    with pytest.raises(DataError) as err:
        load_dataset(str(tmp_path / "list.csv"))
    _one_line(err, "list.csv is not UTF-8")


def test_npz_object_arrays_and_lying_headers(tmp_path):
    np.savez(tmp_path / "names.npz", x_train=np.zeros((2, 8, 8), np.uint8), y_train=np.array([0, 1]),
             class_names=np.array(["cat", None], dtype=object))
    with pytest.raises(DataError) as err:
        load_dataset(str(tmp_path / "names.npz"))
    _one_line(err, "names.npz: class_names is an object array")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (2**40, 8, 8)})
    with zipfile.ZipFile(tmp_path / "liar.npz", "w") as archive:  # a header claiming 64 TiB, and no data
        archive.writestr("x_train.npy", header.getvalue())
        archive.writestr("y_train.npy", b"")
    with pytest.raises(DataError) as err:
        load_dataset(str(tmp_path / "liar.npz"))
    _one_line(err, "liar.npz: x_train.npy claims an array")


@pytest.mark.parametrize("content, message", [
    (bytes([0, 0, 8, 4]) + (65536).to_bytes(4, "big") * 4, "needs"),  # 65536^4 elements, no data
    (b"", "is empty"),
    (bytes([0, 0, 8, 3, 0, 0]), "ends inside its IDX header"),
])
def test_idx_headers_are_checked_against_the_file_size(tmp_path, content, message):
    for name in ("lie", "lie.gz"):
        (tmp_path / name).write_bytes(gzip.compress(content) if name.endswith(".gz") else content)
        with pytest.raises(DataError) as err:
            idx.read_idx(tmp_path / name)
        _one_line(err, name, message)


@pytest.mark.parametrize("labels, message", [
    (np.array([0, -1, 2], np.int8), "labels from -1 to 2"),
    (np.array([0, 1, 12], np.uint8), "labels from 0 to 12"),
])
def test_idx_labels_out_of_range(tmp_path, labels, message):
    for prefix in ("train", "t10k"):
        (tmp_path / f"{prefix}-images-idx3-ubyte").write_bytes(_idx_bytes(np.zeros((3, 28, 28), np.uint8)))
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx_bytes(labels, 0x09 if labels.dtype == np.int8
                                                                                  else 0x08))
    with pytest.raises(DataError) as err:
        load_dataset("kmnist", data_dir=str(tmp_path), download=False, verify=False)
    _one_line(err, "train-labels-idx1-ubyte", message)


# --- F. odd names, unreadable files and folders, symlink loops ----------------------------------------------

def test_skipped_list_keeps_a_newline_in_a_file_name_on_one_line(tmp_path, capsys):
    skipped = [("photos/cat/evil\nname.png", "truncated or corrupt image"), ("photos/a\tb.png", "empty file")]
    _write_skipped(tmp_path, skipped)
    lines = (tmp_path / "skipped.txt").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"path": p, "reason": r} for p, r in skipped]
    assert "evil\\nname.png" in capsys.readouterr().out


def test_permission_denied_is_said_so(tmp_path, monkeypatch):
    Image.new("RGB", (4, 4)).save(tmp_path / "locked.png")

    def denied(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "locked.png"))

    monkeypatch.setattr(Image, "open", denied)  # tests run as root, where chmod 000 does not stop reads
    with pytest.raises(BadImageError, match="locked.png: permission denied") as err:
        load_image(tmp_path / "locked.png")
    assert "corrupt" not in str(err.value)


def test_unreadable_subfolder_is_an_error_naming_it(tmp_path, monkeypatch):
    for label in ("cat", "dog"):
        (tmp_path / label / "inner").mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(tmp_path / label / "a.png")
    locked = tmp_path / "dog" / "inner"
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path) == locked:  # as chmod 000 would, for a user other than root
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(DataError) as err:
        discover_folder(tmp_path)
    _one_line(err, str(locked), "permission denied")


def test_symlink_loop_is_reported_by_inspect(tmp_path):
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        Image.new("RGB", (4, 4)).save(tmp_path / label / "a.png")
    (tmp_path / "cat" / "again").symlink_to(tmp_path / "cat", target_is_directory=True)
    with pytest.raises(DataError) as err:
        inspect_dataset(str(tmp_path))
    _one_line(err, "cat/again", "symbolic link loop")
