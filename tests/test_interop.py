"""Weights in and out of torchvision/timm format, checked against logits recorded with torchvision itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from resnetlab.checkpoint import load_model
from resnetlab.deploy.interop import export_state_dict, imagenet_class_names, import_weights
from resnetlab.errors import ModelFileError

from reference_weights import synthetic_images, synthetic_state_dict

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "torchvision_resnets.json").read_text())
RESNET50 = FIXTURE["models"]["resnet50"]


@pytest.fixture(scope="module")
def torchvision_resnet50(tmp_path_factory):
    """resnet50 weights saved the way torchvision's hub files are (torch.save of a plain state dict)."""
    state = synthetic_state_dict(RESNET50["state_dict"])
    path = tmp_path_factory.mktemp("tv") / "resnet50-synthetic.pth"
    torch.save(state, path)
    return path, state


def test_torchvision_resnet50_imports_with_identical_logits_names_and_preprocessing(torchvision_resnet50, tmp_path):
    path, state = torchvision_resnet50
    out, info = import_weights(path, "resnet50", tmp_path / "resnet50.safetensors")
    model, loaded_info = load_model(out)
    with torch.no_grad():
        logits = model(synthetic_images())
    # the logits torchvision's own resnet50 computed from these weights (recorded in the fixture)
    torch.testing.assert_close(logits[:, :16], torch.tensor(RESNET50["logits_head"]), rtol=0, atol=1e-5)
    assert loaded_info.class_names == imagenet_class_names()
    assert loaded_info.class_names[0] == "tench" and loaded_info.class_names[999] == "toilet tissue"
    assert loaded_info.input_size == (3, 224, 224) and loaded_info.crop_pct == pytest.approx(0.875)
    assert loaded_info.mean == pytest.approx((0.485, 0.456, 0.406)) and loaded_info.interpolation == "bilinear"
    for key, tensor in state.items():
        assert torch.equal(model.state_dict()[key], tensor), key


def test_timm_safetensors_without_step_counters_imports(tmp_path):
    state = synthetic_state_dict(RESNET50["state_dict"])
    timm_style = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    save_file(timm_style, tmp_path / "model.safetensors")
    out, _ = import_weights(tmp_path / "model.safetensors", "resnet50", tmp_path / "imported.safetensors")
    model, _ = load_model(out)
    with torch.no_grad():
        logits = model(synthetic_images())
    torch.testing.assert_close(logits[:, :16], torch.tensor(RESNET50["logits_head"]), rtol=0, atol=1e-5)


def test_mismatched_state_dict_lists_missing_and_unexpected_keys(torchvision_resnet50, tmp_path):
    _, state = torchvision_resnet50
    broken = dict(state)
    broken.pop("layer4.2.conv3.weight")
    broken["head.extra.weight"] = torch.zeros(3)
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(ModelFileError, match=r"1 missing: layer4\.2\.conv3\.weight; 1 unexpected: head\.extra\.weight"):
        import_weights(tmp_path / "broken.pth", "resnet50", tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()
    with pytest.raises(ModelFileError, match="does not match its architecture resnet18"):
        import_weights(tmp_path / "broken.pth", "resnet18", tmp_path / "out.safetensors")


def test_pickled_code_is_refused(tmp_path):
    torch.save({"weights": torch.zeros(1), "callback": print}, tmp_path / "evil.pth")
    with pytest.raises(ModelFileError, match="weights_only=True: it holds GLOBAL (builtins.)?print, which is not a "
                                             "tensor or a plain container; save the state dict alone"):
        import_weights(tmp_path / "evil.pth", "resnet50", tmp_path / "out.safetensors")


def test_a_torchvision_reference_script_checkpoint_imports(torchvision_resnet50, tmp_path):
    import argparse

    # torchvision/references/classification/train.py saves its argparse arguments next to the weights
    model, state = torchvision_resnet50
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": []}, "epoch": 89,
                "args": argparse.Namespace(model="resnet50", lr=0.5, epochs=90)}, tmp_path / "checkpoint.pth")
    out, _ = import_weights(tmp_path / "checkpoint.pth", "resnet50", tmp_path / "imported.safetensors")
    imported, _ = load_model(out)
    for key, tensor in state.items():
        assert torch.equal(imported.state_dict()[key], tensor), key


def test_export_back_to_a_torchvision_loadable_state_dict(torchvision_resnet50, tmp_path):
    path, state = torchvision_resnet50
    model_file, _ = import_weights(path, "resnet50", tmp_path / "m.safetensors")
    out = export_state_dict(model_file, tmp_path / "resnet50.pth")
    reloaded = torch.load(out, weights_only=True)
    assert list(reloaded) == list(RESNET50["state_dict"])  # torchvision's key order, strict-loadable
    assert all(torch.equal(reloaded[k], state[k]) for k in state)
