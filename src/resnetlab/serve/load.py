"""A load generator for a running server: N requests from C concurrent clients, latencies and errors.

Used by the load test and benchmarks/serve_load.py; needs httpx (a dev dependency).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

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


async def _run(url: str, payloads: list[bytes], requests: int, clients: int, content_type: str) -> LoadResult:
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    numbers = iter(range(requests))

    async def client(http: httpx.AsyncClient) -> None:
        for i in numbers:  # clients share one counter: each request is sent exactly once
            started = time.perf_counter()
            try:
                answer = await http.post(f"{url}/v1/predict", content=payloads[i % len(payloads)],
                                         headers={"content-type": content_type})
                if answer.status_code != 200:
                    errors.append(f"{answer.status_code}: {answer.text[:200]}")
            except httpx.HTTPError as exc:
                errors.append(repr(exc))
            latencies.append(time.perf_counter() - started)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        seconds = time.perf_counter() - started
    return LoadResult(requests, clients, seconds, latencies, errors)


def load_test(url: str, payloads: list[bytes], *, requests: int = 2000, clients: int = 32,
              content_type: str = "image/png") -> LoadResult:
    """POST `requests` images (cycling through `payloads`) to url/v1/predict from `clients` at once."""
    return asyncio.run(_run(url.rstrip("/"), payloads, requests, clients, content_type))
