"""Small learnable image arrays for the Keras-style tests."""

from __future__ import annotations

import numpy as np


def quadrant_images(n: int, seed: int, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 28, 28, 3) whose class is the quadrant holding a bright square, plus noise: learnable
    in a few epochs."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    images = rng.integers(0, 80, (n, 28, 28, 3)).astype(np.uint8)
    for i, label in enumerate(labels):
        y, x = divmod(int(label), 2)
        images[i, y * 14 + 3:y * 14 + 11, x * 14 + 3:x * 14 + 11, :] = 230
    return images, labels
