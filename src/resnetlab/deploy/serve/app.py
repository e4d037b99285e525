"""The HTTP API and web page for one model file (FastAPI; `pip install 'resnetlab[serve]'`).

    POST /v1/predict        one image: multipart upload (any field name) or the raw bytes as the body (an image
                            is known by its first bytes, whatever the Content-Type)
    POST /v1/predict/batch  several images as a multipart upload; per-image errors are reported inline
    GET  /v1/model          the model's metadata: architecture, classes, preprocessing, backend
    GET  /healthz           liveness
    GET  /                  a web page: choose or drop an image, see the top-5 classes as bars
    GET  /docs              the endpoints and their parameters, a page that works offline (serve/docs.py)
    GET  /openapi.json      the OpenAPI schema

Every error is JSON `{"error": "..."}` with a status that says what to fix: 408 for an upload that
stalled or ran past the timeout, 413 for a body or an image over the limits, 415 for a file that is
not an image, 422 for a corrupt or undecodable image or a malformed request, 431 for oversized
headers, 503 (with Retry-After) while too many pixels are being decoded, 504 for a request that
ran past the timeout after its upload. In a batch, a bad image is only its own entry's error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import asdict
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
from starlette.requests import ClientDisconnect

from ... import __version__
from ...data.images import BadImageError
from ..inference import describe
from ..predict import Predictor
from .batcher import MicroBatcher
from .decode import DecodeBusy, DecodePlan, PixelBudget, decode_upload, plan_decode, sniff_image
from .docs import docs_page
from .settings import ServeConfig

log = logging.getLogger("resnetlab.serve")
INLINE_DECODE_BYTES = 16 * 1024  # smaller uploads are decoded on the event loop (a 32x32 PNG: about 50 us)
INLINE_DECODE_PIXELS = 256 * 256  # ... if their header says they are this small (a 4 KB PNG can hold 36 MP)
RETRY_LATER = {"retry-after": "1"}  # seconds a 503 asks clients to wait: about one large decode
KEEP_ALIVE_S = 30  # an idle keep-alive connection is closed after this (uvicorn's timeout_keep_alive)

IMAGE_BODY = {"content": {"multipart/form-data": {"schema": {"type": "object", "properties": {
    "file": {"type": "string", "format": "binary"}}}},
    "image/*": {"schema": {"type": "string", "format": "binary"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}, "required": True}
BATCH_BODY = {"content": {"multipart/form-data": {"schema": {"type": "object", "properties": {
    "files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}}, "required": True}


class RequestError(Exception):
    """A request the server cannot answer, with the status and a message for the client."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


# what each kind of unreadable upload answers: too big, not an image at all, or broken/empty
STATUS_FOR = {"too_large": 413, "not_an_image": 415, "corrupt": 422, "empty": 422, "missing": 422}


# content types that say "not an image": refused (415) unless the body starts like one (curl --data-binary
# without -H sends application/x-www-form-urlencoded)
NOT_IMAGE_TYPES = ("application/x-www-form-urlencoded", "application/json", "text/")
CLOSE = {"connection": "close"}  # answers sent before the body is read: the rest of it must not be parsed


async def _read_body(request: Request, limit: int, stall_s: float) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"request body of {int(declared):,} bytes exceeds the limit of {limit:,} bytes "
                                f"(max_body_mb); send a smaller image", CLOSE)
    chunks, size = [], 0
    stream = request.stream()
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), stall_s)
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            raise RequestError(408, f"the upload stalled: no data for {stall_s:g} s (stall_timeout_s) after "
                                    f"{size:,} bytes; send the whole file without pauses", CLOSE) from None
        except ClientDisconnect:
            raise RequestError(400, "the client disconnected during the upload", CLOSE) from None
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body exceeds the limit of {limit:,} bytes (max_body_mb); "
                                    f"send a smaller image", CLOSE)
        chunks.append(chunk)
    return b"".join(chunks)


async def _uploads(request: Request, config: ServeConfig) -> list[tuple[str, bytes]]:
    """(name, bytes) of every image in the request: multipart files, or the raw body as one image."""
    body = await _read_body(request, int(config.max_body_mb * 1024 * 1024), config.stall_timeout_s)
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
    if content_type.startswith(NOT_IMAGE_TYPES) and not sniff_image(body):  # an image's bytes win over its label
        raise RequestError(415, f"expected an image, got content type {content_type!r}; send the image bytes "
                                f"(e.g. curl --data-binary @cat.jpg -H 'Content-Type: image/jpeg') or a "
                                f"multipart upload (curl -F file=@cat.jpg)")
    if not body:
        raise RequestError(422, "the request has no image: send the image bytes as the body or as a multipart file")
    return [("upload", body)]


def _plan(data: bytes, predictor: Predictor, config: ServeConfig) -> DecodePlan:
    return plan_decode(data, predictor.info.input_size, predictor.info.crop_pct, config.max_pixels)


def _decode(data: bytes, name: str, plan: DecodePlan | None, predictor: Predictor, config: ServeConfig,
            budget: PixelBudget) -> np.ndarray:
    info = predictor.info
    plan = plan or _plan(data, predictor, config)
    return decode_upload(data, name, plan, budget, info.input_size, info.interpolation, info.crop_pct,
                         config.max_pixels)


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
    budget = PixelBudget(round(config.max_decode_mpix * 1e6))

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await run_in_threadpool(lambda: run(np.zeros((1, *predictor.info.input_size), np.uint8)))  # build, warm up
        await batcher.start()
        log.info("serving %s with %s", model_name, predictor.runner)
        yield
        await batcher.stop()

    # FastAPI's /docs and /redoc load their scripts from a CDN (blank offline): our /docs is self-contained
    app = FastAPI(title="resnetlab", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description=f"Image classification with {predictor.info.arch.name} "
                              f"({predictor.info.num_classes} classes).")
    app.state.batcher, app.state.config, app.state.budget = batcher, config, budget

    @app.exception_handler(RequestError)
    async def request_error(_: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)

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
        """One upload as model input; any failure to decode it is this upload's RequestError, never a 500."""
        try:
            plan = None
            if len(data) <= INLINE_DECODE_BYTES:  # a thumbnail decodes faster than a hop to a worker thread
                plan = _plan(data, predictor, config)
                if plan.pixels <= INLINE_DECODE_PIXELS:
                    return _decode(data, name, plan, predictor, config, budget)
            return await run_in_threadpool(_decode, data, name, plan, predictor, config, budget)
        except BadImageError as exc:
            raise RequestError(STATUS_FOR.get(exc.kind, 422), str(exc)) from None
        except DecodeBusy as exc:
            raise RequestError(503, f"the server is decoding too many pixels: {exc}", RETRY_LATER) from None
        except Exception as exc:  # noqa: BLE001 - a decoder failing on a file is that file's problem, not the batch's
            log.warning("cannot decode %s", name, exc_info=True)
            raise RequestError(422, f"{name}: cannot decode this image ({type(exc).__name__}: {exc}); "
                                    f"convert it to PNG or JPEG (RGB or grayscale)") from None

    async def classify(pixels: np.ndarray, k: int) -> list[dict[str, Any]]:
        return _top(await batcher.submit(pixels), predictor.info.class_names, k)

    async def within_timeout(work, received: asyncio.Event):
        """Run `work` for at most timeout_s: 408 while the upload is still arriving, 504 once it is in."""
        try:
            return await asyncio.wait_for(work, config.timeout_s)
        except asyncio.TimeoutError:
            if not received.is_set():
                raise RequestError(408, f"the upload took longer than {config.timeout_s:g} s (timeout_s); "
                                        f"send it faster, or a smaller file", CLOSE) from None
            raise RequestError(504, f"the request took longer than {config.timeout_s:g} s (timeout_s); "
                                    f"the server is busy, try again") from None

    @app.post("/v1/predict", summary="Classify one image", openapi_extra={"requestBody": IMAGE_BODY})
    async def predict(request: Request, topk: int = Query(5, ge=1, le=1000, description="classes to return")):
        started = time.perf_counter()
        received = asyncio.Event()

        async def work():
            with batcher.arriving():  # a micro-batch waits for requests still being read or decoded
                uploads = await _uploads(request, config)
                received.set()
                if len(uploads) > 1:
                    raise RequestError(422, f"{len(uploads)} files in one /v1/predict request; send them to "
                                            f"/v1/predict/batch")
                pixels = await decode(*uploads[0])
            return await classify(pixels, min(topk, predictor.info.num_classes))

        top = await within_timeout(work(), received)
        return {"model": model_name, "top": top, "time_ms": round(1000 * (time.perf_counter() - started), 2)}

    @app.post("/v1/predict/batch", summary="Classify several images", openapi_extra={"requestBody": BATCH_BODY})
    async def predict_batch(request: Request, topk: int = Query(5, ge=1, le=1000)):
        started = time.perf_counter()
        k = min(topk, predictor.info.num_classes)
        received = asyncio.Event()

        async def work():
            decoded: list[np.ndarray | RequestError] = []
            with batcher.arriving():
                uploads = await _uploads(request, config)
                received.set()
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

        results = await within_timeout(work(), received)
        if all("error" in r for r in results):
            status = max(r["status"] for r in results)
            return JSONResponse({"error": "none of the images could be read", "predictions": results},
                                status_code=status, headers=RETRY_LATER if status == 503 else None)
        return {"model": model_name, "predictions": results,
                "time_ms": round(1000 * (time.perf_counter() - started), 2)}

    card: dict[str, Any] = {}  # made at the first request: the backend is built by then (lifespan)

    @app.get("/v1/model", summary="Model metadata")
    async def model_info():
        if not card:
            card.update(model_card(predictor, model_name))
        return {**card, "server": {**asdict(config), "batches": batcher.stats.to_dict(), "decoding": budget.to_dict()}}

    @app.get("/healthz", summary="Liveness")
    async def healthz():
        return {"status": "ok"}

    page_html = resources.files(__package__).joinpath("page.html").read_text()  # read once, not per visit
    docs_html: list[str] = []  # made at the first visit, once every route is registered

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs():
        if not docs_html:
            docs_html.append(docs_page(app.openapi()))
        return docs_html[0]

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return page_html

    return app


def serve(model_path: str, config: ServeConfig, weights: str | None = None) -> None:
    """Load the model file (or an architecture with published `weights`) and serve it until interrupted."""
    from pathlib import Path

    import uvicorn

    predictor = Predictor.from_file(model_path, device=config.device, batch_size=config.max_batch_size,
                                    backend=config.backend, precision=config.precision, weights=weights)
    card = model_card(predictor, Path(model_path).name)  # builds the backend (measures it once, if auto)
    print(f"resnetlab serve: {card['arch']['name']}, {card['num_classes']} classes, {card['backend']} "
          f"{card['precision']} on {card['device']}, http://{config.host}:{config.port}/ (docs at /docs)", flush=True)
    app = create_app(predictor, config, Path(model_path).name)
    uvicorn.Server(uvicorn_config(app, config)).run()


def uvicorn_config(app: FastAPI, config: ServeConfig):
    """How uvicorn runs `app`: our host and port, idle and header timeouts, header size limit and logging."""
    import uvicorn

    from .protocol import guarded_protocol

    return uvicorn.Config(app, host=config.host, port=config.port, log_config=_log_config(config.access_log),
                          log_level=None, access_log=config.access_log,
                          http=guarded_protocol(config.header_timeout_s), timeout_keep_alive=KEEP_ALIVE_S)


def _log_config(access_log: bool) -> dict[str, Any]:
    """uvicorn's logging, with its start-up chatter (uvicorn.error at INFO) quiet and the access log at INFO.

    uvicorn's log_level sets one level for both loggers, so log_level="warning" also hid every access line.
    """
    from copy import deepcopy

    from uvicorn.config import LOGGING_CONFIG

    logging_config = deepcopy(LOGGING_CONFIG)
    loggers = logging_config["loggers"]
    loggers["uvicorn.error"] = {**loggers.get("uvicorn.error", {}), "level": "WARNING"}
    loggers["uvicorn.asgi"] = {**loggers.get("uvicorn.asgi", {}), "level": "WARNING"}
    loggers["uvicorn.access"] = {**loggers.get("uvicorn.access", {}), "level": "INFO" if access_log else "WARNING"}
    return logging_config
