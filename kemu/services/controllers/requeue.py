"""Delayed re-syncs without piling up timers.

Some moments carry no watch event: a ready pod passing minReadySeconds, a rollout's
progress deadline. Controllers re-sync the owner then with the queue's `add_after`; as
every sync in between asks again, this keeps one pending wake-up per key, the earliest
(as client-go's delaying queue keeps the earlier of two AddAfter calls for one item).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

from kemu.client.workqueue import WorkQueue

K = TypeVar("K")


class Requeuer(Generic[K]):
    """`after(key, delay)` schedules a re-sync unless an earlier one is already pending."""

    def __init__(self, queue: WorkQueue[K], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.queue = queue
        self.clock = clock
        self._due: dict[K, float] = {}

    def after(self, key: K, delay: float) -> bool:
        """True when a new wake-up was scheduled."""
        now = self.clock()
        due = now + max(delay, 0.0)
        pending = self._due.get(key)
        if pending is not None and now < pending <= due:
            return False
        self._due[key] = due
        self.queue.add_after(key, max(delay, 0.0))
        return True

    def forget(self, key: K) -> None:
        self._due.pop(key, None)
