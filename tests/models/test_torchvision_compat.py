"""Our ImageNet ResNets against torchvision's, via a fixture recorded with torchvision itself.

tests/fixtures/make_torchvision_fixtures.py (run where torchvision is installed) stored every state-dict
key and shape of torchvision's models, and their logits under deterministic synthetic weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import resnetlab

from reference_weights import synthetic_images, synthetic_state_dict

FIXTURE = json.loads((Path(__file__).parents[1] / "fixtures" / "torchvision_resnets.json").read_text())
MODELS = FIXTURE["models"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_state_dict_keys_shapes_and_order_match_torchvision(name):
    with torch.device("meta"):
        model = resnetlab.create_model(name)
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert ours == list(MODELS[name]["state_dict"].items())
    assert sum(p.numel() for p in model.parameters()) == MODELS[name]["num_params"]


@pytest.mark.parametrize("name", sorted(n for n, e in MODELS.items() if "logits_head" in e))
def test_torchvision_state_dict_loads_strict_and_gives_the_same_logits(name):
    model = resnetlab.create_model(name).eval()
    model.load_state_dict(synthetic_state_dict(MODELS[name]["state_dict"]), strict=True)
    with torch.no_grad():
        logits = model(synthetic_images())[:, :16]
    torch.testing.assert_close(logits, torch.tensor(MODELS[name]["logits_head"]), rtol=1e-4, atol=1e-5)
