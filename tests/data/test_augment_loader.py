from __future__ import annotations

import numpy as np
import pytest
import torch

from resnetlab.data.augment import Augment, random_crop, random_flip
from resnetlab.data.dataset import ImageSet
from resnetlab.data.loader import BatchLoader


def _ramp(batch=64, channels=3, size=8):
    base = torch.arange(size * size, dtype=torch.uint8).reshape(size, size)
    return base.expand(batch, channels, size, size).contiguous()


def test_random_crop_is_a_shift_with_zero_fill():
    images = _ramp()
    out = random_crop(images, 2, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(len(images)):  # each output is some 8x8 window of the padded image
        windows = padded[i].unfold(1, 8, 1).unfold(2, 8, 1)  # [C, 5, 5, 8, 8]
        assert any(torch.equal(out[i], windows[:, y, x]) for y in range(5) for x in range(5))
    shifts = {tuple(out[i, 0].nonzero()[0].tolist()) for i in range(len(images))}
    assert len(shifts) > 5  # offsets vary across the batch


def test_edge_and_reflect_padding_never_bring_in_zeros():
    images = torch.full((16, 1, 6, 6), 200, dtype=torch.uint8)
    for mode in ("edge", "reflect"):
        out = random_crop(images, 3 if mode == "edge" else 2, torch.Generator().manual_seed(1), mode)
        assert (out == 200).all()


def test_random_flip_mirrors_about_half():
    images = _ramp(batch=400)
    out = random_flip(images, torch.Generator().manual_seed(0))
    flipped = (out != images).flatten(1).any(1)
    assert torch.equal(out[flipped], images[flipped].flip(3))
    assert 0.4 < flipped.float().mean().item() < 0.6


def test_augment_is_deterministic_per_seed():
    augment = Augment(crop_padding=2, flip=True)
    a = augment(_ramp(), torch.Generator().manual_seed(5))
    b = augment(_ramp(), torch.Generator().manual_seed(5))
    c = augment(_ramp(), torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="pad_mode"):
        Augment(pad_mode="wrap")


def _set(n=10):
    return ImageSet(torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous(),
                    torch.arange(n))


def test_loader_normalizes_and_covers_every_image_once():
    loader = BatchLoader(_set(), 4, mean=(0.5,), std=(0.25,), shuffle=True, seed=0)
    assert len(loader) == 3
    seen, images = [], []
    for batch, labels in loader:
        seen += labels.tolist()
        images.append(batch)
    assert sorted(seen) == list(range(10))
    pixels = torch.cat(images)[:, 0, 0, 0]
    expected = (torch.tensor(seen, dtype=torch.float32) / 255 - 0.5) / 0.25
    torch.testing.assert_close(pixels, expected)


def test_loader_order_depends_on_seed_and_epoch_only():
    def order(seed, epoch):
        loader = BatchLoader(_set(), 3, mean=(0,), std=(1,), shuffle=True, seed=seed)
        loader.set_epoch(epoch)
        return [label for _, labels in loader for label in labels.tolist()]

    assert order(0, 1) == order(0, 1)
    assert order(0, 1) != order(0, 2)
    assert order(0, 1) != order(1, 1)


def test_loader_drop_last_and_unshuffled_order():
    loader = BatchLoader(_set(10), 4, mean=(0,), std=(1,), drop_last=True)
    assert len(loader) == 2 and loader.num_samples == 8
    assert [labels.tolist() for _, labels in loader] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def _mirrored_by_label(loader, epoch):
    """label -> whether the loader showed that image mirrored in `epoch` (images are left-right ramps)."""
    loader.set_epoch(epoch)
    out = {}
    for images, labels in loader:
        for image, label in zip(images, labels.tolist()):
            out[label] = bool(image[0, 0, 0] > image[0, 0, -1])  # a ramp rises left to right unless mirrored
    return out


def test_alternate_flip_shows_each_image_mirrored_every_other_epoch():
    n = 200
    images = torch.arange(8, dtype=torch.uint8).expand(n, 1, 8, 8).contiguous()
    data = ImageSet(images, torch.arange(n))
    loader = BatchLoader(data, 32, mean=(0,), std=(1,), shuffle=True, seed=3,
                         augment=Augment(flip=True), alternate_flip=True)
    epochs = [_mirrored_by_label(loader, epoch) for epoch in (1, 2, 3)]
    assert 0.35 < sum(epochs[0].values()) / n < 0.65  # a random start ...
    assert all(epochs[1][i] != epochs[0][i] and epochs[2][i] == epochs[0][i] for i in range(n))  # ... then alternate
    again = BatchLoader(data, 32, mean=(0,), std=(1,), shuffle=True, seed=3,
                        augment=Augment(flip=True), alternate_flip=True)
    assert _mirrored_by_label(again, 2) == epochs[1]  # any epoch can be replayed (resume)
    independent = BatchLoader(data, 32, mean=(0,), std=(1,), shuffle=True, seed=3, augment=Augment(flip=True))
    plain = [_mirrored_by_label(independent, epoch) for epoch in (1, 2)]
    assert sum(plain[0][i] == plain[1][i] for i in range(n)) > n // 4  # coin flips repeat sides; alternation never


def test_alternate_flip_in_file_workers(tmp_path):
    from PIL import Image

    from resnetlab.data.dataset import ImageFiles
    from resnetlab.data.stream import DecodedFiles

    ramp = np.tile(np.linspace(0, 250, 32).astype(np.uint8), (32, 1))  # rises left to right
    paths = []
    for i in range(40):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(ramp).convert("RGB").save(paths[-1])
    files = ImageFiles(paths, torch.zeros(40, dtype=torch.long))
    dataset = DecodedFiles(files, (3, 16, 16), train=True, flip=True, scale=(0.5, 1.0), alternate_flip=True, seed=7)

    def mirrored(epoch):
        return [bool(dataset[epoch, i][0][0, 8, 0] > dataset[epoch, i][0][0, 8, -1]) for i in range(40)]

    first, second, third = mirrored(1), mirrored(2), mirrored(3)
    assert 8 < sum(first) < 32
    assert all(a != b for a, b in zip(first, second)) and first == third
