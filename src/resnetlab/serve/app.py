"""The HTTP API and web page for one model file (FastAPI; `pip install 'resnetlab[serve]'`).

    POST /v1/predict        one image: multipart upload (any field name) or the raw bytes as the body
    POST /v1/predict/batch  several images as a multipart upload; per-image errors are reported inline
    GET  /v1/model          the model's metadata: architecture, classes, preprocessing, backend
    GET  /healthz           liveness
    GET  /                  a web page: choose or drop an image, see the top-5 classes as bars
    GET  /docs              OpenAPI documentation (FastAPI's)

Every error is JSON `{"error": "..."}` with a 4xx status that says what to fix: 413 for a body or
an image over the limits, 415 for a file that is not an image, 422 for a corrupt image or a
malformed request, 504 for a request that ran past the timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from .. import __version__
from ..data.images import BadImageError, read_for_model
from ..inference import describe
from ..predict import Predictor
from .batcher import MicroBatcher

log = logging.getLogger("resnetlab.serve")
INLINE_DECODE_BYTES = 16 * 1024  # smaller uploads are decoded on the event loop (a 32x32 PNG: about 50 us)

IMAGE_BODY = {"content": {"multipart/form-data": {"schema": {"type": "object", "properties": {
    "file": {"type": "string", "format": "binary"}}}},
    "image/*": {"schema": {"type": "string", "format": "binary"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}, "required": True}
BATCH_BODY = {"content": {"multipart/form-data": {"schema": {"type": "object", "properties": {
    "files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}}, "required": True}


@dataclass
class ServeConfig:
    """Server settings; `resnetlab serve MODEL key=value ...` sets them."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch_size: int = 32  # images per forward pass
    max_wait_ms: float = 2.0  # how long an idle server waits for company before running a lone image
    max_body_mb: float = 10.0  # request body limit (one upload, or all of a batch)
    max_pixels: int = 40_000_000  # width x height of one image (a 40 MP photo decodes to 120 MB)
    max_files: int = 64  # images per batch request
    timeout_s: float = 30.0  # whole request: upload, decoding, queueing and inference
    backend: str = "auto"
    precision: str = "fp32"
    device: str = "auto"


class RequestError(Exception):
    """A request the server cannot answer, with the status and a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


# what each kind of unreadable upload answers: too big, not an image at all, or broken/empty
STATUS_FOR = {"too_large": 413, "not_an_image": 415, "corrupt": 422, "empty": 422, "missing": 422}


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"request body of {int(declared):,} bytes exceeds the limit of {limit:,} bytes "
                                f"(max_body_mb); send a smaller image")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body exceeds the limit of {limit:,} bytes (max_body_mb); "
                                    f"send a smaller image")
        chunks.append(chunk)
    return b"".join(chunks)


async def _uploads(request: Request, config: ServeConfig) -> list[tuple[str, bytes]]:
    """(name, bytes) of every image in the request: multipart files, or the raw body as one image."""
    body = await _read_body(request, int(config.max_body_mb * 1024 * 1024))
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        async def stream():
            yield body

        try:
            form = await MultiPartParser(request.headers, stream(), max_files=config.max_files,
                                         max_fields=config.max_files).parse()
        except MultiPartException as exc:
            raise RequestError(422, f"malformed multipart upload: {exc.message}") from None
        files = []
        for _, value in form.multi_items():
            if hasattr(value, "read"):  # an uploaded file (field name does not matter)
                files.append((value.filename or "upload", await value.read()))
        if not files:
            raise RequestError(422, "the multipart upload has no file; attach the image as a file field, "
                                    "e.g. curl -F file=@cat.jpg")
        return files
    if content_type.startswith(("application/x-www-form-urlencoded", "application/json", "text/")):
        raise RequestError(415, f"expected an image, got content type {content_type!r}; send the image bytes "
                                f"(e.g. curl --data-binary @cat.jpg -H 'Content-Type: image/jpeg') or a "
                                f"multipart upload (curl -F file=@cat.jpg)")
    if not body:
        raise RequestError(422, "the request has no image: send the image bytes as the body or as a multipart file")
    return [("upload", body)]


def _decode(data: bytes, name: str, predictor: Predictor, max_pixels: int) -> np.ndarray:
    info = predictor.info
    return read_for_model(data, info.input_size, info.interpolation, info.crop_pct, name=name, max_pixels=max_pixels)


def _top(probs: np.ndarray, class_names: list[str], k: int) -> list[dict[str, Any]]:
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"label": class_names[i], "index": int(i), "prob": round(float(probs[i]), 6)} for i in order]


def model_card(predictor: Predictor, model_name: str) -> dict[str, Any]:
    info = predictor.info
    backend, _ = describe(predictor.runner)
    return {"name": model_name, "arch": info.arch.to_dict(), "class_names": info.class_names,
            "num_classes": info.num_classes, "input_size": list(info.input_size),
            "preprocessing": {"interpolation": info.interpolation, "crop_pct": info.crop_pct,
                              "mean": "per-pixel" if isinstance(info.mean[0], tuple) else list(info.mean),
                              "std": list(info.std)},
            "parameters": sum(p.numel() for p in predictor.model.parameters()),
            "backend": backend, "precision": predictor.precision, "device": str(predictor.device),
            "training": {k: v for k, v in info.training.items() if k != "config"}, "resnetlab": __version__}


def create_app(predictor: Predictor, config: ServeConfig, model_name: str = "model") -> FastAPI:
    """The FastAPI application serving `predictor` (the inference backend is chosen at start-up)."""

    def run(pixels: np.ndarray) -> np.ndarray:
        return torch.softmax(predictor.logits(torch.from_numpy(pixels)), dim=1).numpy()

    batcher = MicroBatcher(run, max_batch_size=config.max_batch_size, max_wait_ms=config.max_wait_ms)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await run_in_threadpool(lambda: run(np.zeros((1, *predictor.info.input_size), np.uint8)))  # build, warm up
        await batcher.start()
        log.info("serving %s with %s", model_name, predictor.runner)
        yield
        await batcher.stop()

    app = FastAPI(title="resnetlab", version=__version__, lifespan=lifespan,
                  description=f"Image classification with {predictor.info.arch.name} "
                              f"({predictor.info.num_classes} classes).")
    app.state.batcher, app.state.config = batcher, config

    @app.exception_handler(RequestError)
    async def request_error(_: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"error": f"invalid request: {problems}"}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:  # a bug: say so, keep serving
        log.exception("unexpected error")
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); the server is still running"},
                            status_code=500)

    async def decode(name: str, data: bytes) -> np.ndarray:
        try:
            if len(data) <= INLINE_DECODE_BYTES:  # a thumbnail decodes faster than a hop to a worker thread
                return _decode(data, name, predictor, config.max_pixels)
            return await run_in_threadpool(_decode, data, name, predictor, config.max_pixels)
        except BadImageError as exc:
            raise RequestError(STATUS_FOR[exc.kind], str(exc)) from None

    async def classify(pixels: np.ndarray, k: int) -> list[dict[str, Any]]:
        return _top(await batcher.submit(pixels), predictor.info.class_names, k)

    async def within_timeout(work):
        try:
            return await asyncio.wait_for(work, config.timeout_s)
        except asyncio.TimeoutError:
            raise RequestError(504, f"the request took longer than {config.timeout_s:g} s (timeout_s); "
                                    f"the server is busy, try again") from None

    @app.post("/v1/predict", summary="Classify one image", openapi_extra={"requestBody": IMAGE_BODY})
    async def predict(request: Request, topk: int = Query(5, ge=1, le=1000, description="classes to return")):
        started = time.perf_counter()

        async def work():
            with batcher.arriving():  # a micro-batch waits for requests still being read or decoded
                uploads = await _uploads(request, config)
                if len(uploads) > 1:
                    raise RequestError(422, f"{len(uploads)} files in one /v1/predict request; send them to "
                                            f"/v1/predict/batch")
                pixels = await decode(*uploads[0])
            return await classify(pixels, min(topk, predictor.info.num_classes))

        top = await within_timeout(work())
        return {"model": model_name, "top": top, "time_ms": round(1000 * (time.perf_counter() - started), 2)}

    @app.post("/v1/predict/batch", summary="Classify several images", openapi_extra={"requestBody": BATCH_BODY})
    async def predict_batch(request: Request, topk: int = Query(5, ge=1, le=1000)):
        started = time.perf_counter()
        k = min(topk, predictor.info.num_classes)

        async def work():
            decoded: list[np.ndarray | RequestError] = []
            with batcher.arriving():
                uploads = await _uploads(request, config)
                for name, data in uploads:
                    try:
                        decoded.append(await decode(name, data))
                    except RequestError as exc:
                        decoded.append(exc)

            async def one(name: str, item: np.ndarray | RequestError) -> dict[str, Any]:
                if isinstance(item, RequestError):
                    return {"source": name, "error": item.message, "status": item.status}
                return {"source": name, "top": await classify(item, k)}

            return await asyncio.gather(*(one(name, item) for (name, _), item in zip(uploads, decoded)))

        results = await within_timeout(work())
        if all("error" in r for r in results):
            return JSONResponse({"error": "none of the images could be read", "predictions": results},
                                status_code=max(r["status"] for r in results))
        return {"model": model_name, "predictions": results,
                "time_ms": round(1000 * (time.perf_counter() - started), 2)}

    card: dict[str, Any] = {}  # made at the first request: the backend is built by then (lifespan)

    @app.get("/v1/model", summary="Model metadata")
    async def model_info():
        if not card:
            card.update(model_card(predictor, model_name))
        return {**card, "server": {**asdict(config), "batches": batcher.stats.to_dict()}}

    @app.get("/healthz", summary="Liveness")
    async def healthz():
        return {"status": "ok"}

    page_html = resources.files("resnetlab.serve").joinpath("page.html").read_text()  # read once, not per visit

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return page_html

    return app


def serve(model_path: str, config: ServeConfig) -> None:
    """Load the model file and serve it until interrupted (`resnetlab serve`)."""
    from pathlib import Path

    import uvicorn

    predictor = Predictor.from_file(model_path, device=config.device, batch_size=config.max_batch_size,
                                    backend=config.backend, precision=config.precision)
    card = model_card(predictor, Path(model_path).name)  # builds the backend (measures it once, if auto)
    print(f"resnetlab serve: {card['arch']['name']}, {card['num_classes']} classes, {card['backend']} "
          f"{card['precision']} on {card['device']}, http://{config.host}:{config.port}/ (docs at /docs)", flush=True)
    app = create_app(predictor, config, Path(model_path).name)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning", timeout_keep_alive=30)
