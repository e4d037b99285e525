"""docs/keras-tutorial.md runs as written: every python block, in order, on arrays of the tutorial's shapes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "keras-tutorial.md"


def _bands(n, seed):
    """(N, 28, 28, 3) uint8 noise with a bright band of rows at 2k+4 for class k of 10: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 90, (n, 28, 28, 3)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, 2 * label + 4:2 * label + 6] = 220
    return images, labels


@pytest.mark.slow
def test_the_tutorial_page_runs_as_written(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) == 7
    monkeypatch.chdir(tmp_path)
    (X_train, y_train), (X_val, y_val), (X_test, y_test) = _bands(320, 0), _bands(80, 1), _bands(80, 2)
    namespace = {"X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val, "X_test": X_test,
                 "y_test": y_test}
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), namespace)  # noqa: S102
    assert (tmp_path / "model.h5").is_file() and (tmp_path / "accuracy.png").stat().st_size > 1000
    assert namespace["test_accuracy"] > 0.3  # 10 classes: chance is 0.1
    assert namespace["history"].history["val_accuracy"][-1] > 0.6  # the tuned run: lr 0.05, momentum 0.9
