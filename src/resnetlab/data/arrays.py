"""NumPy arrays and torch tensors as image sets: the Keras-style entry point.

NumPy arrays are read as NHWC (Keras' convention) and torch tensors as NCHW (PyTorch's); either
layout is accepted from either kind where the expected image shape tells them apart. Grayscale
arrays may drop the channel axis: [N, H, W].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .dataset import MAX_CLASSES, ImageSet

_CHANNEL_COUNTS = (1, 2, 3, 4)


def _layout_guess(shape: tuple[int, ...], channels_last: bool) -> str:
    """Return "nhwc" or "nchw" for a 4-D shape when no expected image shape is known."""
    last_ok, first_ok = shape[3] in _CHANNEL_COUNTS, shape[1] in _CHANNEL_COUNTS
    if last_ok and (channels_last or not first_ok):
        return "nhwc"
    if first_ok:
        return "nchw"
    raise DataError(f"cannot tell the channel axis of images with shape {shape}: give NHWC arrays "
                    f"(Keras convention) or NCHW tensors with 1-4 channels")


def images_to_tensor(images: Any, *, expected: tuple[int, int, int] | None = None, name: str = "x") -> torch.Tensor:
    """Convert images to a uint8 or float32 tensor [N, C, H, W].

    Args:
        images: uint8 [N, H, W, C] / [N, H, W] arrays, uint8 or float [N, C, H, W] tensors; floats in 0..1.
        expected: (C, H, W) the model was built for; a mismatch raises, naming both shapes.
        name: the argument's name, for error messages.
    """
    is_tensor = isinstance(images, torch.Tensor)
    array = images.detach().cpu().numpy() if is_tensor else np.asarray(images)
    if expected is not None and array.ndim == 3 and array.shape in ((*expected[1:], expected[0]), tuple(expected)):
        raise DataError(f"{name} looks like a single image of shape {array.shape}; give a batch, e.g. {name}[None]")
    if array.dtype == object or array.ndim not in (3, 4):
        raise DataError(f"{name} must be a 3-D [N, H, W] or 4-D image array, got shape {array.shape} "
                        f"of {array.dtype}")
    if len(array) == 0:
        raise DataError(f"{name} holds no images")
    if array.ndim == 3:
        array = array[:, None]
    else:
        nhwc_match = expected is not None and array.shape[1:] == (expected[1], expected[2], expected[0])
        nchw_match = expected is not None and array.shape[1:] == tuple(expected)
        if nhwc_match or nchw_match:  # both only when C == H == W: follow the container's convention
            channels_last = nhwc_match and not (nchw_match and is_tensor)
        else:
            channels_last = _layout_guess(array.shape, channels_last=not is_tensor) == "nhwc"
        if channels_last:
            array = array.transpose(0, 3, 1, 2)
    if expected is not None and array.shape[1:] != tuple(expected):
        c, h, w = expected
        got_c, got_h, got_w = array.shape[1:]
        raise DataError(f"{name} has images of {got_h}x{got_w} with {got_c} channel(s); the model expects "
                        f"{h}x{w} with {c} (arrays as [N, {h}, {w}, {c}] or tensors as [N, {c}, {h}, {w}])")
    return _to_pixel_tensor(np.ascontiguousarray(array), name)


def _to_pixel_tensor(array: np.ndarray, name: str) -> torch.Tensor:
    if array.dtype == np.uint8:
        return torch.from_numpy(array)
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise DataError(f"{name} holds integers from {low} to {high}; integer images must be 0..255 "
                            f"(or give floats in 0..1)")
        return torch.from_numpy(array.astype(np.uint8))
    if np.issubdtype(array.dtype, np.floating):
        values = array.astype(np.float32)
        if not np.isfinite(values).all():
            raise DataError(f"{name} contains NaN or infinite values")
        low, high = float(values.min()), float(values.max())
        if low < -1e-3 or high > 1 + 1e-3:  # resnetlab normalizes itself and stores how, for predict and serve
            hint = "divide by 255" if low >= 0 and high <= 255 else "give raw pixels, not normalized ones"
            raise DataError(f"{name} holds floats from {low:.3g} to {high:.3g}; float images must be 0..1 "
                            f"({hint}), or pass uint8 pixels 0..255")
        return torch.from_numpy(values)
    raise DataError(f"{name} must hold uint8 or float pixels, got {array.dtype}")


def label_count(labels: Any, *, name: str = "y") -> int:
    """The number of classes labels imply: the columns of one-hot rows [N, K], else the largest index + 1
    (integer labels [N], or [N, 1] as Keras' datasets give them), at most MAX_CLASSES."""
    array = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if array.ndim == 2 and array.shape[1] > 1:
        count = int(array.shape[1])
    elif not array.size:
        return 0
    elif not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
              or array.dtype == np.bool_):
        raise DataError(f"{name} must hold integer class indices, got {array.dtype}")
    else:
        flat = array.reshape(-1)
        if not np.isfinite(flat).all():
            raise DataError(f"{name}[{int(np.flatnonzero(~np.isfinite(flat))[0])}] is not a finite number; labels "
                            f"are class indices")
        over = np.flatnonzero(flat >= MAX_CLASSES)
        if len(over):  # before anything sizes a list or a layer by it
            raise DataError(f"{name}[{int(over[0])}] = {flat[over[0]]:g} is not a class index below {MAX_CLASSES:,}; "
                            f"labels number the classes from 0")
        count = int(flat.max()) + 1
    if count > MAX_CLASSES:
        raise DataError(f"{name} has {count:,} one-hot columns; at most {MAX_CLASSES:,} classes are supported")
    return count


def labels_to_tensor(labels: Any, *, count: int, num_classes: int | None = None, name: str = "y") -> torch.Tensor:
    """Convert integer class labels [N] (or [N, 1]) or one-hot rows [N, K] to int64 [N]."""
    array = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim == 2:
        if num_classes is not None and array.shape[1] != num_classes:
            raise DataError(f"{name} is one-hot with {array.shape[1]} columns but the model has {num_classes} "
                            f"classes")
        is_one_hot = np.isin(array, (0, 1)).all() and (array.sum(axis=1) == 1).all()
        if not is_one_hot:
            raise DataError(f"{name} has shape {array.shape} but its rows are not one-hot; give integer "
                            f"labels [N] or one-hot rows [N, classes]")
        array = array.argmax(axis=1)
    if array.ndim != 1:
        raise DataError(f"{name} must be integer labels [N] or one-hot [N, classes], got shape {array.shape}")
    if len(array) != count:
        raise DataError(f"{name} has {len(array)} labels for {count} images; give one label per image")
    integral = np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.bool_) or (
        np.issubdtype(array.dtype, np.floating) and np.all(np.mod(array, 1) == 0))
    if not integral:
        raise DataError(f"{name} must hold integer class indices, got {array.dtype} values such as {array[:3]}")
    array = array.astype(np.int64)
    low, high = int(array.min()), int(array.max())
    if low < 0 or (num_classes is not None and high >= num_classes):
        limit = f"0..{num_classes - 1}" if num_classes is not None else "non-negative"
        raise DataError(f"{name} holds labels from {low} to {high}; labels must be {limit}")
    return torch.from_numpy(array)


def arrays_to_imageset(images: Any, labels: Any, *, expected: tuple[int, int, int] | None = None,
                       num_classes: int | None = None, names: tuple[str, str] = ("x", "y")) -> ImageSet:
    """Validate and convert a pair of image and label arrays into an ImageSet."""
    pixels = images_to_tensor(images, expected=expected, name=names[0])
    return ImageSet(pixels, labels_to_tensor(labels, count=len(pixels), num_classes=num_classes, name=names[1]))


def hold_out_last(data: ImageSet, fraction: float, name: str = "validation_split") -> tuple[ImageSet, ImageSet]:
    """(the rest, the last `fraction` of the samples), taken before any shuffling: Keras' validation_split."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {fraction}")
    cut = len(data) - int(round(len(data) * fraction))
    if cut < 1 or cut == len(data):
        raise ValueError(f"{name}={fraction} leaves no training or no validation data ({len(data)} samples)")
    return data.subset(torch.arange(cut)), data.subset(torch.arange(cut, len(data)))


def as_image_batch(x: Any, input_size: tuple[int, int, int], *, interpolation: str = "bilinear",
                   crop_pct: float = 1.0, name: str = "x") -> torch.Tensor:
    """What a Keras user hands `predict`, as a batch [N, C, H, W]: a batch of arrays or tensors as
    `images_to_tensor` takes them, one image (an [H, W, C] or [C, H, W] array of the model's size, or a PIL
    image), or image files (a path or a list of paths, decoded and resized as `resnetlab predict` does)."""
    from PIL import Image

    from .images import pil_for_model, read_for_model

    if isinstance(x, (str, Path)):
        x = [x]
    if isinstance(x, Image.Image):
        x = [x]
    if isinstance(x, (list, tuple)) and x and all(isinstance(item, (str, Path, Image.Image)) for item in x):
        arrays = [pil_for_model(item, input_size, interpolation, crop_pct) if isinstance(item, Image.Image)
                  else read_for_model(item, input_size, interpolation, crop_pct) for item in x]
        return torch.from_numpy(np.stack(arrays))
    shape = tuple(x.shape) if hasattr(x, "shape") else np.shape(x)
    c, h, w = input_size
    if shape in ((h, w, c), (c, h, w)):  # one image of the model's size ((1, H, W) is also a batch of one)
        x = x[None]
    return images_to_tensor(x, expected=input_size, name=name)


def encode_labels(labels: Any, class_names: list[str] | None, num_classes: int | None = None,
                  name: str = "y") -> tuple[Any, list[str] | None]:
    """String (or other non-numeric) labels as class indices, and the class names they use.

    Known `class_names` (given, learned from an earlier call, or read from a model file) map each label;
    without them the names are learned here, sorted (as scikit-learn's LabelEncoder), and must number
    `num_classes` when the model is already built. Numeric labels and one-hot rows pass through unchanged.
    """
    array = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    if array.dtype.kind not in "USO" or (array.dtype.kind == "O" and not all(isinstance(v, str) for v in array.flat)):
        return labels, class_names
    values = [str(v) for v in array.reshape(-1)]
    names = list(class_names) if class_names is not None else sorted(set(values))
    if class_names is None and num_classes is not None and len(names) != num_classes:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise DataError(f"{name} holds {len(names)} classes ({shown}) but the model was built for {num_classes}; "
                        f"give class_names=[...] to the Classifier")
    index = {label: i for i, label in enumerate(names)}
    unknown = sorted(set(values) - set(index))
    if unknown:
        raise DataError(f"{name} holds the label {unknown[0]!r}, which is none of the model's classes "
                        f"({', '.join(names[:10])}{', ...' if len(names) > 10 else ''})")
    return np.array([index[v] for v in values], dtype=np.int64), names


def sample_weights(values: Any, count: int, name: str = "sample_weight") -> np.ndarray:
    """Keras' sample_weight (an array, list or tensor of `count` numbers) as float64 [count], checked."""
    weights = np.asarray(values.cpu() if isinstance(values, torch.Tensor) else values, dtype=np.float64).reshape(-1)
    if len(weights) != count:
        raise ValueError(f"{name} has {len(weights)} values for {count} images; give one weight per image")
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(f"{name} must be finite and >= 0")
    return weights


def with_weights(data: ImageSet, sample_weight: Any, name: str = "sample_weight") -> ImageSet:
    """`data` with a loss weight per image (Keras' sample_weight)."""
    if sample_weight is None:
        return data
    weights = torch.from_numpy(sample_weights(sample_weight, len(data), name).astype(np.float32))
    return ImageSet(data.images, data.labels, weights)


def is_arraylike(x: Any) -> bool:
    """Images given as one array: a NumPy array, a torch tensor, or a (nested) list of numbers or arrays."""
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return True
    return isinstance(x, list) and len(x) > 0 and isinstance(x[0], (np.ndarray, list, int, float, np.number))
