from __future__ import annotations

import torch

from resnetlab.data import load_dataset
from resnetlab.errors import DataError


def test_digits_split_is_fixed_stratified_and_disjoint():
    data = load_dataset("digits")
    assert (len(data.train), len(data.val), len(data.test)) == (1257, 180, 360)
    assert data.image_shape == (1, 8, 8) and data.train.images.dtype == torch.uint8
    assert data.class_names == [str(d) for d in range(10)]
    counts = torch.bincount(data.test.labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: ~36 of each digit
    again = load_dataset("digits")
    assert torch.equal(again.test.images, data.test.images)  # same split every time
    rows = {bytes(img.numpy()) for img in torch.cat([data.train.images, data.val.images])}
    overlap = sum(bytes(img.numpy()) in rows for img in data.test.images)
    assert overlap <= 3  # disjoint, bar a few identical scans that occur in the source itself


def test_digits_are_dark_ink_on_white():
    data = load_dataset("digits")
    corners = data.train.images[:, 0, 0, 0].float().mean()
    centre = data.train.images[:, 0, 3:5, 3:5].float().mean()
    assert corners > 240 and centre < corners  # paper is white (255), ink darker
    assert 0 < data.mean[0] < 1 and 0 < data.std[0] < 1
    assert data.interpolation == "box" and data.flip is False and data.pad_mode == "edge"


def test_val_fraction_zero_and_split_errors():
    data = load_dataset("digits", val_fraction=0)
    assert data.val is None and len(data.train) == 1437
    try:
        data.split("val")
    except DataError as exc:
        assert "no 'val' split; it has train, test" in str(exc)
    else:
        raise AssertionError("expected DataError")


def test_unknown_dataset_suggests():
    try:
        load_dataset("digit")
    except DataError as exc:
        assert "did you mean 'digits'" in str(exc)
    else:
        raise AssertionError("expected DataError")
