"""Grad-CAM: heat maps for every model, that point at the object the class depends on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import resnetlab
from resnetlab.analysis.explain import grad_cam, heat_centre_of_mass
from resnetlab.cli import main

DEEP = {"resnet1202", "preact_resnet1001", "wide_resnet101_2", "resnext101_32x8d"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in DEEP else n
                                  for n in resnetlab.list_models()])
def test_grad_cam_works_for_every_registered_model(name):
    torch.manual_seed(0)
    model = resnetlab.create_model(name, num_classes=4)
    c, h, w = model.default_input_size
    side = min(h, 64)
    images = torch.randn(2, c, side, side)
    for module in model.modules():  # running statistics from this batch: an untrained 1000-layer net's
        if isinstance(module, torch.nn.BatchNorm2d):  # initial ones overflow at evaluation
            module.momentum = 1.0
    with torch.no_grad():
        model.train()(images)
    heat, logits = grad_cam(model, images)
    assert heat.shape == (2, side, side) and logits.shape == (2, 4)
    assert float(heat.min()) >= 0 and float(heat.max()) <= 1 + 1e-6


def _squares(n: int, seed: int):
    """Noise images with a coloured 8x8 square at a random place: red is class 0, green class 1."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 50, (n, 32, 32, 3)).astype(np.uint8)
    labels = rng.integers(0, 2, n)
    corners = rng.integers(0, 24, (n, 2))
    for image, label, (y, x) in zip(images, labels, corners):
        image[y:y + 8, x:x + 8, label] = 255
    return images, labels, corners


@pytest.mark.slow
def test_heat_maps_point_at_the_object(tmp_path):
    images, labels, _ = _squares(768, 0)
    clf = resnetlab.Classifier("resnet20", num_classes=2, input_shape=(32, 32, 3), class_names=["red", "green"],
                               device="cpu")
    clf.fit(images, labels, epochs=4, batch_size=64, verbose=0)
    test_images, test_labels, corners = _squares(40, 1)
    predictor = resnetlab.Predictor(clf.model, clf.info, device="cpu")
    batch = predictor.normalized(torch.from_numpy(test_images).permute(0, 3, 1, 2).contiguous())
    heat, logits = grad_cam(predictor.model, batch)
    correct = (logits.argmax(1).numpy() == test_labels)
    assert correct.mean() > 0.9
    hits = 0
    for map_, (y, x), ok in zip(heat.numpy(), corners, correct):
        if ok:
            row, col = heat_centre_of_mass(map_)
            hits += abs(row - (y + 4)) < 8 and abs(col - (x + 4)) < 8
    assert hits >= 0.8 * correct.sum()  # the heat sits on the square in most correctly classified images
    path = tmp_path / "sq.png"
    Image.fromarray(test_images[0]).save(path)
    clf.save(tmp_path / "m.safetensors")
    (tmp_path / "broken.png").write_text("no")
    assert main(["explain", str(tmp_path / "m.safetensors"), str(path), str(tmp_path / "broken.png"),
                 "--out", str(tmp_path / "cam")]) == 0
    assert (tmp_path / "cam" / "sq_gradcam.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["explain", str(tmp_path / "m.safetensors"), str(path), "--class", "gren"]) == 2


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """An untrained two-class resnet20 file (Grad-CAM runs the same on any weights)."""
    torch.manual_seed(0)
    clf = resnetlab.Classifier("resnet20", num_classes=2, input_shape=(32, 32, 3), class_names=["red", "green"],
                               device="cpu")
    return clf.save(tmp_path_factory.mktemp("model") / "m.safetensors")


def _photo(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((32, 32, 3), 40, np.uint8)
    image[8:24, 8:24] = colour
    Image.fromarray(image).save(path)
    return path


def test_same_names_in_different_folders_keep_their_folders(model_file, tmp_path):
    photos = tmp_path / "photos"
    _photo(photos / "a" / "x.png", (255, 0, 0))
    _photo(photos / "a" / "x.jpg", (0, 0, 255))  # same stem in one folder: the second in sorted order gets its suffix
    _photo(photos / "b" / "x.png", (0, 255, 0))
    _photo(photos / "b" / "deep" / "x.png", (255, 255, 0))
    out = tmp_path / "cam"
    assert main(["explain", str(model_file), str(photos / "a"), str(photos / "b"), "--out", str(out)]) == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert written == ["a/x_gradcam.png", "a/x_png_gradcam.png", "b/deep/x_gradcam.png", "b/x_gradcam.png"]
    assert len({p.read_bytes() for p in out.rglob("*.png")}) == 4  # four images, four different overlays
    # one folder's images go straight into the output folder; a mistyped name does not move them
    flat = tmp_path / "flat"
    assert main(["explain", str(model_file), str(photos / "b" / "x.png"), str(tmp_path / "nope" / "y.png"),
                 "--out", str(flat)]) == 0
    assert [p.name for p in flat.rglob("*.png")] == ["x_gradcam.png"] and (flat / "x_gradcam.png").is_file()


def test_cli_takes_out_class_and_device_words_anywhere(model_file, tmp_path, capsys):
    image = _photo(tmp_path / "x.png", (255, 0, 0))
    out = tmp_path / "cam"
    assert main(["explain", f"out={out}", str(model_file), "class=green", str(image), "device=cpu"]) == 0
    table = capsys.readouterr().out
    assert (out / "x_gradcam.png").read_bytes()[:4] == b"\x89PNG" and not (tmp_path / "out=cam").exists()
    assert "green" in table and "error" not in table  # `out=...` was not taken for an image
    assert main(["explain", str(model_file), str(image), "class_name=red", "--out", str(tmp_path / "c2")]) == 0
    assert (tmp_path / "c2" / "x_gradcam.png").is_file() and "red" in capsys.readouterr().out
    assert main(["explain", str(model_file), str(image), "--class", "green", "--out", str(tmp_path / "c3"),
                 "--device", "cpu"]) == 0
    assert (tmp_path / "c3" / "x_gradcam.png").is_file()
    assert main(["explain", str(model_file), str(image), "ot=cam"]) == 2
    assert "unknown option 'ot'; did you mean 'out'?" in capsys.readouterr().err
