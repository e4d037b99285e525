"""Published weights by name, end to end through the CLI and the Keras-style API.

Every file comes from the synthetic publishers of conftest.py through RESNETLAB_MIRROR (the official URLs
are unreachable), so each result can be compared with the published model itself: the CLI must give what
that model gives on the same file, preprocessed as the entry says (resize, crop, mean/std).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import resnetlab
from resnetlab.cli import main
from resnetlab.data.cifar import CIFAR10_CLASSES
from resnetlab.data.images import read_for_model
from resnetlab.weights import weights_dir
from resnetlab.weights.load import class_names

from imagefolder import class_image
from weightfiles import sha256

AKAMASTER_URL = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/resnet20-12fca82f.th"


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """A 300x200 RGB PNG: not square, not the model's size, so the resize and the crop both matter."""
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    pixels = np.random.default_rng(3).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(path)
    return path


@pytest.fixture(scope="module")
def cifar_folder(tmp_path_factory) -> Path:
    """FOLDER/train|test/<the 10 CIFAR-10 classes>/*.png, 32x32: 2 training and 3 test images a class, each a
    random colour with noise (the synthetic resnet20 then predicts more than one class: pure noise gets one)."""
    root = tmp_path_factory.mktemp("cifar-like")
    rng = np.random.default_rng(5)
    for split, count in (("train", 2), ("test", 3)):
        for name in CIFAR10_CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, 3) + rng.normal(0, 20, (32, 32, 3))
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory) -> Path:
    """3 classes x 8 images of 32x32, the class told by colour: a quick fine-tuning dataset."""
    root = tmp_path_factory.mktemp("three-classes")
    rng = np.random.default_rng(7)
    for label, name in enumerate(("red", "green", "blue")):
        (root / name).mkdir()
        for i in range(8):
            Image.fromarray(class_image(label, rng, size=32), "RGB").save(root / name / f"{i}.png")
    return root


def _normalized(entry, pixels: np.ndarray) -> torch.Tensor:
    """uint8 [N, C, H, W] -> (x / 255 - mean) / std with the weights' own mean/std."""
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (entry.mean, entry.std))
    return (torch.from_numpy(np.ascontiguousarray(pixels)).float() / 255 - mean) / std


def _direct(published, path: Path) -> tuple[torch.Tensor, np.ndarray]:
    """The published model's logits on `path`, preprocessed as its entry says; and the pixels it saw."""
    entry = published.entry
    pixels = read_for_model(path, entry.input_size, entry.interpolation, entry.crop_pct)
    with torch.no_grad():
        return published.model(_normalized(entry, pixels[None])), pixels


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ")
    return captured.err


# --- predict ---------------------------------------------------------------------------------------------

def test_predict_gives_the_published_models_imagenet_probabilities(mirror, photo, capsys):
    item = mirror["torchvision"]
    assert main(["predict", str(photo), "model=resnet18", "weights=TEST_TV", "--json", "--backend", "torch"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0]["source"] == str(photo)
    top = rows[0]["top"]
    logits, pixels = _direct(item, photo)
    assert pixels.shape == (3, 224, 224)  # shorter side 200 -> 232, then the central 224
    probs, indices = torch.softmax(logits, dim=1)[0].topk(5)
    imagenet = class_names("imagenet")
    assert len(imagenet) == 1000
    assert [row["index"] for row in top] == indices.tolist()
    assert [row["label"] for row in top] == [imagenet[i] for i in indices.tolist()]
    assert [row["prob"] for row in top] == pytest.approx(probs.tolist(), abs=1e-5)
    assert (weights_dir() / item.path.name).is_file()  # fetched into torch.hub's cache


# --- evaluate ----------------------------------------------------------------------------------------------

def test_evaluate_on_an_image_folder_counts_what_the_published_model_gets_right(mirror, cifar_folder, capsys):
    item = mirror["akamaster"]
    assert main(["evaluate", "model=resnet20", "weights=TEST_AKAMASTER", f"data={cifar_folder}", "workers=0",
                 "--json", "--no-report", "--backend", "torch"]) == 0
    summary = json.loads(capsys.readouterr().out)
    files = sorted((cifar_folder / "test").glob("*/*.png"))
    labels = [CIFAR10_CLASSES.index(f.parent.name) for f in files]
    predicted = [int(_direct(item, f)[0].argmax()) for f in files]
    correct = sum(p == t for p, t in zip(predicted, labels))
    assert summary["num_samples"] == len(files) == 30
    assert summary["accuracy"] == pytest.approx(correct / len(files))
    for name in CIFAR10_CLASSES:
        mine = [p == t for p, t, f in zip(predicted, labels, files) if f.parent.name == name]
        assert summary["per_class_accuracy"][name] == pytest.approx(sum(mine) / len(mine))
    assert summary["report"] is None
    assert len(set(predicted)) > 1  # not a model that answers one class whatever it sees


@pytest.mark.slow
def test_evaluates_report_lists_the_published_models_prediction_for_each_file(mirror, cifar_folder, tmp_path,
                                                                              capsys):
    item = mirror["akamaster"]
    out = tmp_path / "report"
    assert main(["evaluate", "model=resnet20", "weights=TEST_AKAMASTER", f"data={cifar_folder}", f"out={out}",
                 "workers=0", "--backend", "torch"]) == 0
    assert "resnet20" in capsys.readouterr().out
    rows = list(csv.DictReader((out / "predictions.csv").read_text().splitlines()))
    assert len(rows) == 30
    for row in rows:
        path = Path(row["source"])
        probs = torch.softmax(_direct(item, path)[0], dim=1)[0]
        assert row["true"] == path.parent.name
        assert row["predicted"] == CIFAR10_CLASSES[int(probs.argmax())]
        assert float(row["probability"]) == pytest.approx(float(probs.max()), abs=1e-4)


# --- embed -------------------------------------------------------------------------------------------------

def test_embed_writes_the_published_models_pooled_features(mirror, cifar_folder, tmp_path, capsys):
    item = mirror["akamaster"]
    out = tmp_path / "feats.npz"
    test = cifar_folder / "test"
    assert main(["embed", str(test), "model=resnet20", "weights=TEST_AKAMASTER", f"out={out}", "workers=0"]) == 0
    assert f"wrote {out}: 30 x 64 features" in capsys.readouterr().out
    saved = np.load(out)
    assert saved["features"].shape == (30, 64) and saved["features"].dtype == np.float32
    paths = [Path(p) for p in saved["paths"]]
    assert sorted(paths) == sorted(test.glob("*/*.png"))
    assert list(saved["class_names"]) == list(CIFAR10_CLASSES)
    assert [CIFAR10_CLASSES[i] for i in saved["labels"]] == [p.parent.name for p in paths]
    entry = item.entry
    for row in (0, 17):
        pixels = read_for_model(paths[row], entry.input_size, entry.interpolation, entry.crop_pct)
        x = _normalized(entry, pixels[None])
        with torch.no_grad():
            expected = item.model.forward_head(item.model.forward_features(x), pre_logits=True)[0].numpy()
        np.testing.assert_allclose(saved["features"][row], expected, atol=1e-5)


# --- training from published weights ------------------------------------------------------------------------

@pytest.mark.slow
def test_finetuning_records_the_published_weights_and_their_normalization(mirror, small_folder, tmp_path, capsys):
    item = mirror["akamaster"]
    argv = ["train", "recipe=finetune", "model=resnet20", "weights=TEST_AKAMASTER", f"data={small_folder}",
            "epochs=2", "head_epochs=1", "batch_size=8", "workers=0", "device=cpu", f"project={tmp_path}",
            "name=ft", "progress=false", "plots=false", "tensorboard=false", "checkpoint_minutes=0"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "weights from TEST_AKAMASTER: " in out  # the notes: a new 3-class head, the weights' mean/std
    best = tmp_path / "ft" / "best.safetensors"
    assert main(["info", str(best)]) == 0
    info = json.loads(capsys.readouterr().out)
    pretrained = info["pretrained"]
    assert pretrained["name"] == "TEST_AKAMASTER" and pretrained["source"] == "test"
    assert pretrained["url"] == item.entry.url and pretrained["license"] == "MIT (test)"
    assert pretrained["sha256"] == sha256(item.path) and pretrained["file"] == item.path.name
    assert info["class_names"] == ["blue", "green", "red"]
    assert info["mean"] == list(item.entry.mean) == [0.485, 0.456, 0.406]  # the weights' (ImageNet), not the data's
    assert info["std"] == list(item.entry.std) == [0.229, 0.224, 0.225]
    assert info["arch"]["name"] == "resnet20" and info["arch"]["num_classes"] == 3


# --- the Keras-style Classifier ------------------------------------------------------------------------------

def test_classifier_from_chenyaofos_weights_fits_saves_and_keeps_the_provenance(mirror, tmp_path):
    item = mirror["chenyaofo"]
    clf = resnetlab.Classifier("resnet20", weights="TEST_CHENYAOFO", num_classes=3, device="cpu")
    assert clf.model.arch.options.get("shortcut") == "B"  # the weights need projection shortcuts: chosen for us
    assert clf.info.mean == item.entry.mean and clf.info.std == item.entry.std
    published = item.model.state_dict()
    mine = clf.model.state_dict()
    assert all(torch.equal(mine[k], v) for k, v in published.items() if not k.startswith("fc."))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    y = np.arange(12) % 3
    clf.compile(optimizer="adam", learning_rate=1e-3)
    history = clf.fit(x, y, epochs=1, batch_size=6, verbose=0)
    assert len(history.history["loss"]) == 1
    path = clf.save(tmp_path / "chen.h5")
    info = resnetlab.read_info(path)
    assert info.pretrained["name"] == "TEST_CHENYAOFO" and info.pretrained["sha256"] == sha256(item.path)
    assert info.arch.options.get("shortcut") == "B" and info.num_classes == 3
    assert info.mean == item.entry.mean and info.std == item.entry.std  # fit kept the weights' normalization
    model, loaded = resnetlab.load_model(path)
    assert loaded.pretrained == info.pretrained and model.arch.options.get("shortcut") == "B"
    np.testing.assert_allclose(resnetlab.Classifier.load(path, device="cpu").predict(x[:2]), clf.predict(x[:2]),
                               atol=1e-5)


def test_classifier_without_num_classes_keeps_the_imagenet_head(mirror):
    item = mirror["torchvision"]
    clf = resnetlab.Classifier("resnet18", weights="TEST_TV", device="cpu")
    assert clf.info.num_classes == 1000 and clf.info.class_names == class_names("imagenet")
    x = np.random.default_rng(1).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    probs = clf.predict(x)
    assert probs.shape == (2, 1000)
    with torch.no_grad():
        expected = torch.softmax(item.model(_normalized(item.entry, x.transpose(0, 3, 1, 2))), dim=1).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_classifier_from_imagenet_weights_fits_small_arrays_at_their_own_size(mirror):
    """Keras' ResNet50(weights="imagenet", include_top=False) takes 32x32 inputs; so does a new head here."""
    clf = resnetlab.Classifier("resnet18", weights="TEST_TV", num_classes=4, device="cpu")
    x = np.random.default_rng(2).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    y = np.arange(16) % 4
    clf.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert clf.info.input_size == (3, 32, 32) and clf.info.mean == (0.485, 0.456, 0.406)
    assert clf.predict(x).shape == (16, 4)
    assert resnetlab.list_weights("resnet*")[0].startswith("resnet18.")  # qualified names
    assert resnetlab.create_model("resnet18", weights="resnet18.TEST_TV").pretrained_cfg["name"] == "TEST_TV"


# --- export and explain ------------------------------------------------------------------------------------

def test_export_as_a_torchvision_state_dict_loads_into_a_plain_model(mirror, tmp_path, capsys):
    item = mirror["akamaster"]
    out = tmp_path / "resnet20.pth"
    assert main(["export", "model=resnet20", "weights=TEST_AKAMASTER", "format=torchvision", f"out={out}"]) == 0
    assert "wrote " in capsys.readouterr().out
    state = torch.load(out, weights_only=True)
    assert "fc.weight" in state and not any(k.startswith(("module.", "linear.")) for k in state)
    plain = resnetlab.create_model("resnet20")
    plain.load_state_dict(state, strict=True)
    plain.eval()
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(plain(x), item.model(x), rtol=0, atol=1e-5)


def test_explain_writes_a_heat_map(mirror, photo, tmp_path, capsys):
    out = tmp_path / "explained"
    assert main(["explain", str(photo), "model=resnet20", "weights=TEST_AKAMASTER", "--out", str(out)]) == 0
    heat = out / "photo_gradcam.png"
    assert heat.is_file()
    with Image.open(heat) as image:
        assert image.size[0] >= 32 and image.size[1] >= 32


def test_serve_resolves_the_weights_before_it_would_listen(mirror, monkeypatch, capsys):
    import uvicorn

    started = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, *a, **k: started.append(self.config.port))
    assert main(["serve", "model=resnet20", "weights=TEST_AKAMASTER", "port=0", "--backend", "torch"]) == 0
    assert started == [0]
    assert "resnet20, 10 classes" in capsys.readouterr().out
    assert "unknown weights 'NOPE'" in _error(capsys, ["serve", "model=resnet20", "weights=NOPE", "port=0"])
    assert started == [0]  # never reached the server


# --- errors ------------------------------------------------------------------------------------------------

def test_an_architecture_without_weights_asks_for_them(mirror, photo, capsys):
    message = _error(capsys, ["predict", str(photo), "model=resnet20"])
    assert "model=resnet20 is an architecture" in message and "weights=" in message
    assert "resnetlab weights resnet20" in message


def test_unknown_weights_name_the_closest_and_the_choices(mirror, photo, capsys):
    message = _error(capsys, ["predict", str(photo), "model=resnet20", "weights=NOPE"])
    assert "unknown weights 'NOPE' for resnet20" in message
    assert "CIFAR10_AKAMASTER" in message and "CIFAR10_CHENYAOFO" in message and "DEFAULT" in message
    message = _error(capsys, ["predict", str(photo), "model=resnet20", "weights=CIFAR10_AKAMASTR"])
    assert "did you mean" in message.lower() and "CIFAR10_AKAMASTER" in message
    message = _error(capsys, ["predict", str(photo), "model=resnet50", "weights=TEST_TV"])
    assert "are for resnet18, not resnet50" in message and "model=resnet18" in message


def test_offline_default_weights_name_the_real_url_the_file_and_the_folder(mirror, photo, monkeypatch, capsys):
    monkeypatch.setenv("RESNETLAB_OFFLINE", "1")
    message = _error(capsys, ["predict", str(photo), "model=resnet20", "weights=DEFAULT"])
    assert AKAMASTER_URL in message
    assert "resnet20-12fca82f.th" in message and str(weights_dir()) in message
    assert "offline" in message
