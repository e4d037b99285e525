"""Shared fixtures: one short digits run that the CLI, predict and evaluate tests reuse."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests' own helpers (reference_weights)


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Keep downloads and scan caches of the suite out of the user's ~/.cache."""
    import os

    previous = os.environ.get("RESNETLAB_CACHE")
    os.environ["RESNETLAB_CACHE"] = str(tmp_path_factory.mktemp("resnetlab-cache"))
    yield
    if previous is None:
        os.environ.pop("RESNETLAB_CACHE", None)
    else:
        os.environ["RESNETLAB_CACHE"] = previous


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """A resnet20 trained on the embedded digits for 4 epochs (a few seconds); returns the TrainResult."""
    from resnetlab.training import train

    project = tmp_path_factory.mktemp("runs")
    return train(epochs=4, project=str(project), display="none", lr=0.05)
