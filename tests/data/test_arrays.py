from __future__ import annotations

import numpy as np
import pytest
import torch

from resnetlab.data.arrays import arrays_to_imageset, images_to_tensor, labels_to_tensor
from resnetlab.errors import DataError


def test_numpy_nhwc_becomes_nchw_and_keeps_uint8():
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28, 3), dtype=np.uint8)
    out = images_to_tensor(images, expected=(3, 28, 28))
    assert out.shape == (5, 3, 28, 28) and out.dtype == torch.uint8
    assert torch.equal(out[2, 1], torch.from_numpy(images[2, :, :, 1]))


def test_torch_nchw_stays_and_floats_are_float32():
    images = torch.rand(4, 3, 16, 16, dtype=torch.float64)
    out = images_to_tensor(images, expected=(3, 16, 16))
    assert out.dtype == torch.float32 and torch.allclose(out, images.float())


def test_layouts_are_told_apart_by_the_expected_shape():
    nchw_numpy = np.zeros((2, 3, 28, 28), dtype=np.uint8)
    assert images_to_tensor(nchw_numpy, expected=(3, 28, 28)).shape == (2, 3, 28, 28)
    nhwc_tensor = torch.zeros(2, 28, 28, 3, dtype=torch.uint8)
    assert images_to_tensor(nhwc_tensor, expected=(3, 28, 28)).shape == (2, 3, 28, 28)


def test_grayscale_without_channel_axis():
    out = images_to_tensor(np.zeros((3, 8, 8), dtype=np.uint8), expected=(1, 8, 8))
    assert out.shape == (3, 1, 8, 8)


def test_wrong_shape_names_both_shapes():
    with pytest.raises(DataError, match=r"x has images of 32x32 with 3 channel\(s\); the model expects 28x28 with 3"):
        images_to_tensor(np.zeros((2, 32, 32, 3), dtype=np.uint8), expected=(3, 28, 28))
    with pytest.raises(DataError, match="3-D"):
        images_to_tensor(np.zeros((2, 3), dtype=np.uint8))
    with pytest.raises(DataError, match="no images"):
        images_to_tensor(np.zeros((0, 8, 8), dtype=np.uint8))


def test_integer_pixels_out_of_range_and_nan_are_rejected():
    with pytest.raises(DataError, match="integers from 300 to 300; integer images must be 0..255"):
        images_to_tensor(np.full((1, 4, 4, 3), 300, dtype=np.int32))
    assert images_to_tensor(np.full((1, 4, 4, 3), 200, dtype=np.int64)).dtype == torch.uint8
    bad = np.zeros((1, 4, 4, 3), dtype=np.float32)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        images_to_tensor(bad)


def test_labels_integer_column_and_one_hot():
    assert labels_to_tensor([0, 2, 1], count=3).tolist() == [0, 2, 1]
    assert labels_to_tensor(np.array([[1], [0]]), count=2).tolist() == [1, 0]
    one_hot = np.eye(4)[[3, 0, 2]]
    assert labels_to_tensor(one_hot, count=3, num_classes=4).tolist() == [3, 0, 2]
    assert labels_to_tensor(np.array([1.0, 2.0]), count=2).tolist() == [1, 2]


@pytest.mark.parametrize("labels, kwargs, message", [
    ([0, 1], {"count": 3}, "2 labels for 3 images"),
    ([0, 5], {"count": 2, "num_classes": 3}, "labels from 0 to 5; labels must be 0..2"),
    ([-1, 0], {"count": 2}, "labels from -1 to 0"),
    ([0.5, 1.0], {"count": 2}, "integer class indices"),
    (np.full((2, 3), 0.5), {"count": 2}, "not one-hot"),
    (np.eye(3)[[0, 1]], {"count": 2, "num_classes": 4}, "one-hot with 3 columns but the model has 4 classes"),
])
def test_bad_labels(labels, kwargs, message):
    with pytest.raises(DataError, match=message):
        labels_to_tensor(labels, **kwargs)


def test_arrays_to_imageset_names_arguments_in_errors():
    with pytest.raises(ValueError, match="validation_data\\[1\\] has 1 labels for 2 images"):
        arrays_to_imageset(np.zeros((2, 8, 8), np.uint8), [0], names=("validation_data[0]", "validation_data[1]"))


def test_hold_out_last_takes_the_last_samples_as_keras_validation_split():
    import torch

    from resnetlab.data import ImageSet
    from resnetlab.data.arrays import hold_out_last

    data = ImageSet(torch.zeros(10, 1, 4, 4, dtype=torch.uint8), torch.arange(10))
    rest, held = hold_out_last(data, 0.25)
    assert rest.labels.tolist() == list(range(8)) and held.labels.tolist() == [8, 9]  # round(2.5) = 2
    with pytest.raises(ValueError, match=r"validation_split=0.01 leaves no training or no validation data"):
        hold_out_last(data, 0.01)


def test_the_last_batch_is_dropped_only_where_batchnorm_would_see_one_image():
    from resnetlab.data.loader import needs_drop_last

    assert needs_drop_last(129, 128) and not needs_drop_last(130, 128) and not needs_drop_last(128, 128)
    assert needs_drop_last(131, 128, processes=4)  # 3 images over 4 processes: some get none or one
    assert not needs_drop_last(136, 128, processes=4)
