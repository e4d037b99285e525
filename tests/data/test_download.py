"""The real download code, exercised against local file:// URLs and a mirror folder."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile

import pytest

from resnetlab.cache import cache_dir
from resnetlab.data.download import Resource, ensure_resource, extract_tar, file_digest
from resnetlab.errors import DataError


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RESNETLAB_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("RESNETLAB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "resnetlab"


def test_download_verifies_and_leaves_no_partial_files(tmp_path):
    source = tmp_path / "src" / "data.bin"
    source.parent.mkdir()
    source.write_bytes(b"payload" * 1000)
    resource = Resource("data.bin", (source.as_uri(),), _md5(source.read_bytes()))
    path = ensure_resource(resource, tmp_path / "dest")
    assert path.read_bytes() == source.read_bytes()
    assert os.listdir(tmp_path / "dest") == ["data.bin"]
    source.write_bytes(b"changed")  # already present and verified: not fetched again
    assert ensure_resource(resource, tmp_path / "dest").read_bytes() == b"payload" * 1000


def test_checksum_mismatch_is_refused(tmp_path):
    source = tmp_path / "data.bin"
    source.write_bytes(b"tampered")
    resource = Resource("data.bin", (source.as_uri(),), "0" * 32)
    with pytest.raises(DataError, match="instead of the published 000") as err:
        ensure_resource(resource, tmp_path / "dest")
    assert "place them in" in str(err.value)
    assert not (tmp_path / "dest" / "data.bin").exists()


def test_no_network_says_which_files_to_place_where(tmp_path):
    resource = Resource("train.bin", ("https://example.invalid/train.bin",), "a" * 32)
    with pytest.raises(DataError) as err:
        ensure_resource(resource, tmp_path / "cache", download=False)
    message = str(err.value)
    assert f"place them in {tmp_path / 'cache'}" in message and "train.bin" in message and "a" * 32 in message
    assert "https://example.invalid/train.bin" in message


def test_corrupt_cached_file_is_set_aside_and_fetched_again(tmp_path):
    good = b"good bytes"
    source = tmp_path / "good.bin"
    source.write_bytes(good)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "good.bin").write_bytes(b"half a downl")
    path = ensure_resource(Resource("good.bin", (source.as_uri(),), _md5(good)), dest)
    assert path.read_bytes() == good
    assert (dest / "good.bin.corrupt").read_bytes() == b"half a downl"


def test_mirror_is_tried_first(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "x.bin").write_bytes(b"from the mirror")
    monkeypatch.setenv("RESNETLAB_MIRROR", str(mirror))
    resource = Resource("x.bin", ("https://example.invalid/x.bin",), _md5(b"from the mirror"))
    assert ensure_resource(resource, tmp_path / "dest").read_bytes() == b"from the mirror"
    assert file_digest(tmp_path / "dest" / "x.bin") == resource.md5


def test_extract_tar_refuses_paths_outside_the_folder(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b"owned"
        info = tarfile.TarInfo("../escaped.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(DataError, match="unsafe member"):
        extract_tar(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()
