"""Shared fixtures: one short digits run that the CLI, predict and evaluate tests reuse."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests' own helpers (reference_weights)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """A resnet20 trained on the embedded digits for 4 epochs (a few seconds); returns the TrainResult."""
    from resnetlab.training import train

    project = tmp_path_factory.mktemp("runs")
    return train(epochs=4, project=str(project), progress="none", lr=0.05)
