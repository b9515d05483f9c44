"""The scheduling queue: pending pods to try, pods that fit nowhere, and back-off.

After kube-scheduler's PriorityQueue, simplified to what kemu needs. A pending pod is in
exactly one place: the active queue (a de-duplicating `WorkQueue`, FIFO), waiting out its
back-off (an `add_after` timer), or parked as unschedulable. Parked pods are not retried
in a loop: they go back to the active queue when something happens that could make them
fit (a node added or changed, an assigned pod deleted, the pod itself updated), and at
the latest `max_unschedulable` seconds after they were parked. A pod that failed recently
waits out its back-off (1 s doubling to 10 s by default) before it is tried again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kemu.client.workqueue import WorkQueue


class SchedulingQueue:
    """Active queue + back-off + unschedulable pods, keyed by `namespace/name`."""

    def __init__(self, *, initial_backoff: float = 1.0, max_backoff: float = 10.0,
                 max_unschedulable: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.active: WorkQueue[str] = WorkQueue()
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_unschedulable = max_unschedulable
        self.clock = clock
        self._unschedulable: dict[str, float] = {}
        self._attempts: dict[str, int] = {}
        self._last_failure: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self.active)

    @property
    def unschedulable(self) -> int:
        return len(self._unschedulable)

    def is_unschedulable(self, key: str) -> bool:
        return key in self._unschedulable

    def backoff_duration(self, key: str) -> float:
        attempts = self._attempts.get(key, 0)
        if attempts <= 0:
            return 0.0
        return min(self.initial_backoff * (1 << min(attempts - 1, 30)), self.max_backoff)

    def backoff_remaining(self, key: str) -> float:
        last = self._last_failure.get(key)
        if last is None:
            return 0.0
        return max(0.0, last + self.backoff_duration(key) - self.clock())

    def add(self, key: str) -> None:
        """A new or changed pending pod: try it (after any back-off it still owes)."""
        self._unschedulable.pop(key, None)
        self.active.add_after(key, self.backoff_remaining(key))

    async def pop(self) -> str:
        """The next pod to schedule (raises workqueue.ShutDown when shut down)."""
        key = await self.active.get()
        self._unschedulable.pop(key, None)
        return key

    def done(self, key: str) -> None:
        self.active.done(key)

    def mark_unschedulable(self, key: str) -> None:
        """The pod fits no node: park it until something changes."""
        self._failed(key)
        self._unschedulable[key] = self.clock()

    def mark_error(self, key: str) -> None:
        """The attempt failed for another reason: retry after back-off."""
        self._failed(key)
        self._unschedulable.pop(key, None)
        self.active.add_after(key, self.backoff_duration(key))

    def _failed(self, key: str) -> None:
        self._attempts[key] = self._attempts.get(key, 0) + 1
        self._last_failure[key] = self.clock()

    def move_all_to_active(self) -> int:
        """Something changed that may let parked pods fit: retry them all; returns how many."""
        keys = list(self._unschedulable)
        for key in keys:
            self.add(key)
        return len(keys)

    def flush_leftover(self) -> int:
        """Retry pods parked longer than max_unschedulable; returns how many."""
        now = self.clock()
        stale = [k for k, since in self._unschedulable.items()
                 if now - since >= self.max_unschedulable]
        for key in stale:
            self.add(key)
        return len(stale)

    def forget(self, key: str) -> None:
        """The pod is scheduled or gone: drop its failure history."""
        self._unschedulable.pop(key, None)
        self._attempts.pop(key, None)
        self._last_failure.pop(key, None)

    async def shut_down(self) -> None:
        await self.active.shut_down()
