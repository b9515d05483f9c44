"""Expectations: the creates and deletes a controller has issued and its cache has not shown.

The informer cache lags the API: right after a ReplicaSet controller creates two pods, a
re-sync that lists the cache still sees the old count and would create two more. As
Kubernetes' `ControllerExpectations` does, the controller records per owner how many
creations and deletions it expects to observe; the watch handlers count them down as the
pods appear or go; the owner is synced (pods created or deleted) only when nothing is
outstanding, or when the record is older than a timeout (a watch event that never comes,
e.g. a create that failed after the server had applied it, must not block the owner
forever). Deletions are tracked by pod key (`UIDTrackingControllerExpectations`) so that
the update that marks a pod terminating and its final delete count only once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

EXPECTATIONS_TIMEOUT = 300.0  # Kubernetes' ExpectationsTimeout: 5 minutes


@dataclass
class _Record:
    adds: int
    deletes: int
    timestamp: float
    delete_keys: set[str] = field(default_factory=set)

    def fulfilled(self) -> bool:
        return self.adds <= 0 and self.deletes <= 0


class Expectations:
    """Outstanding creations and deletions per owner key (`namespace/name`)."""

    def __init__(self, *, timeout: float = EXPECTATIONS_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.clock = clock
        self._records: dict[str, _Record] = {}

    def satisfied(self, key: str) -> bool:
        """True when the owner may be synced: nothing outstanding, or the record expired."""
        rec = self._records.get(key)
        if rec is None:
            return True
        return rec.fulfilled() or self.clock() - rec.timestamp > self.timeout

    def expect_creations(self, key: str, count: int) -> None:
        self._records[key] = _Record(count, 0, self.clock())

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        keys = set(pod_keys)
        self._records[key] = _Record(0, len(keys), self.clock(), keys)

    def creation_observed(self, key: str) -> None:
        rec = self._records.get(key)
        if rec is not None:
            rec.adds -= 1

    def deletion_observed(self, key: str, pod_key: str) -> None:
        """Count down once per pod we deleted; other pods' deletions change nothing."""
        rec = self._records.get(key)
        if rec is not None and pod_key in rec.delete_keys:
            rec.delete_keys.discard(pod_key)
            rec.deletes -= 1

    def forget(self, key: str) -> None:
        """The owner is gone: drop its record."""
        self._records.pop(key, None)

    def pending(self, key: str) -> tuple[int, int]:
        """(creations, deletions) still expected, for logs and tests."""
        rec = self._records.get(key)
        return (0, 0) if rec is None else (max(rec.adds, 0), max(rec.deletes, 0))
