"""An asyncio micro-batcher: concurrent requests share one model call, and no request waits long behind another.

Requests are collected for ``wait_s`` seconds or until ``max_size`` items (or ``max_cost``
of them), then the batch runs in one worker thread, so the event loop never blocks on the
model. ``run_batch`` returns one result or one exception per item: a failing item fails
only its own request.

Each ``submit`` call is a group (one request's items). A batch takes items from the groups
in turn, those served least first, within ``max_size`` items and ``max_cost`` (say,
characters to encode); so a large request is cut into small batches, and a request that
arrives while it runs goes into the very next one. Items whose caller stopped waiting
(a cancelled future) are dropped before they are graded.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from grader.errors import ServiceUnavailableError

log = logging.getLogger("grader.api")


@dataclass
class BatchOutcome:
    """What one item got back: its result (or exception) and the batch it ran in."""

    value: Any
    batch_id: int
    batch_size: int


@dataclass
class _Group:
    """The items of one ``submit`` call still waiting, and how many of its items were taken."""

    seq: int
    entries: deque = field(default_factory=deque)  # (item, future, cost)
    served: int = 0


class MicroBatcher:
    """Collects items from concurrent coroutines and runs them through ``run_batch`` together.

    ``run_batch(items)`` runs in a single worker thread and returns a list as long as
    ``items`` holding a result or an ``Exception`` for each. If it raises instead,
    every item is retried alone so that only the bad ones fail. ``max_cost`` (None: no
    bound) bounds the summed costs given to :meth:`submit` in one batch; an item that
    costs more on its own runs alone.
    """

    def __init__(self, run_batch: Callable[[list], Sequence[Any]], *, max_size: int = 32, wait_s: float = 0.002,
                 max_queue: int = 2000, max_cost: float | None = None, metrics=None):
        self.run_batch = run_batch
        self.max_size = max_size
        self.wait_s = wait_s
        self.max_queue = max_queue
        self.max_cost = max_cost
        self.metrics = metrics
        self._groups: list[_Group] = []
        self._pending = 0
        self._pending_cost = 0.0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._ids = itertools.count(1)
        self._seq = itertools.count()

    async def start(self) -> None:
        """Start the collecting task and the model thread (inside the running event loop)."""
        self._wakeup = asyncio.Event()
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
        for group in self._groups:
            for _, fut, _ in group.entries:
                if not fut.done():
                    fut.set_exception(ServiceUnavailableError("the service is shutting down"))
        self._groups, self._pending, self._pending_cost = [], 0, 0.0
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    @property
    def depth(self) -> int:
        """Items waiting for the model."""
        return self._pending

    def submit(self, items: Sequence[Any], costs: Sequence[float] | None = None) -> list[asyncio.Future]:
        """Queue ``items`` as one group; each future resolves to a :class:`BatchOutcome`. 503 when the queue is full.

        ``costs`` (default 1 each) count against ``max_cost``. Cancel a future to drop its item.
        """
        if self._wakeup is None:
            raise ServiceUnavailableError("the batcher is not running")
        if self._pending + len(items) > self.max_queue:
            raise ServiceUnavailableError(
                f"the grading queue is full ({self.max_queue} answers waiting); retry shortly", field=None)
        costs = [1.0] * len(items) if costs is None else list(costs)
        loop = asyncio.get_running_loop()
        group = _Group(next(self._seq))
        futures = []
        for item, cost in zip(items, costs):
            fut = loop.create_future()
            group.entries.append((item, fut, cost))
            futures.append(fut)
        if futures:
            self._groups.append(group)
            self._pending += len(futures)
            self._pending_cost += sum(costs)
            self._wakeup.set()
        self._gauge()
        return futures

    def _full(self) -> bool:
        if self._pending >= self.max_size:
            return True
        return self.max_cost is not None and self._pending_cost >= self.max_cost

    async def _collect(self) -> list:
        wakeup = self._wakeup
        while self._pending == 0:
            wakeup.clear()
            await wakeup.wait()
        deadline = time.perf_counter() + self.wait_s
        while not self._full():
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            wakeup.clear()
            try:
                await asyncio.wait_for(wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                break
        return self._take()

    def _pop(self, group: _Group) -> None:
        _, _, cost = group.entries.popleft()
        self._pending -= 1
        self._pending_cost -= cost

    def _take(self) -> list:
        """One batch: items from each group in turn, least served first, within max_size and max_cost."""
        batch, cost = [], 0.0
        blocked: set[int] = set()
        order = sorted(self._groups, key=lambda g: (g.served, g.seq))
        progress = True
        while progress and len(batch) < self.max_size:
            progress = False
            for group in order:
                while group.entries and group.entries[0][1].done():  # its caller stopped waiting
                    self._pop(group)
                if not group.entries or group.seq in blocked:
                    continue
                item, fut, item_cost = group.entries[0]
                if batch and self.max_cost is not None and cost + item_cost > self.max_cost:
                    blocked.add(group.seq)  # it waits for the next batch; smaller items may still fit
                    continue
                self._pop(group)
                group.served += 1
                batch.append((item, fut))
                cost += item_cost
                progress = True
                if len(batch) >= self.max_size:
                    break
        self._groups = [g for g in self._groups if g.entries]
        if not self._groups:
            self._pending, self._pending_cost = 0, 0.0  # no drift from float costs
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            live = await self._collect()
            self._gauge()
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
