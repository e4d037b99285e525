"""The server as curl and a browser without internet see it: raw uploads whatever their Content-Type, the
offline /docs page, and the access log (one real uvicorn server in a thread, with a tiny untrained model)."""

from __future__ import annotations

import io
import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import torch
import uvicorn
from PIL import Image

from resnetlab import ModelInfo, create_model
from resnetlab.cli import main
from resnetlab.deploy.predict import Predictor
from resnetlab.deploy.serve import ServeConfig, create_app
from resnetlab.deploy.serve.app import uvicorn_config
from resnetlab.deploy.serve.decode import sniff_image
from resnetlab.errors import ConfigError

CURL_FORM = {"content-type": "application/x-www-form-urlencoded"}  # what curl --data-binary sends without -H


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=3, in_chans=3)
    info = ModelInfo(arch=model.arch, class_names=["a", "b", "c"], input_size=(3, 32, 32), mean=(0.5, 0.5, 0.5),
                     std=(0.25, 0.25, 0.25))
    return Predictor(model, info, device="cpu", backend="torch")


@contextmanager
def _serving(predictor: Predictor, **settings) -> Iterator[str]:
    """create_app + uvicorn as `resnetlab serve` runs them, in a thread; yields the URL."""
    config = ServeConfig(port=0, **settings)
    server = uvicorn.Server(uvicorn_config(create_app(predictor, config, "tiny"), config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture(scope="module")
def server(predictor):
    with _serving(predictor) as url:
        yield url


def _image(format: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 90, 30)).save(buffer, format=format)
    return buffer.getvalue()


@pytest.mark.parametrize("format", ["PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"])
def test_curl_data_binary_without_a_content_type_is_classified(server, format):
    data = _image(format)
    assert sniff_image(data) == format.lower()
    answer = httpx.post(f"{server}/v1/predict?topk=2", content=data, headers=CURL_FORM)
    assert answer.status_code == 200, answer.text
    top = answer.json()["top"]
    assert len(top) == 2 and {t["label"] for t in top} <= {"a", "b", "c"}
    assert 0 < top[0]["prob"] <= 1


@pytest.mark.parametrize("body, headers", [
    (b"note=no+file", CURL_FORM),
    (b"", CURL_FORM),
    (b'{"image": "cat.jpg"}', {"content-type": "application/json"}),
    (b"hello", {"content-type": "text/plain; charset=utf-8"}),
])
def test_a_body_that_is_not_an_image_still_gets_415_json(server, body, headers):
    answer = httpx.post(f"{server}/v1/predict", content=body, headers=headers)
    assert answer.status_code == 415, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"].startswith(f"expected an image, got content type {headers['content-type']!r}")


def test_a_body_that_only_starts_like_an_image_is_the_decoders_4xx(server):
    answer = httpx.post(f"{server}/v1/predict", content=_image("PNG")[:60], headers=CURL_FORM)
    assert answer.status_code == 422 and "truncated or corrupt" in answer.json()["error"]
    answer = httpx.post(f"{server}/v1/predict", content=b"BM, a bitmap in name only", headers=CURL_FORM)
    assert answer.status_code == 422 and "truncated or corrupt" in answer.json()["error"]


def test_docs_page_works_offline_and_lists_every_endpoint(server):
    answer = httpx.get(f"{server}/docs")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    page = answer.text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, re.IGNORECASE), "an external URL"
    assert "<script" not in page.lower()
    for path in ("/v1/predict", "/v1/predict/batch", "/v1/model", "/healthz"):
        assert f'<span class="path">{path}</span>' in page
    assert "Classify one image" in page and "topk" in page and "multipart/form-data" in page
    assert 'href="openapi.json"' in page
    assert httpx.get(f"{server}/openapi.json").json()["paths"]["/v1/predict"]["post"]["summary"] == "Classify one image"
    assert httpx.get(f"{server}/redoc").status_code == 404  # FastAPI's ReDoc page needs a CDN too


@contextmanager
def _access_lines() -> Iterator[list[str]]:
    """Messages uvicorn.access logs meanwhile (it does not propagate, so caplog cannot see them)."""
    lines: list[str] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("uvicorn.access")
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


@pytest.mark.parametrize("access_log", [True, False])
def test_uvicorn_config_sets_the_access_log(predictor, access_log):
    config = ServeConfig(port=0, access_log=access_log)
    built = uvicorn_config(create_app(predictor, config, "tiny"), config)
    assert built.access_log is access_log
    access = logging.getLogger("uvicorn.access")
    assert access.isEnabledFor(logging.INFO) is access_log and bool(access.handlers) is access_log
    assert not logging.getLogger("uvicorn.error").isEnabledFor(logging.INFO)  # start-up chatter stays quiet


@pytest.mark.parametrize("access_log", [True, False])
def test_each_request_logs_one_access_line_unless_turned_off(predictor, access_log):
    with _serving(predictor, access_log=access_log) as url, _access_lines() as lines:
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.post(f"{url}/v1/predict", content=b"nope", headers=CURL_FORM).status_code == 415
    if access_log:
        assert len(lines) == 2 and "GET /healthz HTTP/1.1" in lines[0] and "200" in lines[0], lines
        assert "POST /v1/predict HTTP/1.1" in lines[1] and "415" in lines[1], lines
    else:
        assert lines == []


@pytest.mark.parametrize("words, expected", [([], True), (["access_log=false"], False), (["--no-access-log"], False),
                                             (["--access-log"], True), (["access-log=off"], False)])
def test_cli_serve_access_log_setting(tmp_path, monkeypatch, words, expected):
    seen = {}
    monkeypatch.setattr("resnetlab.deploy.serve.serve", lambda model, config, weights=None: seen.update(config=config))
    assert main(["serve", str(tmp_path / "never-read.safetensors"), *words]) == 0
    assert seen["config"].access_log is expected


def test_access_log_must_be_a_bool():
    with pytest.raises(ConfigError, match="access_log must be true or false"):
        ServeConfig(access_log="false")
    assert main(["serve", "never-read.safetensors", "access_log=maybe"]) == 2
