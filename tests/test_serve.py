"""`resnetlab serve` as a real server on loopback: answers, errors, micro-batching under load, the web page."""

from __future__ import annotations

import io
import shutil

import httpx
import numpy as np
import pytest
from PIL import Image

from resnetlab.data import load_dataset
from resnetlab.deploy.predict import Predictor
from resnetlab.deploy.serve.load import load_test, running_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _png(array: np.ndarray, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def digits(digits_run, tmp_path_factory):
    """Test digits as PNG bytes (4x upscaled) and what the model predicts for them in-process."""
    folder = tmp_path_factory.mktemp("serve-digits")
    images = load_dataset("digits").test.images[:12, 0].numpy()
    files = []
    for i, image in enumerate(images):
        path = folder / f"digit{i}.png"
        Image.fromarray(image, "L").resize((32, 32), Image.Resampling.NEAREST).save(path)
        files.append(path)
    predictor = Predictor.from_file(digits_run.best_path, device="cpu", backend="torch")
    expected = predictor.predict_files(files, topk=5)
    return files, expected


@pytest.fixture(scope="module")
def server(digits_run):
    """`resnetlab serve` in its own process, with small limits so the tests can reach them."""
    settings = ["max_body_mb=1", "max_pixels=1000000", "max_batch_size=16", "max_wait_ms=5"]
    with running_server(digits_run.best_path, settings) as url:
        yield url


def test_health_model_metadata_and_openapi(server, digits_run):
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok"}
    card = httpx.get(f"{server}/v1/model").json()
    assert card["arch"]["name"] == "resnet20" and card["class_names"] == [str(i) for i in range(10)]
    assert card["input_size"] == [1, 8, 8] and card["precision"] == "fp32"
    assert card["backend"] in ("torch", "onnxruntime", "openvino")
    assert card["parameters"] > 200_000
    spec = httpx.get(f"{server}/openapi.json").json()
    assert {"/v1/predict", "/v1/predict/batch", "/v1/model", "/healthz"} <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert "Drop an image" in httpx.get(server).text


def test_multipart_and_raw_uploads_predict_like_the_library(server, digits):
    files, expected = digits
    for path, want in zip(files[:6], expected):
        answer = httpx.post(f"{server}/v1/predict", files={"file": (path.name, path.read_bytes(), "image/png")}).json()
        assert [t["label"] for t in answer["top"]][0] == want.labels[0]
        np.testing.assert_allclose([t["prob"] for t in answer["top"]], want.probs, atol=1e-4)
    raw = httpx.post(f"{server}/v1/predict?topk=3", content=files[0].read_bytes(),
                     headers={"content-type": "image/png"}).json()
    assert len(raw["top"]) == 3 and raw["top"][0]["label"] == expected[0].labels[0]


def test_batch_reports_bad_files_inline_and_predicts_the_rest(server, digits):
    files, expected = digits
    upload = [("files", (p.name, p.read_bytes(), "image/png")) for p in files[:3]]
    upload.append(("files", ("notes.png", b"this is not a picture", "image/png")))
    answer = httpx.post(f"{server}/v1/predict/batch?topk=2", files=upload)
    assert answer.status_code == 200
    results = answer.json()["predictions"]
    assert [r["source"] for r in results] == ["digit0.png", "digit1.png", "digit2.png", "notes.png"]
    assert [r["top"][0]["label"] for r in results[:3]] == [e.labels[0] for e in expected[:3]]
    assert all(len(r["top"]) == 2 for r in results[:3])
    assert "not an image" in results[3]["error"] and results[3]["status"] == 415
    only_bad = httpx.post(f"{server}/v1/predict/batch", files=[("files", ("x.png", b"nope", "image/png"))])
    assert only_bad.status_code == 415 and only_bad.json()["error"] == "none of the images could be read"


def _truncated_png() -> bytes:
    data = _png(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    return data[: len(data) // 2]


@pytest.mark.parametrize("request_kwargs, status, message", [
    ({"content": b"plain text, not an image", "headers": {"content-type": "application/octet-stream"}}, 415,
     "not an image Pillow can read"),
    ({"files": {"file": ("half.png", _truncated_png(), "image/png")}}, 422, "half.png: truncated or corrupt"),
    ({"content": b"\0" * 1_100_000, "headers": {"content-type": "image/png"}}, 413, "exceeds the limit of 1,048,576"),
    ({"content": _png(np.zeros((1000, 1200), np.uint8)), "headers": {"content-type": "image/png"}}, 413,
     "1200x1000 pixels exceeds the limit of 1,000,000"),
    ({"json": {"image": "cat.jpg"}}, 415, "expected an image, got content type 'application/json'"),
    ({"content": b"", "headers": {"content-type": "image/png"}}, 422, "the request has no image"),
    ({"data": {"note": "no file"}, "files": {}}, 415, "expected an image"),
    ({"files": [("a", ("a.png", b"x", "image/png")), ("b", ("b.png", b"y", "image/png"))]}, 422,
     "2 files in one /v1/predict request"),
])
def test_bad_requests_get_a_4xx_json_error_naming_the_problem(server, request_kwargs, status, message):
    answer = httpx.post(f"{server}/v1/predict", **request_kwargs)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]


def test_bad_parameters_and_the_server_survives_everything(server, digits):
    files, expected = digits
    answer = httpx.post(f"{server}/v1/predict?topk=0", content=files[0].read_bytes())
    assert answer.status_code == 422 and "topk" in answer.json()["error"]
    assert httpx.get(f"{server}/v1/nothing").status_code == 404
    good = httpx.post(f"{server}/v1/predict", content=files[1].read_bytes()).json()
    assert good["top"][0]["label"] == expected[1].labels[0]


@pytest.mark.slow
def test_load_2000_requests_from_32_clients_all_answered_in_micro_batches(server, digits):
    files, _ = digits
    before = httpx.get(f"{server}/v1/model").json()["server"]["batches"]  # the module's server: earlier tests count
    result = load_test(server, [p.read_bytes() for p in files], requests=2000, clients=32)
    assert result.errors == [] and len(result.latencies) == 2000
    batches = httpx.get(f"{server}/v1/model").json()["server"]["batches"]
    assert batches["images"] - before["images"] == 2000
    assert batches["batches"] - before["batches"] < 2000  # concurrent requests shared forward passes
    print(f"{result.summary()}, batches {batches}")


@pytest.mark.slow
def test_web_page_in_headless_chromium_shows_the_top5(server, digits):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "the browser test needs Debian's chromium (make test installs it: apt-get install chromium)"
    files, expected = digits
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(server)
            page.wait_for_function("document.getElementById('model').textContent.includes('resnet20')")
            # one box of a real size: an inline <label> around a block is 3 boxes (dashed slivers), although
            # their union (bounding_box) is 760x109
            drop_boxes = page.evaluate("[...document.getElementById('drop').getClientRects()]"
                                       ".map((r) => ({width: r.width, height: r.height}))")
            page.set_input_files("#file", str(files[3]))
            page.wait_for_selector("#results .row", timeout=20_000)
            labels = page.locator("#results .row .label").all_text_contents()
            probs = page.locator("#results .row .prob").all_text_contents()
            assert page.locator("#preview").is_visible()
            assert page.locator("#error").text_content() == ""
        finally:
            browser.close()
    assert len(drop_boxes) == 1, drop_boxes
    assert drop_boxes[0]["width"] > 300 and drop_boxes[0]["height"] > 100, drop_boxes
    assert labels == expected[3].labels
    assert probs[0] == f"{100 * expected[3].probs[0]:.1f}%"
