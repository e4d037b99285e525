"""Micro-batching: concurrent requests share one forward pass.

Requests announce themselves when they arrive (`arriving()`), put their preprocessed image on a
queue and await a future. One task takes the first waiting image, gathers more until
`max_batch_size`, or until `max_wait_ms` passes with the queue empty, or at once when no announced
request is still on its way (a lone request never waits), and runs the whole batch on a single
inference thread (two inferences side by side would only fight over the same cores). While a batch
runs, new requests queue up, so under load each batch is as large as the load allows and
throughput approaches the backend's batch throughput.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np


@dataclass
class BatchStats:
    batches: int = 0
    images: int = 0
    largest: int = 0

    def add(self, size: int) -> None:
        self.batches += 1
        self.images += size
        self.largest = max(self.largest, size)

    def to_dict(self) -> dict:
        mean = self.images / self.batches if self.batches else 0.0
        return {"batches": self.batches, "images": self.images, "largest": self.largest, "mean": round(mean, 2)}


class MicroBatcher:
    """`await batcher.submit(image)` -> that image's row of `run(np.stack(images))`."""

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], *, max_batch_size: int = 32,
                 max_wait_ms: float = 2.0):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self.run, self.max_batch_size, self.max_wait = run, max_batch_size, max_wait_ms / 1000.0
        self.stats = BatchStats()
        self._queue: asyncio.Queue | None = None
        self._on_the_way = 0  # announced requests that have not reached the queue yet
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    @contextlib.contextmanager
    def arriving(self):
        """Wrap a request from its arrival until its image is ready to `submit` (reading, decoding)."""
        self._on_the_way += 1
        try:
            yield
        finally:
            self._on_the_way -= 1

    async def submit(self, image: np.ndarray) -> np.ndarray:
        if self._queue is None:
            raise RuntimeError("the batcher is not running (call start() first)")
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((image, future))
        return await future

    async def _gather(self) -> list:
        assert self._queue is not None
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_batch_size:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0 or self._on_the_way <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return [(image, future) for image, future in batch if not future.done()]  # drop timed-out requests

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            if not batch:
                continue
            try:
                outputs = await loop.run_in_executor(self._executor, self.run, np.stack([b[0] for b in batch]))
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the failure, the loop lives on
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.stats.add(len(batch))
            for (_, future), row in zip(batch, outputs):
                if not future.done():
                    future.set_result(row)
