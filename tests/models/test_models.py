"""Invariants of every registered model (parametrized over list_models, so new models are covered)."""

from __future__ import annotations

import pytest
import torch

import resnetlab
from resnetlab.models.layers import DropPath
from resnetlab.registry import get_model_entry

ALL = resnetlab.list_models()
BIG = {"resnet1202", "preact_resnet1001", "wide_resnet101_2", "resnext101_32x8d", "resnext101_64x4d", "resnet152",
       "wrn28_10"}

# He et al. 2015 Sec. 4.2 (CIFAR, 10 classes, option A) and torchvision's documented counts (1000 classes).
PARAM_COUNTS = {
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032, "resnet101": 44_549_160,
    "resnet152": 60_192_808, "wide_resnet50_2": 68_883_240, "wide_resnet101_2": 126_886_696,
    "resnext50_32x4d": 25_028_904, "resnext101_32x8d": 88_791_336, "resnext101_64x4d": 83_455_272,
    "resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586, "resnet56": 853_018, "resnet110": 1_727_962,
    "resnet1202": 19_421_274,
    # plain twins: option-A shortcuts have no parameters, so the counts are the same
    "plain20": 269_722, "plain32": 464_154, "plain44": 658_586, "plain56": 853_018, "plain110": 1_727_962,
    # pre-activation and wide: the papers' rounded figures are 1.7M, 1.7M, 10.2M, 11.0M, 36.5M, 8.9M
    "preact_resnet110": 1_730_522, "preact_resnet164": 1_703_258, "preact_resnet1001": 10_327_706,
    "wrn16_8": 10_961_370, "wrn28_10": 36_479_194, "wrn40_4": 8_949_210,
    # Kuang Liu's CIFAR PreActResNet-18 has 11,171,146; ours adds the paper's final BN (512 x 2)
    "preact_resnet18": 11_172_170,
    # 32x32x3 input: convs 896 + 18,496 + 73,856, dense 2048x128 + 128, output 128x10 + 10
    "tutorial_cnn": 356_810,
    # Page's ResNet-9 (DAWNBench, "6.5M"): convs 1,728 + 73,728 + 2x147,456 + 294,912 + 1,179,648 + 2x2,359,296,
    # BatchNorm 2 x (64 + 128x3 + 256 + 512x3), linear 512x10 without bias
    "resnet9": 6_573_120,
    # airbench's whitening stem: 3->24 channels 2x2 with bias (312) instead of the 64-channel prep conv and BN
    "resnet9_airbench": 6_525_496,
    # airbench94's network (its published 1.97M): whitening 312, convs 24x64x9 + 64x64x9 + 64x256x9 + 3 x 256x256x9,
    # BatchNorm 2 x 2 x (64 + 256 + 256) (bias and the fixed scale), linear 256x10; shortcuts add none
    "resnet8_airbench": 1_972_792,
}


def _input_for(model: torch.nn.Module, batch: int = 2) -> torch.Tensor:
    c, h, w = model.default_input_size
    side = 64 if h >= 224 else h  # ImageNet models at 64x64 keep the test fast (2x2 at layer4)
    return torch.randn(batch, c, side, side)


def _slow(name: str):
    return pytest.param(name, marks=pytest.mark.slow) if name in BIG else name


@pytest.mark.parametrize("name", [_slow(n) for n in ALL])
def test_forward_backward_every_parameter_gets_gradient(name):
    torch.manual_seed(0)
    model = resnetlab.create_model(name, num_classes=7)
    images = _input_for(model)
    logits = model(images)
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()
    logits.square().mean().backward()
    # frozen by design (a whitening conv, BatchNorm scales of norm="bias") get none
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
    assert not missing, f"no finite gradient for {missing[:5]}"
    assert any(p.grad.abs().sum() > 0 for p in model.parameters() if p.grad is not None)


def test_every_registered_model_has_a_known_parameter_count():
    assert set(ALL) <= set(PARAM_COUNTS), "add the new model's parameter count (and its source) above"


@pytest.mark.parametrize("name", ALL)
def test_parameter_count(name):
    with torch.device("meta"):
        model = resnetlab.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == PARAM_COUNTS[name]


@pytest.mark.parametrize("name", [_slow(n) for n in ALL])
def test_features_head_and_reset_classifier(name):
    # Training mode: BatchNorm uses batch statistics, which keeps untrained 1000-layer nets finite
    # (with the initial running statistics their activations overflow at evaluation).
    model = resnetlab.create_model(name, num_classes=5).train()
    images = _input_for(model)
    with torch.no_grad():
        features = model.forward_features(images)
        assert features.ndim == 4 and features.shape[1] == model.num_features
        pooled = model.forward_head(features, pre_logits=True)
        assert pooled.shape == (2, model.num_features)
        torch.testing.assert_close(model.fc(pooled), model(images))
        model.reset_classifier(3)
        assert model(images).shape == (2, 3)
        assert model.arch.num_classes == 3
        model.reset_classifier(0)
        torch.testing.assert_close(model(images), pooled)


@pytest.mark.parametrize("name", ["resnet18", "resnet20", "preact_resnet18", "wrn16_8", "tutorial_cnn"])
def test_grayscale_input(name):
    model = resnetlab.create_model(name, num_classes=4, in_chans=1).eval()
    c, h, w = model.default_input_size
    assert c == 1
    assert model(torch.randn(2, 1, min(h, 64), min(w, 64))).shape == (2, 4)


def test_default_class_counts():
    with torch.device("meta"):
        assert resnetlab.create_model("resnet50").fc.out_features == 1000
        assert resnetlab.create_model("resnet56").fc.out_features == 10


@pytest.mark.parametrize("name", ["resnet20", "resnet50", "preact_resnet110", "wrn16_8"])
def test_zero_init_residual_makes_blocks_identity(name):
    torch.manual_seed(0)
    model = resnetlab.create_model(name, zero_init_residual=True).eval()
    block = model.layer1[1]  # a block without projection: output = relu(input) (or input for pre-act)
    x = torch.randn(2, block.conv1.in_channels, 8, 8)
    expected = x if model.preact else torch.relu(x)
    torch.testing.assert_close(block(x), expected)


def test_drop_path_rates_rise_linearly_and_apply_only_in_training():
    model = resnetlab.create_model("resnet20", drop_path_rate=0.2)
    rates = [b.drop_path.rate for stage in (model.layer1, model.layer2, model.layer3) for b in stage]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.2)
    assert all(a <= b for a, b in zip(rates, rates[1:]))
    model.eval()
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(model(x), model(x))  # no dropping at evaluation


def test_drop_path_drops_whole_samples_and_rescales():
    drop = DropPath(0.5).train()
    torch.manual_seed(0)
    out = drop(torch.ones(4000, 3, 2, 2))
    per_sample = out.flatten(1)
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}  # kept samples scaled by 1 / (1 - 0.5)
    assert (per_sample[:, 0] == 0).float().mean().item() == pytest.approx(0.5, abs=0.03)
    assert (per_sample == per_sample[:, :1]).all()  # a sample is dropped whole, never in part
    assert torch.equal(drop.eval()(torch.ones(3, 2)), torch.ones(3, 2))


@pytest.mark.parametrize("name", ["plain20", "tutorial_cnn"])
def test_models_without_residuals_reject_residual_options(name):
    with pytest.raises(ValueError, match="residual"):
        resnetlab.create_model(name, drop_path_rate=0.1)
    with pytest.raises(ValueError, match="residual"):
        resnetlab.create_model(name, zero_init_residual=True)
    assert get_model_entry(name).residual is False


@pytest.mark.parametrize("name, options, message", [
    ("plain20", {"shortcut": "A"}, "plain20 fixes shortcut itself"),
    ("resnext50_32x4d", {"groups": 64}, "resnext50_32x4d fixes groups itself"),
    ("resnet18", {"colour": "blue"}, "does not take option 'colour'"),
    ("wrn16_8", {"block_drop_rate": 1.5}, "block_drop_rate must be in [0, 1)"),
])
def test_option_errors_are_config_errors(name, options, message):
    from resnetlab.errors import ConfigError

    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        resnetlab.create_model(name, **options)


@pytest.mark.parametrize("name", ["resnet20", "resnet56", "wrn16_8", "preact_resnet110", "resnet18"])
def test_stem_option_is_accepted_by_every_residual_family(name):
    model = resnetlab.create_model(name, stem="small")
    assert model.stem == "small"


def test_small_stem_keeps_resolution():
    model = resnetlab.create_model("resnet18", num_classes=10, stem="small")
    assert model.default_input_size == (3, 32, 32)
    assert model.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 512, 4, 4)
    standard = resnetlab.create_model("resnet18")
    assert standard.forward_features(torch.randn(2, 3, 64, 64)).shape == (2, 512, 2, 2)


def test_option_b_shortcuts_add_projections():
    a = resnetlab.create_model("resnet20")
    b = resnetlab.create_model("resnet20", shortcut="B")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # two projections: 16->32 (512 + BN 64) and 32->64 (2048 + BN 128)
    assert count(b) - count(a) == 512 + 64 + 2048 + 128
    assert "layer2.0.downsample.0.weight" in b.state_dict()
    assert not any("downsample" in k for k in a.state_dict())


def test_plain_nets_have_no_shortcut_path():
    model = resnetlab.create_model("plain20").eval()
    block = model.layer1[0]
    with torch.no_grad():
        for module in (block.bn2,):
            module.weight.zero_()
            module.bias.zero_()
    x = torch.randn(1, 16, 8, 8)
    assert torch.count_nonzero(block(x)) == 0  # zero branch and no identity: the output is zero


def test_tutorial_cnn_layout_and_size_check():
    model = resnetlab.create_model("tutorial_cnn", num_classes=10, img_size=28)
    convs = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs == [32, 64, 128]
    assert model.fc1.in_features == 128 * 3 * 3 and model.fc1.out_features == 128
    assert model(torch.randn(2, 3, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="img_size=28"):
        model(torch.randn(2, 3, 32, 32))
