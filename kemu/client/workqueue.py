"""An asyncio work queue with client-go's semantics.

Keys are de-duplicated while waiting; a key being processed is never handed to a second
worker (if it is added meanwhile, it is queued again when `done` is called);
`add_rate_limited` re-adds with per-key exponential back-off until `forget`;
`add_after` re-adds after a delay. Model: client-go's workqueue as used by
`processNextWorkItem`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

from kemu.util.logsetup import event, ms_since

K = TypeVar("K")


class QueueMetrics(Protocol):
    """What a queue reports, as client-go's queueMetrics (kemu.util.metrics implements it)."""

    def add(self, key: Any) -> None: ...
    def get(self, key: Any) -> None: ...
    def done(self, key: Any) -> None: ...
    def retry(self) -> None: ...


class ShutDown(Exception):
    """The queue was shut down; workers should return."""


class WorkQueue(Generic[K]):
    """De-duplicating, rate-limited work queue."""

    def __init__(self, *, base_delay: float = 0.005, max_delay: float = 300.0,
                 metrics: QueueMetrics | None = None) -> None:
        self._queue: list[K] = []
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._failures: dict[K, int] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._cond = asyncio.Condition()
        self._shutting_down = False
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.metrics = metrics  # set before the first add (a controller manager names it)

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        if self.metrics is not None:
            self.metrics.add(key)
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._wake()

    def _wake(self) -> None:
        async def notify() -> None:
            async with self._cond:
                self._cond.notify()
        asyncio.ensure_future(notify())  # noqa: RUF006 - only wakes a waiting worker

    async def get(self) -> K:
        async with self._cond:
            while not self._queue:
                if self._shutting_down:
                    raise ShutDown
                await self._cond.wait()
            key = self._queue.pop(0)
        self._processing.add(key)
        self._dirty.discard(key)
        if self.metrics is not None:
            self.metrics.get(key)
        return key

    def done(self, key: K) -> None:
        if self.metrics is not None:
            self.metrics.done(key)
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake()

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            self.add(key)
        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    def add_rate_limited(self, key: K) -> None:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        if self.metrics is not None:
            self.metrics.retry()
        self.add_after(key, min(self.base_delay * (2 ** failures), self.max_delay))

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: K) -> int:
        return self._failures.get(key, 0)

    @property
    def waiting(self) -> int:
        """Keys waiting out an `add_after` delay (back-off)."""
        return len(self._timers)

    async def shut_down(self) -> None:
        self._shutting_down = True
        for handle in self._timers:
            handle.cancel()
        async with self._cond:
            self._cond.notify_all()


async def run_workers(queue: WorkQueue[K], reconcile: Callable[[K], Awaitable[None]],
                      workers: int, *, on_error: Callable[[K, Exception], None] | None = None
                      ) -> None:
    """Run `workers` loops of get -> reconcile -> done; an exception re-adds with back-off.
    Each sync is one event at -v 2 on the reconciling module's logger: the controller, the
    object (its kind where the controller says it) and the duration."""
    controller, of = _describe(reconcile)
    kind = {"kind": of} if of else {}
    log = logging.getLogger(getattr(reconcile, "__module__", None) or __name__)

    async def loop() -> None:
        while True:
            try:
                key = await queue.get()
            except ShutDown:
                return
            started, outcome = time.perf_counter(), "ok"
            try:
                await reconcile(key)
            except asyncio.CancelledError:
                outcome = "cancelled"
                raise
            except Exception as e:
                outcome = "error"
                if on_error is not None:
                    on_error(key, e)
                queue.add_rate_limited(key)
            else:
                queue.forget(key)
            finally:
                queue.done(key)
                event(log, "synced", v=2, controller=controller, **kind, object=key,
                      result=outcome, duration_ms=ms_since(started))

    tasks = [asyncio.create_task(loop()) for _ in range(workers)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)


def _describe(reconcile: Callable[..., Any]) -> tuple[str, str]:
    """The controller's name (its module's NAME, or its workload's, as --controllers names
    it) and the kind of object it syncs (its module's KIND or its workload's), for the
    sync events; "" where the controller does not say."""
    owner = getattr(reconcile, "__self__", None)
    module = sys.modules.get(getattr(reconcile, "__module__", "") or "")
    workload = getattr(owner, "workload", None)
    name = getattr(workload, "name", None) or getattr(module, "NAME", None) or \
        (module.__name__.rpartition(".")[2] if module is not None else "")
    kind = getattr(workload, "kind", None) or getattr(module, "KIND", None) or ""
    return str(name), str(kind)
