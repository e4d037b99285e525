"""The weights tables against the publishers' own: torchvision's classification table, the CIFAR READMEs.

TORCHVISION is copied by hand from torchvision's documentation (pytorch.org/vision/stable/models.html,
"Table of all available classification weights", and each weight's page: "The inference transforms ...
resized to resize_size=[256] (232 for the V2 weights) ... central crop of crop_size=[224] ... bilinear ...
mean=[0.485, 0.456, 0.406] and std=[0.229, 0.224, 0.225]"), not from resnetlab's table, so a typo in either
shows. GFLOPS are the docs' numbers, rounded as the docs print them.
"""

from __future__ import annotations

import json

import pytest
import torch
from rich.console import Console

import resnetlab
from resnetlab import cli
from resnetlab.cli import catalog
from resnetlab.weights import torchvision as tv_table
from resnetlab.weights import weights_entries

# (arch, weights, file name, acc@1, acc@5, params, GFLOPS, resize) -- torchvision docs, crop 224 throughout
TORCHVISION = [
    ("resnet18", "IMAGENET1K_V1", "resnet18-f37072fd.pth", 69.758, 89.078, 11_689_512, 1.81, 256),
    ("resnet34", "IMAGENET1K_V1", "resnet34-b627a593.pth", 73.314, 91.420, 21_797_672, 3.66, 256),
    ("resnet50", "IMAGENET1K_V1", "resnet50-0676ba61.pth", 76.130, 92.862, 25_557_032, 4.09, 256),
    ("resnet50", "IMAGENET1K_V2", "resnet50-11ad3fa6.pth", 80.858, 95.434, 25_557_032, 4.09, 232),
    ("resnet101", "IMAGENET1K_V1", "resnet101-63fe2227.pth", 77.374, 93.546, 44_549_160, 7.8, 256),
    ("resnet101", "IMAGENET1K_V2", "resnet101-cd907fc2.pth", 81.886, 95.780, 44_549_160, 7.8, 232),
    ("resnet152", "IMAGENET1K_V1", "resnet152-394f9c45.pth", 78.312, 94.046, 60_192_808, 11.51, 256),
    ("resnet152", "IMAGENET1K_V2", "resnet152-f82ba261.pth", 82.284, 96.002, 60_192_808, 11.51, 232),
    ("resnext50_32x4d", "IMAGENET1K_V1", "resnext50_32x4d-7cdf4587.pth", 77.618, 93.698, 25_028_904, 4.23, 256),
    ("resnext50_32x4d", "IMAGENET1K_V2", "resnext50_32x4d-1a0047aa.pth", 81.198, 95.340, 25_028_904, 4.23, 232),
    ("resnext101_32x8d", "IMAGENET1K_V1", "resnext101_32x8d-8ba56ff5.pth", 79.312, 94.526, 88_791_336, 16.41, 256),
    ("resnext101_32x8d", "IMAGENET1K_V2", "resnext101_32x8d-110c445d.pth", 82.834, 96.228, 88_791_336, 16.41, 232),
    ("resnext101_64x4d", "IMAGENET1K_V1", "resnext101_64x4d-173b62eb.pth", 83.246, 96.454, 83_455_272, 15.46, 232),
    ("wide_resnet50_2", "IMAGENET1K_V1", "wide_resnet50_2-95faca4d.pth", 78.468, 94.086, 68_883_240, 11.4, 256),
    ("wide_resnet50_2", "IMAGENET1K_V2", "wide_resnet50_2-9ba9bcbe.pth", 81.602, 95.758, 68_883_240, 11.4, 232),
    ("wide_resnet101_2", "IMAGENET1K_V1", "wide_resnet101_2-32ee1156.pth", 78.848, 94.284, 126_886_696, 22.75, 256),
    ("wide_resnet101_2", "IMAGENET1K_V2", "wide_resnet101_2-d733dc28.pth", 82.51, 96.02, 126_886_696, 22.75, 232),
]
ARCHS = sorted({row[0] for row in TORCHVISION})
# torchvision's DEFAULT: the V2 weights where an architecture has them, else V1
DEFAULTS = {arch: "IMAGENET1K_V2" if (arch, "IMAGENET1K_V2") in {r[:2] for r in TORCHVISION} else "IMAGENET1K_V1"
            for arch in ARCHS}

# acc@1 by depth: akamaster's README (100 - error of "this implementation"), chenyaofo's README
AKAMASTER = {20: 91.73, 32: 92.63, 44: 93.10, 56: 93.39, 110: 93.68, 1202: 93.82}
CHENYAOFO = {"cifar10": {20: 92.60, 32: 93.53, 44: 94.01, 56: 94.37},
             "cifar100": {20: 68.83, 32: 70.16, 44: 71.63, 56: 72.63}}

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _published(source: str | None = None):
    """The registry's own entries (a test's synthetic ones, source "test", left out)."""
    return [e for e in weights_entries(source=source) if e.source != "test"]


_PARAMS: dict[tuple, int] = {}


def _param_count(arch: str, num_classes: int | None = None, **options) -> int:
    """Parameters of create_model(arch, ...), built on the meta device: no memory for 127M parameters."""
    key = (arch, num_classes, tuple(sorted(options.items())))
    if key not in _PARAMS:
        kwargs = {} if num_classes is None else {"num_classes": num_classes}
        with torch.device("meta"):
            model = resnetlab.create_model(arch, **kwargs, **options)
        assert next(model.parameters()).is_meta
        _PARAMS[key] = sum(p.numel() for p in model.parameters())
    return _PARAMS[key]


def test_the_meta_device_counts_what_a_real_model_has():
    real = resnetlab.create_model("resnet18")
    assert _param_count("resnet18") == sum(p.numel() for p in real.parameters()) == 11_689_512


def test_the_torchvision_entries_are_exactly_torchvisions_resnet_weights():
    registered = {(e.arch, e.name) for e in _published("torchvision")}
    assert registered == {row[:2] for row in TORCHVISION}
    assert len(TORCHVISION) == 17


@pytest.mark.parametrize("row", TORCHVISION, ids=[f"{r[0]}.{r[1]}" for r in TORCHVISION])
def test_each_torchvision_entry_matches_the_docs_table(row):
    arch, name, filename, acc1, acc5, params, gflops, resize = row
    entry = resnetlab.weights.find_weights(arch, name)
    assert entry.source == "torchvision"
    assert entry.metrics == {"acc@1": acc1, "acc@5": acc5}
    assert entry.num_params == params
    assert entry.url == f"https://download.pytorch.org/models/{filename}"
    assert entry.filename == filename
    assert entry.hash_prefix == filename.rsplit("-", 1)[1].removesuffix(".pth")
    assert len(entry.hash_prefix) == 8 and int(entry.hash_prefix, 16) >= 0
    assert entry.input_size == (3, 224, 224)
    assert entry.resize == resize
    assert entry.crop_pct == pytest.approx(224 / resize)
    assert entry.interpolation == "bilinear"
    assert entry.mean == IMAGENET_MEAN and entry.std == IMAGENET_STD
    assert entry.classes == "imagenet" and entry.num_classes == 1000
    assert entry.default == (name == DEFAULTS[arch])
    assert resnetlab.weights.find_weights(arch, "DEFAULT") is resnetlab.weights.find_weights(arch, DEFAULTS[arch])
    assert round(tv_table.GFLOPS[arch], 2) == gflops  # the docs print two decimals (7.8, 11.4: trailing 0 dropped)


@pytest.mark.parametrize("arch", ARCHS)
def test_torchvisions_parameter_count_is_what_create_model_builds(arch):
    params = {row[5] for row in TORCHVISION if row[0] == arch}
    assert params == {_param_count(arch)}


@pytest.mark.slow  # resnet1202 takes 2.5 s to build even on the meta device
def test_every_entry_of_every_source_has_the_parameters_of_the_model_it_loads_into():
    entries = _published()
    assert {e.source for e in entries} == {"torchvision", "timm", "akamaster", "chenyaofo"}
    wrong = [(e.arch, e.name, e.num_params, _param_count(e.arch, e.num_classes, **e.options)) for e in entries
             if _param_count(e.arch, e.num_classes, **e.options) != e.num_params]
    assert not wrong, wrong


def test_the_cifar_entries_have_the_readmes_accuracy():
    aka = {int(e.arch.removeprefix("resnet")): e for e in _published("akamaster")}
    assert {depth: e.metrics["acc@1"] for depth, e in aka.items()} == AKAMASTER
    assert all(e.name == "CIFAR10_AKAMASTER" and e.classes == "cifar10" and e.default for e in aka.values())
    assert all(e.options == {} and e.rename == (("linear.", "fc."),) for e in aka.values())  # option A
    for dataset, table in CHENYAOFO.items():
        chen = {int(e.arch.removeprefix("resnet")): e for e in _published("chenyaofo") if e.classes == dataset}
        assert {depth: e.metrics["acc@1"] for depth, e in chen.items()} == table
        assert all(e.name == f"{dataset.upper()}_CHENYAOFO" and e.options == {"shortcut": "B"} for e in chen.values())
        assert all(e.hash_prefix in e.filename and e.filename.startswith(f"{dataset}_{e.arch}-")
                   for e in chen.values())
    for e in _published("akamaster") + _published("chenyaofo"):
        assert e.input_size == (3, 32, 32) and e.crop_pct == 1.0  # evaluated on the 32x32 images as they are
        assert e.default == (e.source == "akamaster")  # DEFAULT for a CIFAR net: akamaster's CIFAR-10 weights


def test_list_weights_starts_with_the_default_then_torchvision_then_timm():
    list_weights = resnetlab.list_weights  # the public name
    assert list_weights is resnetlab.weights.list_weights
    names = list_weights("resnet50")
    assert names == ["IMAGENET1K_V2", "IMAGENET1K_V1", "timm:resnet50.a1_in1k", "timm:resnet50.a1h_in1k",
                     "timm:resnet50.tv2_in1k", "timm:resnet50.tv_in1k"]
    for arch in ARCHS:
        assert list_weights(arch)[0] == DEFAULTS[arch]
    assert list_weights("resnet20")[0] == "CIFAR10_AKAMASTER"  # the CIFAR nets' default
    assert "resnet50.IMAGENET1K_V2" in list_weights("resnet5*")  # a pattern: qualified names


def test_the_weights_command_lists_them_as_json(mirror, capsys):  # mirror: empty caches of the test's own
    assert cli.main(["weights", "resnet50", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["weights"] for row in rows] == resnetlab.list_weights("resnet50")
    assert all(row["model"] == "resnet50" and row["cached"] is False for row in rows)
    v2 = rows[0]
    assert v2["weights"] == "IMAGENET1K_V2" and v2["default"] is True and v2["source"] == "torchvision"
    assert v2["acc@1"] == 80.858 and v2["acc@5"] == 95.434 and v2["params"] == 25_557_032
    assert v2["resize"] == 232 and v2["input"] == "224" and v2["interpolation"] == "bilinear"
    assert v2["url"] == "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"
    assert rows[1]["resize"] == 256 and rows[1]["default"] is False


def test_the_weights_command_prints_a_table_marking_the_default(mirror, capsys, monkeypatch):
    monkeypatch.setattr(catalog, "console", Console(width=200))  # rich draws for 80 columns when not on a terminal
    assert cli.main(["weights", "resnet50"]) == 0
    out = capsys.readouterr().out
    assert "IMAGENET1K_V2 *" in out
    assert "IMAGENET1K_V1 *" not in out and "IMAGENET1K_V1" in out
    assert "80.86" in out and "232->224 bilinear" in out and "25,557,032" in out


def test_the_weights_table_fits_80_columns_with_every_name_whole(mirror, capsys, monkeypatch):
    monkeypatch.setattr(catalog, "console", Console(width=80))
    assert cli.main(["weights"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "…" not in out  # no name, number or header cut short
    assert "timm:wide_resnet50_2.racm_in1k" in out and "CIFAR10_AKAMASTER *" in out


def test_the_weights_command_filters_by_source_and_refuses_an_unknown_pattern(mirror, capsys):
    assert cli.main(["weights", "--source", "akamaster", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(int(r["model"].removeprefix("resnet")) for r in rows) == sorted(AKAMASTER)
    assert cli.main(["weights", "nosuchnet*"]) == 2
    assert "error: no weights match 'nosuchnet*'" in capsys.readouterr().err
