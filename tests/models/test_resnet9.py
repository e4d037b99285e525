"""ResNet-9 (Page 2018) and its airbench-derived options: layout, whitening, frozen parameters, scaled head."""

from __future__ import annotations

import pytest
import torch

import resnetlab
from resnetlab.errors import ConfigError
from resnetlab.models.resnet9 import WHITEN_EPS, Residual, ScaledLinear


def test_pages_layout_widths_residuals_and_feature_map_sizes():
    model = resnetlab.create_model("resnet9").eval()
    shapes = {}
    x = model.prep(model.conv1(torch.randn(2, 3, 32, 32)))
    shapes["prep"] = tuple(x.shape[1:])
    for name in ("layer1", "layer2", "layer3"):
        x = getattr(model, name)(x)
        shapes[name] = tuple(x.shape[1:])
    assert shapes == {"prep": (64, 32, 32), "layer1": (128, 16, 16), "layer2": (256, 8, 8), "layer3": (512, 4, 4)}
    residual = [name for name in ("layer1", "layer2", "layer3")
                if any(isinstance(m, Residual) for m in getattr(model, name))]
    assert residual == ["layer1", "layer3"]
    assert len(model.layer1[1].branch) == 2  # two conv-BN-ReLU in each residual branch


def test_the_head_multiplies_the_logits_and_keeps_its_scale_when_replaced():
    model = resnetlab.create_model("resnet9", num_classes=10).eval()
    features = torch.randn(3, 512)
    torch.testing.assert_close(model.fc(features), 0.125 * features @ model.fc.weight.T)
    assert model.fc.bias is None
    model.reset_classifier(4)
    assert isinstance(model.fc, ScaledLinear) and model.fc.scale == 0.125 and model.fc.out_features == 4
    airbench = resnetlab.create_model("resnet9_airbench")
    assert airbench.fc.scale == pytest.approx(1 / 9)


def test_width_and_depth_options():
    narrow = resnetlab.create_model("resnet9", width=32, residual_convs=1, residual_layers=(2,))
    assert narrow.conv1.out_channels == 32 and narrow.num_features == 256
    assert [any(isinstance(m, Residual) for m in layer) for layer in (narrow.layer1, narrow.layer2, narrow.layer3)] \
        == [False, True, False]
    assert len(narrow.layer2[1].branch) == 1
    plain = resnetlab.create_model("resnet9", residual_layers=())
    assert not any(isinstance(m, Residual) for m in plain.modules())
    assert plain(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_shortcut_layers_leave_the_other_branches_as_plain_stacks_with_the_same_parameters():
    torch.manual_seed(0)
    residual = resnetlab.create_model("resnet8_airbench").eval()
    plain_first = resnetlab.create_model("resnet8_airbench", shortcut_layers=(2, 3)).eval()
    plain_first.load_state_dict(residual.state_dict())  # same names and shapes: only the wiring differs
    assert [block.shortcut for block in (plain_first.layer1[1], plain_first.layer2[1], plain_first.layer3[1])] \
        == [False, True, True]
    x = torch.randn(3, 64, 15, 15)
    with torch.no_grad():
        block = plain_first.layer1[1]
        torch.testing.assert_close(block(x), block.branch(x))
        torch.testing.assert_close(residual.layer1[1](x), x + block.branch(x))
        images = torch.randn(2, 3, 32, 32)
        assert not torch.allclose(plain_first(images), residual(images))
    assert "shortcut=False" in repr(plain_first.layer1[1])
    plain = resnetlab.create_model("resnet8_airbench", shortcut_layers=())  # airbench94's own net, conv for conv
    assert not any(m.shortcut for m in plain.modules() if isinstance(m, Residual))
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in residual.parameters())


@pytest.mark.parametrize("options, message", [
    ({"width": 0}, "width must be at least 1"),
    ({"activation": "swish"}, "activation must be relu or gelu"),
    ({"residual_layers": (4,)}, "residual_layers must name layers among 1, 2, 3"),
    ({"residual_layers": (1, 3), "shortcut_layers": (2,)}, r"shortcut_layers must be among residual_layers=\(1, 3\)"),
    ({"norm": "none"}, "norm must be scale_and_bias or bias"),
    ({"depth": 3}, "does not take option 'depth'"),
    ({"conv_init": "orthogonal"}, "conv_init must be kaiming, dirac or pytorch"),
    ({"shortcut_layers": 2}, r"shortcut_layers must be a list of layer numbers such as \[1, 3\], got 2"),
    ({"residual_layers": 3}, "residual_layers must be a list of layer numbers"),
])
def test_bad_options_say_what_is_allowed(options, message):
    with pytest.raises(ConfigError, match=message):
        resnetlab.create_model("resnet9", **options)


def test_airbench_options_freeze_the_whitening_weights_and_batchnorm_scales():
    model = resnetlab.create_model("resnet9_airbench")
    frozen = sorted(name for name, p in model.named_parameters() if not p.requires_grad)
    assert frozen[0] == "conv1.weight" and "conv1.bias" not in frozen
    assert all(name == "conv1.weight" or name.endswith("bn.weight") for name in frozen)
    assert model.conv1.kernel_size == (2, 2) and model.conv1.out_channels == 24
    assert isinstance(model.prep, torch.nn.GELU)
    bn = model.layer1[0].bn
    assert (bn.momentum, bn.eps) == (0.4, 1e-12)
    # pool before norm: BatchNorm sees the pooled map, so it cannot be folded into the conv
    assert model.layer1[0].pool_first and model.layer1[0].fold_pairs() == []
    assert resnetlab.create_model("resnet9").layer1[0].fold_pairs() != []


def test_whitening_from_data_decorrelates_2x2_patches():
    torch.manual_seed(0)
    base = torch.randn(400, 3, 8, 8)
    images = base + 0.8 * base.roll(1, dims=1) + 0.5 * base.roll(1, dims=3)  # correlated channels and pixels
    model = resnetlab.create_model("resnet9_airbench")
    assert model.init_from_data(images)
    with torch.no_grad():
        out = torch.nn.functional.conv2d(images, model.conv1.weight)  # without the bias
    first = out[:, :12].permute(0, 2, 3, 1).reshape(-1, 12)
    covariance = first.T @ first / len(first)
    eigen = torch.linalg.eigvalsh(torch.cov(images.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5)
                                            .reshape(-1, 12).T, correction=0))
    expected = torch.diag((eigen / (eigen + WHITEN_EPS)).flip(0))  # 1 up to the eps, largest component first
    torch.testing.assert_close(covariance, expected, atol=2e-3, rtol=0)
    torch.testing.assert_close(out[:, 12:], -out[:, :12])  # and the negated filters
    assert not resnetlab.create_model("resnet9").init_from_data(images)  # the plain stem has nothing to set


def test_too_small_inputs_are_refused_with_what_to_do():
    with pytest.raises(ConfigError, match=r"at least 9x9 pixels, got \(8, 8\); resize the images \(img_size=32 for"):
        resnetlab.create_model("resnet9_airbench")(torch.randn(2, 3, 8, 8))


def test_training_on_too_small_images_ends_in_the_message_not_a_traceback(tmp_path, capsys):
    from resnetlab.cli import main  # the 8x8 embedded digits are too small for the whitened stem
    code = main(["train", "model=resnet8_airbench", "epochs=1", "max_steps=1", f"project={tmp_path}"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert "needs inputs of at least 9x9 pixels, got (8, 8)" in err and "resnet20" in err


def test_a_training_run_whitens_the_fresh_model(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.integers(0, 255, (64, 16, 16, 3), dtype=np.uint8),
             y_train=rng.integers(0, 2, 64))
    result = resnetlab.train(model="resnet9_airbench", data=str(tmp_path / "d.npz"), epochs=1, batch_size=32,
                             project=str(tmp_path), display="none", plots=False, checkpoint_minutes=0,
                             precision="fp32", val_fraction=0.25)
    from resnetlab.checkpoint import load_model

    model, _ = load_model(result.best_path)
    weight = model.conv1.weight.flatten(1)  # frozen: as the whitening set it, after the epoch of training
    assert torch.equal(weight[:12], -weight[12:])  # the filters and their negatives, not a random init
    gram = weight[:12] @ weight[:12].T  # eigenvectors scaled: orthogonal to each other
    torch.testing.assert_close(gram, torch.diag(gram.diagonal()), atol=1e-3 * gram.abs().max().item(), rtol=0)


def test_keras_fit_whitens_a_fresh_model_at_its_first_fit():
    import numpy as np

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 255, (48, 16, 16, 3), dtype=np.uint8), rng.integers(0, 2, 48)
    clf = resnetlab.Classifier("resnet9_airbench", num_classes=2, input_shape=(16, 16, 3))
    before = clf.model.conv1.weight.clone()
    clf.fit(x, y, epochs=1, batch_size=16, verbose=0)
    weight = clf.model.conv1.weight
    assert not torch.equal(weight, before) and torch.equal(weight[:12], -weight[12:])
    set_once = weight.clone()
    clf.fit(x, y, epochs=1, batch_size=16, verbose=0)  # later fits keep it (and the frozen weights stay)
    assert torch.equal(clf.model.conv1.weight, set_once)


def test_settings_words_reach_resnet9_and_a_stem_of_another_family_is_refused():
    from resnetlab.config import load_config

    model_cfg = load_config(overrides={"model": "resnet9_airbench", "width": 16, "stem": "conv"}).model
    model = resnetlab.create_model(model_cfg.name, **model_cfg.options())
    assert model.conv1.out_channels == 16 and model.num_features == 128 and model.stem == "conv"
    with pytest.raises(ConfigError, match="stem"):
        resnetlab.create_model("resnet20", stem="whiten")
    with pytest.raises(ConfigError, match="does not take option 'width'"):
        resnetlab.create_model("resnet20", width=16)


def test_flops_of_the_fast_family_from_their_layer_shapes():
    from resnetlab.models.summary import count_flops

    # resnet8_airbench at 32x32, multiply-adds per layer: whitening 2x2 (31x31 out), then layer by layer at
    # 31x31, 15x15 (residual), 15x15, 7x7 (residual), 7x7, 3x3 (residual), and the linear head
    macs = (31 * 31 * 24 * 3 * 4 + 31 * 31 * 64 * 24 * 9 + 15 * 15 * 64 * 64 * 9 + 15 * 15 * 256 * 64 * 9
            + 7 * 7 * 256 * 256 * 9 * 2 + 3 * 3 * 256 * 256 * 9 + 256 * 10)
    assert count_flops(resnetlab.create_model("resnet8_airbench"), (3, 32, 32)) == 2 * macs  # 0.236 GFLOPs
    # Page's ResNet-9: prep at 32x32, layer1 at 32x32 then its residual at 16x16, layer2 at 16x16, layer3 at
    # 8x8 then its residual at 4x4
    page = (32 * 32 * 64 * 3 * 9 + 32 * 32 * 128 * 64 * 9 + 2 * 16 * 16 * 128 * 128 * 9 + 16 * 16 * 256 * 128 * 9
            + 8 * 8 * 512 * 256 * 9 + 2 * 4 * 4 * 512 * 512 * 9 + 512 * 10)
    assert count_flops(resnetlab.create_model("resnet9"), (3, 32, 32)) == 2 * page  # 0.759 GFLOPs


def test_dirac_init_starts_each_conv_as_an_identity_on_its_inputs_as_airbench94s_does():
    torch.manual_seed(0)
    model = resnetlab.create_model("resnet8_airbench", conv_init="dirac")
    conv = model.layer2[1].branch[0].conv  # 256 -> 256: every filter an identity
    x = torch.randn(2, 256, 7, 7)
    torch.testing.assert_close(conv(x), x)
    widen = model.layer1[0].conv  # 24 -> 64: the first 24 filters pass the input, the other 40 keep nn.Conv2d's init
    bound = 1 / (24 * 9) ** 0.5  # nn.Conv2d's default: uniform within 1/sqrt(fan_in)
    torch.testing.assert_close(widen(torch.ones(1, 24, 5, 5))[0, :24, 2, 2], torch.ones(24))
    assert widen.weight[24:].abs().max() <= bound and widen.weight[24:].std() > bound / 3
    assert model.conv1.weight.abs().sum() > 0  # the whitening conv is left to init_from_data
    kaiming = resnetlab.create_model("resnet8_airbench").layer2[1].branch[0].conv.weight
    assert kaiming.std().item() == pytest.approx((2 / (256 * 9)) ** 0.5, rel=0.05)  # He et al., fan_out


def test_pytorch_init_is_nn_conv2ds_own_uniform_without_identities():
    torch.manual_seed(0)
    conv = resnetlab.create_model("resnet8_airbench", conv_init="pytorch").layer2[1].branch[0].conv
    bound = 1 / (256 * 9) ** 0.5  # kaiming_uniform(a=sqrt(5)): uniform within 1/sqrt(fan_in)
    assert conv.weight.abs().max() <= bound
    assert conv.weight.std().item() == pytest.approx(bound / 3 ** 0.5, rel=0.05)  # a uniform's std: bound/sqrt(3)
    assert conv.weight[0, 0, 1, 1].abs() < 0.5  # no identity at the centre, unlike dirac's 1
