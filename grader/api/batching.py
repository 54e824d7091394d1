"""An asyncio micro-batcher: concurrent requests share one model call.

Requests are collected for ``wait_s`` seconds or until ``max_size`` items, then
the whole batch runs in one worker thread, so the event loop never blocks on the
model. ``run_batch`` returns one result or one exception per item: a failing item
fails only its own request.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from grader.errors import ServiceUnavailableError

log = logging.getLogger("grader.api")


@dataclass
class BatchOutcome:
    """What one item got back: its result (or exception) and the batch it ran in."""

    value: Any
    batch_id: int
    batch_size: int


class MicroBatcher:
    """Collects items from concurrent coroutines and runs them through ``run_batch`` together.

    ``run_batch(items)`` runs in a single worker thread and returns a list as long as
    ``items`` holding a result or an ``Exception`` for each. If it raises instead,
    every item is retried alone so that only the bad ones fail.
    """

    def __init__(self, run_batch: Callable[[list], Sequence[Any]], *, max_size: int = 32, wait_s: float = 0.002,
                 max_queue: int = 2000, metrics=None):
        self.run_batch = run_batch
        self.max_size = max_size
        self.wait_s = wait_s
        self.max_queue = max_queue
        self.metrics = metrics
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._ids = itertools.count(1)

    async def start(self) -> None:
        """Start the collecting task and the model thread (inside the running event loop)."""
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="grader-model")
        self._task = asyncio.create_task(self._loop(), name="grader-batcher")

    async def stop(self) -> None:
        """Stop collecting; items still waiting fail with 503."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._queue is not None:
            while not self._queue.empty():
                _, fut = self._queue.get_nowait()
                if not fut.done():
                    fut.set_exception(ServiceUnavailableError("the service is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    @property
    def depth(self) -> int:
        """Items waiting for the model."""
        return self._queue.qsize() if self._queue is not None else 0

    def submit(self, items: Sequence[Any]) -> list[asyncio.Future]:
        """Queue ``items``; each future resolves to a :class:`BatchOutcome`. Raises 503 when the queue is full."""
        if self._queue is None:
            raise ServiceUnavailableError("the batcher is not running")
        if self._queue.qsize() + len(items) > self.max_queue:
            raise ServiceUnavailableError(
                f"the grading queue is full ({self.max_queue} answers waiting); retry shortly", field=None)
        loop = asyncio.get_running_loop()
        futures = []
        for item in items:
            fut = loop.create_future()
            self._queue.put_nowait((item, fut))
            futures.append(fut)
        self._gauge()
        return futures

    async def _collect(self) -> list:
        queue = self._queue
        batch = [await queue.get()]
        deadline = time.perf_counter() + self.wait_s
        while len(batch) < self.max_size:
            try:
                batch.append(queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            self._gauge()
            live = [(item, fut) for item, fut in batch if not fut.done()]  # a timed-out caller needs no work
            if not live:
                continue
            batch_id = next(self._ids)
            items = [item for item, _ in live]
            started = time.perf_counter()
            try:
                values = await loop.run_in_executor(self._executor, self._run_isolated, items)
            except Exception as exc:  # noqa: BLE001 - never let the collecting task die
                values = [exc] * len(items)
            if self.metrics is not None:
                self.metrics.batch_size.observe(len(items))
                self.metrics.batch_seconds.observe(time.perf_counter() - started)
            for (_, fut), value in zip(live, values):
                if not fut.done():
                    fut.set_result(BatchOutcome(value, batch_id, len(items)))

    def _run_isolated(self, items: list) -> list:
        """``run_batch`` on the whole batch, or item by item when the batch call itself fails."""
        try:
            values = list(self.run_batch(items))
            if len(values) != len(items):
                raise RuntimeError(f"run_batch returned {len(values)} results for {len(items)} items")
            return values
        except Exception as exc:  # noqa: BLE001 - isolate: retry each item alone
            log.warning("batch of %d failed (%s); grading its items one by one", len(items), type(exc).__name__)
        values = []
        for item in items:
            try:
                values.append(list(self.run_batch([item]))[0])
            except Exception as exc:  # noqa: BLE001 - the item's own failure, reported to its caller only
                values.append(exc)
        return values

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(self.depth)
