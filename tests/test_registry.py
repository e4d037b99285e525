from __future__ import annotations

import pytest
import torch

import resnetlab
from resnetlab.errors import ConfigError
from resnetlab.registry import _MODELS, register_model


def test_list_models_natural_order_and_patterns():
    names = resnetlab.list_models("resnet*")
    assert names.index("resnet18") < names.index("resnet34") < names.index("resnet101") < names.index("resnet152")
    assert resnetlab.list_models("wrn*") == ["wrn16_8", "wrn28_10", "wrn40_4"]
    assert resnetlab.list_models(family="plain") == ["plain20", "plain32", "plain44", "plain56", "plain110"]
    required = {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "wide_resnet50_2", "wide_resnet101_2",
                "resnext50_32x4d", "resnext101_32x8d", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
                "resnet1202", "plain20", "plain32", "plain44", "plain56", "plain110", "preact_resnet18",
                "preact_resnet110", "preact_resnet164", "wrn16_8", "wrn28_10", "tutorial_cnn"}
    assert required <= set(resnetlab.list_models())


def test_unknown_model_suggests_the_closest():
    with pytest.raises(ConfigError, match=r"unknown model 'resnet5'; did you mean 'resnet50' or 'resnet56'\?"):
        resnetlab.create_model("resnet5")
    with pytest.raises(ValueError, match="resnetlab models"):
        resnetlab.create_model("alexnet")


def test_duplicate_registration_raises():
    def resnet18(*, num_classes=10, **kw):  # same name as a registered builder
        raise AssertionError("never built")

    with pytest.raises(ValueError, match="already registered"):
        register_model(family="cifar")(resnet18)


def test_register_and_create_a_new_model():
    @register_model(family="baseline", residual=False)
    def tiny_linear_for_test(*, num_classes: int = 3, in_chans: int = 3):
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(num_classes))

    try:
        model = resnetlab.create_model("tiny_linear_for_test", num_classes=4)
        assert model.arch.num_classes == 4 and model.arch.name == "tiny_linear_for_test"
        with pytest.raises(ConfigError, match="does not take option"):
            resnetlab.create_model("tiny_linear_for_test", stem="small")
    finally:
        del _MODELS["tiny_linear_for_test"]


def test_create_model_records_arch_and_validates():
    model = resnetlab.create_model("resnet20", num_classes=100, in_chans=1, shortcut="B")
    assert model.arch.to_dict() == {"name": "resnet20", "num_classes": 100, "in_chans": 1,
                                    "options": {"shortcut": "B"}}
    with pytest.raises(ConfigError, match="num_classes"):
        resnetlab.create_model("resnet20", num_classes=-1)
    with pytest.raises(ValueError, match="unknown shortcut 'C'"):
        resnetlab.create_model("resnet20", shortcut="C")
    with pytest.raises(ValueError, match="unknown stem"):
        resnetlab.create_model("resnet18", stem="tiny")
    with pytest.raises(ConfigError, match="does not take option .colour."):
        resnetlab.create_model("resnet18", colour="blue")
