"""Fetching published weights: mirror, cache, hash checks, offline mode, refusing code, the Hub layout."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import torch

import resnetlab
from resnetlab.errors import ModelFileError
from resnetlab.weights import WeightsError, fetch, register_weights, unregister_weights, weights_dir
from resnetlab.weights.load import get_weights

from weightfiles import copy_to, hub_snapshot, sha256, timm_repo


def _inputs(shape=(2, 3, 32, 32)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(1))


def test_fetched_from_the_mirror_into_the_torch_hub_cache_then_reused(mirror, monkeypatch):
    item = mirror["akamaster"]
    path = fetch(item.entry, progress=False)
    assert path == Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints" / item.path.name == weights_dir() / path.name
    assert sha256(path) == sha256(item.path)
    assert not [p for p in path.parent.iterdir() if p.suffix == ".partial"]

    def no_network(*args, **kwargs):
        raise AssertionError("fetched again although the file is in the cache")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    assert fetch(item.entry, progress=False) == path  # second use: the cache, no download
    model = resnetlab.create_model("resnet20", weights="TEST_AKAMASTER")
    assert torch.equal(model(_inputs()), item.model(_inputs()))  # module. prefix dropped, linear -> fc


def test_a_file_already_in_the_torch_hub_cache_is_used_as_it_is(mirror, monkeypatch):
    item = mirror["torchvision"]
    monkeypatch.delenv("RESNETLAB_MIRROR")  # nowhere to download from: only the cache can serve it
    cached = copy_to(item.path, weights_dir())
    stamp = cached.stat().st_mtime_ns
    model = resnetlab.create_model("resnet18", weights="TEST_TV")
    assert cached.stat().st_mtime_ns == stamp
    x = _inputs((1, 3, 64, 64))
    assert torch.equal(model(x), item.model(x))
    assert model.pretrained_cfg["crop_pct"] == pytest.approx(224 / 232)


def test_a_wrong_hash_is_refused_naming_the_file_and_both_hashes_and_nothing_is_cached(mirror, published):
    item = mirror["chenyaofo"]
    wrong = dataclasses.replace(item.entry, name="TEST_WRONG_HASH", hash_prefix="0badc0de")
    register_weights(wrong)
    try:
        with pytest.raises(WeightsError) as caught:
            fetch(wrong, progress=False)
    finally:
        unregister_weights(wrong.arch, wrong.name)
    message = str(caught.value)
    assert item.path.name in message and "0badc0de" in message and sha256(item.path) in message
    assert "put it in" in message and str(weights_dir()) in message
    assert not weights_dir().exists() or not list(weights_dir().iterdir())  # no file, no .partial


def test_a_truncated_download_is_not_used(mirror, tmp_path, monkeypatch):
    item = mirror["chenyaofo"]
    short = tmp_path / "short-mirror"
    short.mkdir()
    (short / item.path.name).write_bytes(item.path.read_bytes()[: item.path.stat().st_size // 2])
    monkeypatch.setenv("RESNETLAB_MIRROR", str(short))
    with pytest.raises(WeightsError, match="does not start with the published"):
        fetch(item.entry, progress=False)
    assert not weights_dir().exists() or not list(weights_dir().iterdir())


def test_a_truncated_file_in_the_cache_is_moved_aside_and_fetched_again(mirror):
    item = mirror["akamaster"]
    weights_dir().mkdir(parents=True)
    broken = weights_dir() / item.path.name
    broken.write_bytes(item.path.read_bytes()[:1000])  # an interrupted copy by another tool
    path = fetch(item.entry, progress=False)
    assert sha256(path) == sha256(item.path)
    assert (weights_dir() / (item.path.name + ".corrupt")).stat().st_size == 1000


def test_offline_the_error_names_the_url_the_file_and_the_folder(mirror, monkeypatch):
    monkeypatch.setenv("RESNETLAB_OFFLINE", "1")
    item = mirror["torchvision"]
    with pytest.raises(WeightsError) as caught:
        resnetlab.create_model("resnet18", weights="TEST_TV")
    message = str(caught.value)
    assert item.entry.url in message and item.path.name in message and str(weights_dir()) in message
    assert "offline" in message


def test_without_network_every_address_tried_is_listed(mirror, monkeypatch):
    monkeypatch.delenv("RESNETLAB_MIRROR")
    item = mirror["torchvision"]
    with pytest.raises(WeightsError) as caught:
        fetch(item.entry, progress=False)
    message = str(caught.value)
    assert "tried:" in message and item.entry.url in message and item.path.name in message


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/resnetlab-weights-pwned",))


def test_a_pickle_that_would_run_code_is_refused(mirror, tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"conv1.weight": _RunsCode()}, evil)  # torch's own format, a reduce to os.system inside
    with pytest.raises(ModelFileError, match="GLOBAL") as caught:
        resnetlab.create_model("resnet20", weights=str(evil))
    assert "never runs" in str(caught.value)
    assert not Path("/tmp/resnetlab-weights-pwned").exists()


def test_the_hub_layout_is_read_from_a_local_snapshot_folder(mirror, tmp_path):
    source = resnetlab.create_model("resnet18", num_classes=7).eval()
    timm_repo(Path(os.environ["HF_HUB_CACHE"]), "someorg/resnet18.test_in7", source, "resnet18.test_in7")
    model = resnetlab.create_model("resnet18", weights="hf-hub:someorg/resnet18.test_in7")
    x = _inputs((1, 3, 64, 64))
    assert torch.equal(model(x), source(x))
    cfg = model.pretrained_cfg  # timm's test size and crop, its interpolation and license
    assert cfg["input_size"] == (3, 288, 288) and cfg["crop_pct"] == 1.0 and cfg["interpolation"] == "bicubic"
    assert cfg["license"] == "apache-2.0" and cfg["source"] == "hf-hub"
    weights = get_weights("resnet18", "hf-hub:someorg/resnet18.test_in7")
    assert weights.provenance["sha256"] == sha256(Path(weights.path))
    with pytest.raises(resnetlab.ConfigError, match="are for resnet18, not resnet50"):
        resnetlab.create_model("resnet50", weights="hf-hub:someorg/resnet18.test_in7")


def test_a_registered_timm_entry_reads_its_hub_repository(mirror):
    source = resnetlab.create_model("resnet50").eval()
    timm_repo(Path(os.environ["HF_HUB_CACHE"]), "timm/resnet50.a1_in1k", source, "resnet50.a1_in1k")
    model = resnetlab.create_model("resnet50", weights="timm:resnet50.a1_in1k")
    x = _inputs((1, 3, 64, 64))
    assert torch.equal(model(x), source(x))
    assert model.pretrained_cfg["input_size"] == (3, 288, 288)  # the registry's facts, timm's test size
    assert model.pretrained_cfg["name"] == "timm:resnet50.a1_in1k"


def test_a_hub_blob_whose_bytes_do_not_match_its_name_is_refused(mirror):
    cache = Path(os.environ["HF_HUB_CACHE"])
    snapshot = hub_snapshot(cache, "someorg/resnet20.bad", {"model.safetensors": b"not the published bytes"})
    blob = (snapshot / "model.safetensors").resolve()
    blob.write_bytes(b"changed after download")
    with pytest.raises(WeightsError, match="not the .* the Hub published"):
        resnetlab.create_model("resnet20", weights="hf-hub:someorg/resnet20.bad")


def test_a_missing_hub_repository_offline_says_where_to_put_it(mirror):
    with pytest.raises(WeightsError) as caught:
        resnetlab.create_model("resnet50", weights="hf-hub:someorg/absent")
    message = str(caught.value)
    assert "https://huggingface.co/someorg/absent/resolve/main/model.safetensors" in message
    assert "models--someorg--absent" in message
