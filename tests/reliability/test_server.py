"""The HTTP server under hostile or unlucky clients: pixel bombs, undecodable files, bad settings, slow clients.

One real uvicorn server (the production wiring, `uvicorn_config`) runs in a thread of this process on a
free loopback port, with a tiny untrained model and small limits, so the tests can reach every limit
in about a second and can patch the decoder the server calls.
"""

from __future__ import annotations

import io
import math
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
import torch
import uvicorn
from PIL import Image

from resnetlab import ModelInfo, create_model
from resnetlab.cli import main
from resnetlab.data.images import load_image, read_for_model
from resnetlab.deploy.predict import Predictor
from resnetlab.deploy.serve import ServeConfig, create_app
from resnetlab.deploy.serve import decode as decode_module
from resnetlab.deploy.serve.app import uvicorn_config
from resnetlab.deploy.serve.decode import PixelBudget, decode_upload, plan_decode
from resnetlab.errors import ConfigError

LIMITS = {"max_decode_mpix": 1.0, "header_timeout_s": 1.0, "stall_timeout_s": 1.0, "timeout_s": 3.0}
BIG = (2000, 2000)  # 4 MP: over the 1 MP budget above


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=3, in_chans=3)
    info = ModelInfo(arch=model.arch, class_names=["a", "b", "c"], input_size=(3, 32, 32), mean=(0.5, 0.5, 0.5),
                     std=(0.25, 0.25, 0.25))
    return Predictor(model, info, device="cpu", backend="torch")


@contextmanager
def _serving(predictor: Predictor, **settings):
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
    with _serving(predictor, **LIMITS) as url:
        yield url


def _png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 128).save(buffer, format="PNG")  # one colour: 4 MP compress to about 12 KB
    return buffer.getvalue()


def _photo_jpeg(width: int, height: int) -> bytes:
    ramp_x, ramp_y = np.meshgrid(np.linspace(0, 255, width), np.linspace(0, 255, height))
    pixels = np.stack([ramp_x, ramp_y, 255 - ramp_x], axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _decoding(url: str) -> dict:
    return httpx.get(f"{url}/v1/model").json()["server"]["decoding"]


# item 7: decoded pixels in flight are bounded


def test_decodes_over_the_pixel_budget_get_503_retry_after_and_the_budget_is_released(server, monkeypatch):
    entered, release = threading.Event(), threading.Event()
    original = decode_module.read_for_model

    def held_decode(*args, **kwargs):  # keeps the first big image decoding until the others have been answered
        entered.set()
        release.wait(10)
        return original(*args, **kwargs)

    monkeypatch.setattr(decode_module, "read_for_model", held_decode)
    big = _png(BIG)
    refused_before = _decoding(server)["refused"]
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(httpx.post, f"{server}/v1/predict", content=big, timeout=30)
        try:
            assert entered.wait(10)
            single = httpx.post(f"{server}/v1/predict", content=big)
            batch = httpx.post(f"{server}/v1/predict/batch", files=[("files", ("b.png", big, "image/png"))])
            assert _decoding(server)["pixels_in_flight"] == BIG[0] * BIG[1]
        finally:
            release.set()
        assert first.result().status_code == 200
    assert single.status_code == 503 and single.headers["retry-after"] == "1"
    assert "max_decode_mpix" in single.json()["error"]
    assert batch.status_code == 503 and batch.headers["retry-after"] == "1"
    assert batch.json()["predictions"][0]["status"] == 503
    decoding = _decoding(server)
    assert decoding["pixels_in_flight"] == 0 and decoding["refused"] - refused_before == 2


def test_a_lone_image_larger_than_the_budget_is_still_decoded(server):
    answer = httpx.post(f"{server}/v1/predict", content=_png(BIG), timeout=30)
    assert answer.status_code == 200, answer.text
    assert _decoding(server)["pixels_in_flight"] == 0


def test_a_large_jpeg_is_decoded_at_reduced_size_for_a_small_model(server):
    photo = _photo_jpeg(2400, 1600)
    plan = plan_decode(photo, (3, 32, 32), 1.0, 40_000_000)
    assert plan.draft == (64, 64) and plan.pixels == 300 * 200  # 1/8: still 2x the 32 px needed
    assert load_image(photo, 3, draft=plan.draft).size == (300, 200)  # what is decoded is what was held
    budget = PixelBudget(1_000_000)
    pixels = decode_upload(photo, "photo.jpg", plan, budget, (3, 32, 32), "bilinear", 1.0, 40_000_000)
    assert budget.peak == 300 * 200 and budget.in_flight == 0
    full = read_for_model(photo, (3, 32, 32))
    assert pixels.shape == full.shape == (3, 32, 32)
    assert np.abs(pixels.astype(int) - full).mean() < 2  # what the model sees barely changes
    # a 224 px model with a 0.875 crop resizes the short side to 256: 1/2 scale (800 >= 2 x 256)
    assert plan_decode(photo, (3, 224, 224), 0.875, 40_000_000).pixels == 1200 * 800
    png = plan_decode(_png((600, 400)), (3, 32, 32), 1.0, 40_000_000)
    assert png.draft is None and png.pixels == 600 * 400  # PNG cannot be decoded smaller: held in full
    assert httpx.post(f"{server}/v1/predict", content=photo, timeout=30).status_code == 200


# item 11: an image that cannot be decoded is that image's 4xx, never the batch's 500


def _lab_tiff() -> bytes:
    buffer = io.BytesIO()
    Image.new("LAB", (16, 16), (50, 10, 10)).save(buffer, format="TIFF")
    return buffer.getvalue()


def test_a_cielab_tiff_never_fails_the_batch_it_is_in(server):
    """The unfixed server answered 500 for the whole batch (Pillow cannot convert LAB to RGB); the decoder
    may now read LAB or refuse it, but the other images are answered either way."""
    good = _png((40, 40))
    upload = [("files", ("a.png", good, "image/png")), ("files", ("lab.tif", _lab_tiff(), "image/tiff")),
              ("files", ("c.png", good, "image/png"))]
    answer = httpx.post(f"{server}/v1/predict/batch", files=upload)
    assert answer.status_code == 200, answer.text
    results = answer.json()["predictions"]
    assert "top" in results[0] and "top" in results[2]
    assert "top" in results[1] or (400 <= results[1]["status"] < 500 and "lab.tif" in results[1]["error"])
    single = httpx.post(f"{server}/v1/predict", files={"file": ("lab.tif", _lab_tiff(), "image/tiff")})
    assert single.status_code == 200 or (400 <= single.status_code < 500 and "lab.tif" in single.json()["error"])


def test_any_decoder_failure_is_a_422_naming_the_file(server, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a decoder bug")

    monkeypatch.setattr(decode_module, "read_for_model", broken)
    single = httpx.post(f"{server}/v1/predict", files={"file": ("x.png", _png((40, 40)), "image/png")})
    assert single.status_code == 422
    assert "x.png: cannot decode this image (RuntimeError: a decoder bug)" in single.json()["error"]
    both = httpx.post(f"{server}/v1/predict/batch", files=[("files", (n, _png((40, 40)), "image/png")) for n in "ab"])
    assert both.status_code == 422 and [r["status"] for r in both.json()["predictions"]] == [422, 422]


# item 15: every setting is checked where it is made


@pytest.mark.parametrize("setting, value, accepted", [
    ("port", 70000, "an integer in 0..65535"), ("port", -1, "an integer in 0..65535"),
    ("port", 80.5, "an integer in 0..65535"), ("timeout_s", math.nan, "a finite number > 0"),
    ("timeout_s", -1, "a finite number > 0"), ("timeout_s", math.inf, "a finite number > 0"),
    ("max_body_mb", -1, "a finite number > 0"), ("max_body_mb", 0, "a finite number > 0"),
    ("max_decode_mpix", 0, "a finite number > 0"), ("header_timeout_s", 0, "a finite number > 0"),
    ("stall_timeout_s", math.nan, "a finite number > 0"), ("max_wait_ms", -1, "a finite number >= 0"),
    ("max_batch_size", 0, "an integer >= 1"), ("max_pixels", 0, "an integer >= 1"),
    ("max_files", True, "an integer >= 1"), ("host", "", "an address"),
])
def test_serve_config_refuses_out_of_range_settings(setting, value, accepted):
    with pytest.raises(ConfigError, match=f"{setting} must be {accepted}"):
        ServeConfig(**{setting: value})


@pytest.mark.parametrize("word, message", [("port=70000", "port must be an integer in 0..65535"),
                                           ("timeout_s=nan", "timeout_s must be a finite number > 0"),
                                           ("max_body_mb=-1", "max_body_mb must be a finite number > 0")])
def test_cli_serve_reports_a_bad_setting_as_one_error_line(tmp_path, capsys, word, message):
    assert main(["serve", str(tmp_path / "never-read.safetensors"), word]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {message}") and "\n" not in err


# item 16: slow clients cannot hold connections, and a stalled upload is the client's 408


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


def _answer(sock: socket.socket) -> bytes:
    """All the server sends until it closes the connection (a reset after unread bytes counts as closed)."""
    chunks = []
    try:
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def _closed_after(sock: socket.socket) -> float:
    """Seconds until the server closes `sock` (reading and discarding anything it sends first)."""
    started = time.monotonic()
    _answer(sock)
    return time.monotonic() - started


def test_connections_that_do_not_finish_their_headers_are_closed_after_header_timeout_s(server):
    silent = socket.create_connection(_address(server), timeout=5)
    partial = socket.create_connection(_address(server), timeout=5)
    with silent, partial:
        partial.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ima")
        assert _closed_after(partial) < 3  # header_timeout_s=1 (the unfixed server: still open at 5 s)
        assert _closed_after(silent) < 3


def test_an_idle_keep_alive_connection_outlives_the_header_timeout(server):
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(_address(server), timeout=5) as sock:
        sock.sendall(request)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(1.5)  # longer than header_timeout_s: between requests the keep-alive timeout (30 s) applies
        sock.sendall(request)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("end", [b"\r\n\r\n", b""], ids=["complete", "unfinished"])
def test_oversized_headers_get_431_and_the_connection_is_closed(server, end):
    with socket.create_connection(_address(server), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 100_000 + end)
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 431") and b"exceed 65,536 bytes" in answer
        assert _closed_after(sock) < 3


def _upload_head(length: int) -> bytes:
    return (f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()




def test_an_upload_that_stalls_gets_408_saying_so(server):
    image = _png((40, 40))
    with socket.create_connection(_address(server), timeout=10) as sock:
        sock.sendall(_upload_head(len(image)) + image[:50])
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"the upload stalled: no data for 1 s (stall_timeout_s) after 50 bytes" in answer


def test_an_upload_that_trickles_past_timeout_s_gets_408_not_504(server):
    image = _png((40, 40))
    with socket.create_connection(_address(server), timeout=10) as sock:
        sock.sendall(_upload_head(len(image)))
        deadline = time.monotonic() + 6
        try:
            for byte in image:  # one byte every 0.4 s: never a 1 s stall, but far past timeout_s=3
                if time.monotonic() > deadline:
                    break
                sock.sendall(bytes([byte]))
                time.sleep(0.4)
        except OSError:  # the server answered and closed while we were still sending
            pass
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"the upload took longer than 3 s (timeout_s)" in answer
    assert httpx.get(f"{server}/healthz").status_code == 200
