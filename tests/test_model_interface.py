"""The model's own head and input layer (timm's conventions), and the code that goes through them:
pretrained loading, backbone freezing, BatchNorm folding."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import resnetlab
from resnetlab.models.layers import adapt_input_conv
from resnetlab.statedict import load_adapted, load_pretrained
from resnetlab.training.optim import head_parameters

NAMES = ["resnet18", "resnet20", "tutorial_cnn", "preact_resnet18", "wrn16_8"]
NUM_FEATURES = {"resnet18": 512, "resnet20": 64, "tutorial_cnn": 128, "preact_resnet18": 512, "wrn16_8": 512}


def _images(model: nn.Module, batch: int = 2, channels: int | None = None) -> torch.Tensor:
    c, h, w = model.default_input_size
    side = 64 if h >= 224 else h  # ImageNet models at 64x64 keep the test fast
    return torch.randn(batch, channels or c, side, side, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", NAMES)
def test_get_classifier_is_the_linear_head(name):
    model = resnetlab.create_model(name, num_classes=7)
    head = model.get_classifier()
    assert isinstance(head, nn.Linear) and head is model.get_submodule(model.classifier_name)
    assert (head.in_features, head.out_features) == (NUM_FEATURES[name], 7) == (model.num_features, model.num_classes)
    assert head_parameters(model) == {id(p) for p in head.parameters()}
    first = model.get_first_conv()
    assert isinstance(first, nn.Conv2d) and first is model.get_submodule(model.first_conv_name)
    assert first.in_channels == model.in_chans == 3


@pytest.mark.parametrize("name", NAMES)
def test_reset_classifier_changes_the_outputs_and_zero_gives_pooled_features(name):
    model = resnetlab.create_model(name, num_classes=7).eval()
    images = _images(model)
    model.reset_classifier(5)
    with torch.no_grad():
        assert model(images).shape == (2, 5)
    assert model.arch.num_classes == model.num_classes == 5
    model.reset_classifier(0)
    assert isinstance(model.get_classifier(), nn.Identity) and model.num_classes == model.arch.num_classes == 0
    assert head_parameters(model) == set()
    with torch.no_grad():
        features = model(images)
        pooled = model.forward_head(model.forward_features(images), pre_logits=True)
    assert features.shape == (2, NUM_FEATURES[name])
    torch.testing.assert_close(features, pooled, rtol=0, atol=0)
    with pytest.raises(ValueError, match="num_classes must be 0"):
        model.reset_classifier(-1)


@pytest.mark.parametrize("name", NAMES)
def test_built_with_num_classes_0_outputs_pooled_features(name):
    model = resnetlab.create_model(name, num_classes=0).eval()
    assert isinstance(model.get_classifier(), nn.Identity) and model.num_classes == model.arch.num_classes == 0
    with torch.no_grad():
        assert model(_images(model)).shape == (2, NUM_FEATURES[name])


@pytest.mark.parametrize("name", NAMES)
def test_set_in_chans_to_1_gives_the_rgb_logits_of_a_gray_image(name):
    torch.manual_seed(0)
    model = resnetlab.create_model(name, num_classes=4).eval()
    gray = _images(model, channels=1)
    with torch.no_grad():
        expected = model(gray.repeat(1, 3, 1, 1))
        model.set_in_chans(1)
        adapted = model(gray)
    torch.testing.assert_close(adapted, expected, rtol=1e-5, atol=1e-5)
    assert model.in_chans == model.arch.in_chans == model.default_input_size[0] == 1
    with torch.no_grad():  # and back: 1 -> 3 repeats the filters scaled by 1/3
        model.set_in_chans(3)
        torch.testing.assert_close(model(gray.repeat(1, 3, 1, 1)), expected, rtol=1e-5, atol=1e-5)


def test_adapt_input_conv_follows_timm():
    weight = torch.randn(8, 3, 3, 3)
    torch.testing.assert_close(adapt_input_conv(1, weight), weight.sum(dim=1, keepdim=True))
    four = adapt_input_conv(4, weight)  # timm: repeat the RGB filters, keep 4 channels, scale by 3/4
    torch.testing.assert_close(four, torch.cat([weight, weight[:, :1]], dim=1) * 0.75)
    assert adapt_input_conv(3, weight) is weight
    assert adapt_input_conv(1, weight.half()).dtype == torch.float16
    with pytest.raises(ValueError, match="cannot adapt a first convolution of 2 input channels to 3"):
        adapt_input_conv(3, torch.randn(8, 2, 3, 3))


def test_load_adapted_into_a_model_without_classifier_gives_the_sources_pooled_features():
    torch.manual_seed(0)
    source = resnetlab.create_model("resnet20").eval()
    target = resnetlab.create_model("resnet20")
    target.reset_classifier(0)
    notes = load_adapted(target, source.state_dict(), "resnet20.safetensors")
    assert notes == ["classifier removed: pooled features"]
    images = _images(source)
    with torch.no_grad():
        expected = source.forward_head(source.forward_features(images), pre_logits=True)
        torch.testing.assert_close(target.eval()(images), expected, rtol=0, atol=0)


def test_load_pretrained_replaces_the_head_and_adapts_the_first_conv(tmp_path):
    torch.manual_seed(0)
    source = resnetlab.create_model("resnet20", num_classes=10)
    torch.save(source.state_dict(), tmp_path / "resnet20.pth")
    target = resnetlab.create_model("resnet20", num_classes=3, in_chans=1)
    fresh_head = target.get_classifier().weight.clone()
    notes = load_pretrained(target, tmp_path / "resnet20.pth")
    assert notes == ["classifier replaced: 10 -> 3 classes",
                     "first convolution summed over its 3 input channels for 1-channel input"]
    torch.testing.assert_close(target.get_first_conv().weight, source.get_first_conv().weight.sum(1, keepdim=True))
    torch.testing.assert_close(target.get_classifier().weight, fresh_head)  # a replaced head stays fresh
    four = resnetlab.create_model("resnet20", in_chans=4)
    assert load_pretrained(four, tmp_path / "resnet20.pth") == [
        "first convolution repeated from 3 to 4 input channels and scaled by 3/4"]


@pytest.mark.parametrize("name", ["resnet20", "resnet50", "preact_resnet18", "preact_resnet164", "tutorial_cnn"])
def test_fold_pairs_name_each_norm_that_directly_follows_a_conv_once(name):
    with torch.device("meta"):
        model = resnetlab.create_model(name)
    pairs = [pair for module in model.modules() if hasattr(module, "fold_pairs") for pair in module.fold_pairs()]
    norms = [id(norm) for _, norm in pairs]
    assert len(norms) == len(set(norms))
    assert all(isinstance(conv, nn.Conv2d) and conv.out_channels == norm.num_features for conv, norm in pairs)
    every_norm = {id(m) for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    if name in ("resnet20", "resnet50"):  # post-activation: every BatchNorm follows a convolution
        assert set(norms) == every_norm
    else:  # pre-activation: the norms before a conv (and bn_final) stay
        assert set(norms) < every_norm or not every_norm
