"""Image folders and CSV manifests: discovery, the scan of every file, bad-file policy, decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import resnetlab.data.scan as scan
from resnetlab.data import load_dataset
from resnetlab.data.dataset import ImageFiles, ImageSet
from resnetlab.data.images import random_resized_crop
from resnetlab.data.stream import FileLoader
from resnetlab.errors import DataError

from imagefolder import class_image, make_folder


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path_factory.mktemp("cache")))


def test_error_policy_names_every_bad_file_before_training(tmp_path):
    bad = make_folder(tmp_path / "photos")
    with pytest.raises(DataError) as err:
        load_dataset(str(tmp_path / "photos"))
    message = str(err.value)
    assert message.startswith("4 bad image file(s)") and "on_bad_image=skip" in message
    for path, reason in bad.items():
        assert f"{path}: " in message and reason in message.split(path)[1].splitlines()[0]


def test_skip_policy_leaves_bad_files_out_and_reports_them(tmp_path):
    bad = make_folder(tmp_path / "photos")
    data = load_dataset(str(tmp_path / "photos"), on_bad_image="skip")
    assert {path for path, _ in data.skipped} == set(bad)
    assert len(data.train) + len(data.val) == 36  # 3 classes x 12 good images, every mode converted
    assert not set(bad) & set(data.train.paths + data.val.paths)
    assert data.image_shape == (3, 16, 16) and data.crop_pct == 1.0  # small, same-size images keep their size
    assert data.class_names == ["blue", "green", "red"]


def test_every_good_mode_decodes_to_the_class_colour(tmp_path):
    make_folder(tmp_path / "photos", bad=False)
    data = load_dataset(str(tmp_path / "photos"), val_fraction=0, in_memory=True)
    assert isinstance(data.train, ImageSet) and data.train.images.shape == (36, 3, 16, 16)
    means = data.train.images.float().mean(dim=(2, 3))
    for mean, label in zip(means, data.train.labels):
        name = data.class_names[label]
        dominant = int(mean.argmax()) if float(mean.max() - mean.min()) > 20 else None
        if dominant is not None:  # colour images (grayscale kinds carry no hue)
            assert dominant == {"red": 0, "green": 1, "blue": 2}[name]


def test_scan_results_are_cached_per_file(tmp_path, monkeypatch):
    make_folder(tmp_path / "photos", bad=False, per_class=4)
    load_dataset(str(tmp_path / "photos"))
    calls = []
    original = scan.scan_file
    monkeypatch.setattr(scan, "scan_file", lambda path: calls.append(path) or original(path))
    load_dataset(str(tmp_path / "photos"))
    assert calls == []  # nothing changed: every result came from the cache
    changed = next((tmp_path / "photos" / "red").glob("*.png"))
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(changed)
    load_dataset(str(tmp_path / "photos"))
    assert calls == [str(changed)]


def test_split_folders_and_grayscale_detection(tmp_path):
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("val", 2), ("test", 2)):
        for label, name in enumerate(["cat", "dog"]):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(class_image(label, rng, 40)).convert("L").save(folder / f"{i}.png")
    data = load_dataset(str(tmp_path))
    assert (len(data.train), len(data.val), len(data.test)) == (12, 4, 4)
    assert data.image_shape == (1, 40, 40)
    wrong = tmp_path / "val" / "bird"
    wrong.mkdir()
    Image.new("L", (40, 40)).save(wrong / "x.png")
    with pytest.raises(DataError, match="class folder.*bird.*that the training split lacks"):
        load_dataset(str(tmp_path))


def test_large_or_mixed_sizes_default_to_224_center_crop(tmp_path):
    for label, name in enumerate(["a", "b"]):
        (tmp_path / name).mkdir()
        for i, size in enumerate([(300, 200), (120, 160)]):
            Image.new("RGB", size, (label * 200, 0, 0)).save(tmp_path / name / f"{i}.jpg")
    data = load_dataset(str(tmp_path), val_fraction=0)
    assert data.image_shape == (3, 224, 224) and data.crop_pct == 0.875
    assert load_dataset(str(tmp_path), val_fraction=0, img_size=96).image_shape == (3, 96, 96)


@pytest.mark.parametrize("layout, message", [
    ("empty_class", "class folder(s) with no images: empty"),
    ("single_class", "a single class ('only')"),
    ("no_classes", "has no class folders (it holds loose images such as"),
])
def test_structural_errors(tmp_path, layout, message):
    if layout == "empty_class":
        make_folder(tmp_path, bad=False, per_class=2)
        (tmp_path / "empty").mkdir()
    elif layout == "single_class":
        (tmp_path / "only").mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / "only" / "a.png")
    else:
        Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_dataset(str(tmp_path))


def test_csv_manifest_with_header_split_column_and_names(tmp_path):
    make_folder(tmp_path / "imgs", bad=False, per_class=4)
    rows = ["filename,label,split"]
    for i, path in enumerate(sorted((tmp_path / "imgs").rglob("*.*"))):
        if path.suffix != ".txt":
            rows.append(f"{path.relative_to(tmp_path)},{path.parent.name},{'val' if i % 4 == 0 else 'train'}")
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    data = load_dataset(str(tmp_path / "list.csv"))
    assert data.class_names == ["blue", "green", "red"] and len(data.train) + len(data.val) == 12
    assert all(p.startswith(str(tmp_path)) for p in data.train.paths)


def test_csv_manifest_integer_labels_without_header_and_errors(tmp_path):
    make_folder(tmp_path / "imgs", bad=False, per_class=3)
    files = [p for p in sorted((tmp_path / "imgs").rglob("*.*")) if p.suffix != ".txt"]
    (tmp_path / "ints.csv").write_text("\n".join(f"{p},{i % 2}" for i, p in enumerate(files)))
    assert load_dataset(str(tmp_path / "ints.csv"), val_fraction=0).class_names == ["0", "1"]
    (tmp_path / "broken.csv").write_text(f"{files[0]},1\n{files[1]}\n")
    with pytest.raises(DataError, match="broken.csv, line 2: expected path,label"):
        load_dataset(str(tmp_path / "broken.csv"))
    (tmp_path / "missing.csv").write_text(f"{files[0]},a\n{tmp_path / 'gone.png'},b\n{files[1]},b\n")
    with pytest.raises(DataError, match="gone.png: no such file"):
        load_dataset(str(tmp_path / "missing.csv"))


def test_csv_manifest_saved_by_excel_with_a_byte_order_mark(tmp_path):
    make_folder(tmp_path / "imgs", bad=False, per_class=2)
    files = [p for p in sorted((tmp_path / "imgs").rglob("*.*")) if p.suffix != ".txt"]
    rows = ["path,label"] + [f"{p.relative_to(tmp_path)},{p.parent.name}" for p in files]
    (tmp_path / "excel.csv").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode())  # "CSV UTF-8" export
    data = load_dataset(str(tmp_path / "excel.csv"), val_fraction=0)
    assert data.class_names == ["blue", "green", "red"] and len(data.train) == 6


def test_a_folder_too_small_to_hold_out_validation_loads_in_memory(tmp_path):
    make_folder(tmp_path, bad=False, classes=2, per_class=2)  # round(4 * 0.1) = 0 images to hold out
    data = load_dataset(str(tmp_path), in_memory=True)
    assert data.val is None and isinstance(data.train, ImageSet) and len(data.train) == 4


def test_random_resized_crop_size_and_determinism():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 80, 3), dtype=np.uint8))
    a = random_resized_crop(image, (24, 24), np.random.default_rng(5))
    b = random_resized_crop(image, (24, 24), np.random.default_rng(5))
    assert a.size == (24, 24) and np.array_equal(np.asarray(a), np.asarray(b))
    whole = random_resized_crop(image, (50, 80), np.random.default_rng(1), scale=(1.0, 1.0), ratio=(1.6, 1.6))
    assert np.array_equal(np.asarray(whole), np.asarray(image))  # scale 1, same aspect: the image itself


def test_file_loader_is_reproducible_across_worker_counts(tmp_path):
    make_folder(tmp_path, bad=False, per_class=6)
    data = load_dataset(str(tmp_path), val_fraction=0)

    def first_batch(workers, epoch=1):
        loader = FileLoader(data.train, 8, input_size=(3, 12, 12), mean=data.mean, std=data.std, train=True,
                            shuffle=True, flip=True, workers=workers, seed=3)
        loader.set_epoch(epoch)
        return next(iter(loader))

    images0, labels0 = first_batch(0)
    images2, labels2 = first_batch(2)
    assert images0.shape == (8, 3, 12, 12) and torch.equal(labels0, labels2) and torch.equal(images0, images2)
    assert not torch.equal(first_batch(0, epoch=2)[0], images0)


def test_file_loader_processes_draw_their_own_cutout_boxes(tmp_path):
    from resnetlab.data.mix import BatchAugment

    make_folder(tmp_path, bad=False, per_class=6)
    data = load_dataset(str(tmp_path), val_fraction=0)

    def first_batch(rank, cutout):
        loader = FileLoader(data.train, 8, input_size=(3, 12, 12), mean=data.mean, std=data.std, train=False,
                            workers=0, seed=3, shard=(rank, 2), batch_augment=BatchAugment(cutout=cutout))
        loader.set_epoch(1)
        return next(iter(loader))[0]

    boxes = [first_batch(rank, 4) != first_batch(rank, 0) for rank in (0, 1)]  # where cutout changed pixels
    assert all(box.any(dim=(1, 2, 3)).all() for box in boxes)  # every image of each slice has its box
    assert not torch.equal(boxes[0], boxes[1])  # image i of each process does not get the same box


def test_file_loader_keeps_its_workers_across_epochs_and_resumes(tmp_path):
    import multiprocessing

    make_folder(tmp_path, bad=False, per_class=6)
    data = load_dataset(str(tmp_path), val_fraction=0)

    def loader():
        return FileLoader(data.train, 4, input_size=(3, 12, 12), mean=data.mean, std=data.std, train=True,
                          shuffle=True, flip=True, workers=2, seed=5)

    def epoch_batches(source, epoch, start=0):
        source.set_position(epoch, start)
        return [images for images, _ in source]

    running = loader()
    first = epoch_batches(running, 1)
    workers = {p.pid for p in multiprocessing.active_children()}
    second = epoch_batches(running, 2)
    assert len(workers) >= 2 and workers <= {p.pid for p in multiprocessing.active_children()}
    assert len(first) == len(second) == len(running) and not torch.equal(first[0], second[0])
    fresh = epoch_batches(loader(), 2)  # the epoch reaches workers started in epoch 1
    assert all(torch.equal(a, b) for a, b in zip(second, fresh))
    next(iter(running))  # a pass abandoned after one batch (a stop request)
    resumed = epoch_batches(running, 2, start=2)  # then a resume mid-epoch
    assert len(resumed) == len(fresh) - 2 and all(torch.equal(a, b) for a, b in zip(resumed, fresh[2:]))


def test_file_loader_eval_matches_predictor_preprocessing(tmp_path):
    from PIL import Image

    from resnetlab.deploy.predict import Predictor
    from resnetlab.info import ModelInfo
    from resnetlab.registry import create_model

    make_folder(tmp_path, bad=False, per_class=2)
    files = load_dataset(str(tmp_path), val_fraction=0).train
    assert isinstance(files, ImageFiles)
    assert Image.open(files.paths[0]).size != (10, 10)  # so the resize and the crop both do something
    loader = FileLoader(files, 4, input_size=(3, 10, 10), mean=(0, 0, 0), std=(1, 1, 1), crop_pct=0.875)
    images, _ = next(iter(loader))
    model = create_model("resnet20", num_classes=len(set(files.labels.tolist())))
    info = ModelInfo(arch=model.arch, class_names=[str(i) for i in range(model.arch.num_classes)],
                     input_size=(3, 10, 10), mean=(0, 0, 0), std=(1, 1, 1), crop_pct=0.875)
    expected = Predictor(model, info, device="cpu").read_file(files.paths[0]) / 255.0
    np.testing.assert_allclose(images[0].numpy(), expected, atol=1e-6)
