"""A server in its own process, and a load generator for it: N requests from C concurrent clients.

Used by the server tests and benchmarks/serve_load.py. Each client is one keep-alive HTTP/1.1
connection written with asyncio streams: a general HTTP client (httpx) spends about 4 ms of CPU per
request, as much as the server itself, and on a 2-core machine that would measure the client.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np


@dataclass
class LoadResult:
    requests: int
    clients: int
    seconds: float
    latencies: list[float] = field(repr=False)  # seconds, per request
    errors: list[str]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def percentile_ms(self, q: float) -> float:
        return 1000 * float(np.percentile(self.latencies, q))

    def summary(self) -> dict:
        return {"requests": self.requests, "clients": self.clients, "seconds": round(self.seconds, 3),
                "requests_per_s": round(self.throughput, 1), "p50_ms": round(self.percentile_ms(50), 2),
                "p90_ms": round(self.percentile_ms(90), 2), "p99_ms": round(self.percentile_ms(99), 2),
                "errors": len(self.errors)}


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes,
                                                                                                          bool]:
    """Send one request; return (status, body, whether the server keeps the connection open)."""
    writer.write(request)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length, keep = 0, True
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
        elif name.lower() == "connection" and value.strip().lower() == "close":
            keep = False
    return status, await reader.readexactly(length), keep


async def _run(url: str, payloads: list[bytes], requests: int, clients: int, content_type: str) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path.rstrip("/") + "/v1/predict"
    latencies: list[float] = []
    errors: list[str] = []
    numbers = iter(range(requests))

    async def client() -> None:
        connection = None
        for i in numbers:  # clients share one counter: each request is sent exactly once
            body = payloads[i % len(payloads)]
            request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n").encode() + body
            started = time.perf_counter()
            try:
                if connection is None:
                    connection = await asyncio.open_connection(host, port)
                status, answer, keep = await _exchange(*connection, request)
                if status != 200:
                    errors.append(f"{status}: {answer[:200]!r}")
                if not keep:
                    connection[1].close()
                    connection = None
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
                errors.append(repr(exc))
                connection = None
            latencies.append(time.perf_counter() - started)
        if connection is not None:
            connection[1].close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return LoadResult(requests, clients, time.perf_counter() - started, latencies, errors)


def load_test(url: str, payloads: list[bytes], *, requests: int = 2000, clients: int = 32,
              content_type: str = "image/png") -> LoadResult:
    """POST `requests` images (cycling through `payloads`) to url/v1/predict from `clients` at once."""
    return asyncio.run(_run(url, payloads, requests, clients, content_type))


@contextmanager
def running_server(model: str | Path, settings: list[str] | tuple[str, ...] = (), *, start_timeout: float = 180
                   ) -> Iterator[str]:
    """`resnetlab serve MODEL key=value...` on a free loopback port; yields its URL once /healthz answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # output to a file, not a pipe: nobody reads a pipe while serving, and the access log (a line per request)
    # would fill its 64 KB and block the server
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen([sys.executable, "-m", "resnetlab", "serve", str(model), f"port={port}",
                                    *settings], stdout=output, stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + start_timeout
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
                        if answer.status == 200:
                            break
                except OSError:
                    pass
                if process.poll() is not None or time.time() > deadline:
                    process.kill()
                    process.wait()
                    output.seek(0)
                    raise RuntimeError(f"the server did not start: {output.read()}")
                time.sleep(0.3)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
