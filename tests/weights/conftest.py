"""Synthetic published weights: files in a local mirror folder, registered under test entries.

Nothing here touches the network: TORCH_HOME, the resnetlab cache and the Hugging Face cache point into
the test's own folder, RESNETLAB_MIRROR at a folder of files, and the official URLs are unreachable
(`.invalid`, RFC 2606), so a test passes only if the mirror or the cache served the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import resnetlab
from resnetlab.weights import WeightsEntry, register_weights, unregister_weights

from weightfiles import sha256

UNREACHABLE = "https://weights.example.invalid/"


@dataclass
class Published:
    """A synthetic weights file as a publisher would ship it, and the model it came from."""

    entry: WeightsEntry
    path: Path  # the file in the mirror folder
    model: torch.nn.Module  # the weights' own model (eval mode), to compare outputs with


def _publish(folder: Path, stem: str, tensors: dict) -> tuple[Path, str]:
    tmp = folder / f"{stem}.tmp"
    torch.save(tensors, tmp)
    digest = sha256(tmp)
    path = folder / f"{stem}-{digest[:8]}.pth"
    tmp.rename(path)
    return path, digest


@pytest.fixture(scope="session")
def published(tmp_path_factory) -> dict[str, Published]:
    """Three publishers' layouts: akamaster's (DataParallel prefix, `linear`), chenyaofo's (option B) and
    torchvision's (1000 ImageNet classes), each registered as test weights of its architecture."""
    folder = tmp_path_factory.mktemp("mirror")
    torch.manual_seed(0)
    made: dict[str, Published] = {}

    def register(key: str, model: torch.nn.Module, tensors: dict, stem: str, **fields) -> None:
        path, digest = _publish(folder, stem, tensors)
        entry = WeightsEntry(url=UNREACHABLE + path.name, filename=path.name, hash_prefix=digest[:8],
                             license="MIT (test)", metrics={"acc@1": 12.5}, metrics_source="a test",
                             num_params=sum(p.numel() for p in model.parameters()), **fields)
        register_weights(entry)
        made[key] = Published(entry, path, model.eval())

    aka = resnetlab.create_model("resnet20")
    with torch.no_grad():  # non-trivial BatchNorm statistics, so a load that skipped them would show
        for module in aka.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    state = {"module." + k.replace("fc.", "linear."): v for k, v in aka.state_dict().items()}
    register("akamaster", aka, {"state_dict": state, "best_prec1": 91.73}, "resnet20test",
             arch="resnet20", name="TEST_AKAMASTER", source="test", classes="cifar10", input_size=(3, 32, 32),
             crop_pct=1.0, rename=(("linear.", "fc."),))
    chen = resnetlab.create_model("resnet20", shortcut="B", num_classes=100)
    register("chenyaofo", chen, chen.state_dict(), "cifar100_resnet20test", arch="resnet20",
             name="TEST_CHENYAOFO", source="test", classes="cifar100", input_size=(3, 32, 32), crop_pct=1.0,
             mean=(0.507, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2761), options={"shortcut": "B"})
    tv = resnetlab.create_model("resnet18")
    register("torchvision", tv, tv.state_dict(), "resnet18test", arch="resnet18", name="TEST_TV",
             source="test", classes="imagenet", crop_pct=224 / 232)
    yield made
    for item in made.values():
        unregister_weights(item.entry.arch, item.entry.name)


@pytest.fixture
def mirror(published, tmp_path, monkeypatch) -> dict[str, Published]:
    """The published files reachable through RESNETLAB_MIRROR only; empty caches of the test's own."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("RESNETLAB_MIRROR", str(next(iter(published.values())).path.parent))
    monkeypatch.delenv("RESNETLAB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    _reload_hub_constants(monkeypatch)
    return published


def _reload_hub_constants(monkeypatch) -> None:
    """huggingface_hub reads HF_HUB_CACHE once, at import: point its constant at the test's folder."""
    import os

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", os.environ["HF_HUB_CACHE"])
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # a test never waits on huggingface.co
