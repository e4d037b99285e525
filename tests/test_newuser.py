"""What a new user trips over on the command line (issue 16): each test failed before its fix."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from resnetlab.cli import main
from resnetlab.data.idx import load_idx_dataset
from resnetlab.errors import DataError


def test_key_value_words_after_a_flag_are_taken(digits_run, capsys):
    # was: "unrecognized arguments: split=val" and the top-level usage
    assert main(["evaluate", str(digits_run.best_path), "--json", "--no-report", "split=val"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert main(["evaluate", str(digits_run.best_path), "split=val", "--json", "--no-report"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == after["accuracy"]


def test_an_unknown_flag_is_still_refused(digits_run, capsys):
    assert main(["evaluate", str(digits_run.best_path), "--json", "--jsno"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown option 'jsno'; did you mean 'json'?; `resnetlab evaluate` takes data, split")
    assert len(err.splitlines()) == 1


def test_predict_into_a_closed_pipe_says_nothing(digits_run, tmp_path):
    for i in range(40):
        Image.fromarray(np.full((8, 8), 16 * (i % 16), np.uint8)).save(tmp_path / f"{i}.png")
    shell = (f"{sys.executable} -m resnetlab predict {digits_run.best_path} {tmp_path} --json --backend torch "
             f"| head -c 10")
    done = subprocess.run(["sh", "-c", shell], capture_output=True, text=True, timeout=120)
    assert len(done.stdout) == 10
    assert "Broken pipe" not in done.stderr and "Traceback" not in done.stderr, done.stderr  # was: error: [Errno 32]


def test_a_missing_kmnist_lists_all_four_files(tmp_path):
    with pytest.raises(DataError) as caught:
        load_idx_dataset("kmnist", data_dir=str(tmp_path), download=False)
    message = str(caught.value)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        assert name in message  # was: only the first
    assert str(tmp_path) in message


def _colour_folder(root, per_class: int = 6):
    from imagefolder import class_image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label, name in enumerate(("red", "green", "blue")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(class_image(label, rng)).save(folder / f"{i}.png")


def test_a_model_trained_on_a_relative_folder_evaluates_from_another_folder(tmp_path, monkeypatch, capsys):
    import resnetlab

    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    _colour_folder(work / "shapes")
    elsewhere.mkdir()
    monkeypatch.chdir(work)
    result = resnetlab.train(model="resnet20", data="shapes/", epochs=1, batch_size=8, project=str(tmp_path / "runs"),
                             display="none", plots=False, tensorboard=False, checkpoint_minutes=0)
    info = resnetlab.read_info(result.best_path)
    assert info.training["dataset"] == "shapes/" and info.training["dataset_path"] == str(work / "shapes")
    monkeypatch.chdir(elsewhere)  # was: unknown dataset 'shapes/'
    assert main(["evaluate", str(result.best_path), "--json", "--no-report"]) == 0
    assert json.loads(capsys.readouterr().out)["num_samples"] == 18


def test_int8_without_calibration_data_says_how_to_give_some(tmp_path, capsys):
    import resnetlab

    clf = resnetlab.Classifier("resnet20", num_classes=3, input_shape=(16, 16, 3), device="cpu")
    from imagefolder import class_image

    rng = np.random.default_rng(1)
    x = np.stack([class_image(i % 3, rng) for i in range(12)])
    clf.fit(x, np.arange(12) % 3, epochs=1, batch_size=4, verbose=0)
    path = clf.save(tmp_path / "clf.safetensors")
    _colour_folder(tmp_path / "images", per_class=3)
    one = str(tmp_path / "images" / "test" / "red" / "0.png")
    assert main(["predict", str(path), one, "--precision", "int8"]) == 2
    err = capsys.readouterr().err  # was: "no backend could run this model at precision=int8", nothing more
    assert "names no dataset" in err and "calibration=FOLDER" in err
    assert main(["predict", str(path), one, "precision=int8", f"calibration={tmp_path / 'images'}", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)[0]["top"]) == 3  # calibrated on the folder, predicted


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_data_inspect_and_data_path_recognize_an_official_folder(tmp_path, capsys):
    import gzip

    from resnetlab.data import load_dataset

    rng = np.random.default_rng(0)
    idx = tmp_path / "mnist-copy"
    idx.mkdir()
    for prefix, n in (("train", 30), ("t10k", 10)):
        (idx / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(rng.integers(0, 256, (n, 28, 28)))))
        (idx / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(np.arange(n) % 10)))
    cifar = tmp_path / "cifar" / "cifar-10-batches-bin"  # the archive's own subfolder
    cifar.mkdir(parents=True)
    for b in range(5):
        np.concatenate([np.full((2, 1), b, np.uint8), rng.integers(0, 256, (2, 3072), dtype=np.uint8)], 1).tofile(
            cifar / f"data_batch_{b + 1}.bin")
    np.concatenate([np.full((3, 1), 7, np.uint8), rng.integers(0, 256, (3, 3072), dtype=np.uint8)], 1).tofile(
        cifar / "test_batch.bin")
    # was: "has no class folders"
    assert main(["data", "inspect", str(idx), "--verify", "false", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["source"] == "mnist" and sum(report["counts"]["train"]) == 30 and report["counts"]["test"][0] == 1
    assert main(["data", "inspect", str(tmp_path / "cifar"), "verify=false", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["source"] == "cifar10" and report["counts"]["test"][7] == 3 and sum(report["counts"]["train"]) == 10
    data = load_dataset(str(tmp_path / "cifar"), verify=False, val_fraction=0)  # data=PATH too
    assert data.name == "cifar10" and len(data.train) == 10 and data.image_shape == (3, 32, 32)


def test_a_torchscript_archive_is_named_after_its_file(digits_run, tmp_path, capsys):
    import zipfile

    out = tmp_path / "digits.pt"
    assert main(["export", str(digits_run.best_path), "format=torchscript", f"out={out}"]) == 0
    names = zipfile.ZipFile(out).namelist()
    assert {name.split("/")[0] for name in names} == {"digits"}  # was: a temporary file's name
    assert not [p for p in tmp_path.iterdir() if p.name != "digits.pt"]  # no temporary file left beside it


def test_info_on_a_pickle_or_a_torchscript_export_says_what_to_do(digits_run, tmp_path, capsys):
    import torch

    pth = tmp_path / "weights.pth"
    torch.save(torch.nn.Linear(2, 2).state_dict(), pth)
    assert main(["info", str(pth)]) == 2
    assert f"resnetlab import-weights {pth} arch=ARCH" in capsys.readouterr().err  # was: create_model + load_state_dict
    exported = tmp_path / "c10.pt"
    assert main(["export", str(digits_run.best_path), "format=torchscript", f"out={exported}"]) == 0
    capsys.readouterr()
    for argv in (["info", str(exported)], ["train", f"weights={exported}", "epochs=1"]):
        assert main(argv) == 2
        err = capsys.readouterr().err  # was: weights=c10.pt suggested, then a raw torch error
        assert "is a TorchScript program" in err and "torch.jit.load" in err and "Traceback" not in err


def test_a_csv_manifest_with_a_filename_class_header(tmp_path, capsys):
    from resnetlab.data import load_dataset

    for i in range(6):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "named.csv").write_text("Filename,Class\n" + "".join(f"{i}.png,{'ab'[i % 2]}\n" for i in range(6)))
    data = load_dataset(str(tmp_path / "named.csv"), val_fraction=0)  # was: a phantom class "class"
    assert data.class_names == ["a", "b"] and len(data.train) == 6
    (tmp_path / "odd.csv").write_text("picture,kind\n" + "".join(f"{i}.png,{i % 2}\n" for i in range(6)))
    with pytest.raises(DataError, match="looks like a header, but none of its columns is a path column"):
        load_dataset(str(tmp_path / "odd.csv"), val_fraction=0)
    (tmp_path / "plain.csv").write_text("".join(f"{i}.png,{i % 2}\n" for i in range(6)))  # no header: as before
    assert len(load_dataset(str(tmp_path / "plain.csv"), val_fraction=0).train) == 6


def test_path_column_and_label_column_name_a_manifests_columns(tmp_path, capsys):
    import resnetlab
    from resnetlab.data import load_dataset

    _colour_folder(tmp_path / "shapes", per_class=4)
    rows = [f"{p.relative_to(tmp_path)},{p.parent.name},{p.parent.parent.name}"
            for p in sorted((tmp_path / "shapes").glob("*/*/*.png"))]
    manifest = tmp_path / "odd.csv"
    manifest.write_text("picture,kind,split\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match="or name it with path_column="):
        load_dataset(str(manifest))
    data = load_dataset(str(manifest), path_column="Picture", label_column="kind")  # case-insensitive
    assert data.class_names == ["blue", "green", "red"] and len(data.test) == 12
    with pytest.raises(DataError, match=r"label_column=species names no column .* give one of picture, kind, split"):
        load_dataset(str(manifest), path_column="picture", label_column="species")
    with pytest.raises(DataError, match="cannot hold both the paths and the labels"):
        load_dataset(str(manifest), path_column="kind", label_column="kind")
    with pytest.raises(DataError, match="name a .csv manifest's columns, and digits is no .csv file"):
        load_dataset("digits", label_column="kind")

    assert main(["data", "inspect", str(manifest), "--json", "path_column=picture", "label_column=kind"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"] == {"train": 12, "test": 12}
    result = resnetlab.train(model="resnet20", data=str(manifest), path_column="picture", label_column="kind",
                             epochs=1, batch_size=8, project=str(tmp_path / "runs"), display="none", plots=False,
                             tensorboard=False, checkpoint_minutes=0)
    assert main(["evaluate", str(result.best_path), "--json", "--no-report"]) == 0  # the columns as trained
    assert json.loads(capsys.readouterr().out)["num_samples"] == 12
