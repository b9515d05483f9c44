"""Lease expiry bookkeeping (etcd's lessor), in memory on the event loop.

Grants and revocations are writes and go through the writer (they persist and,
for revocation, delete keys at a new revision). Renewals only move an expiry
time in memory, as in etcd, so a restart gives every lease its full TTL again.
The clock is injected so expiry is tested with a fake one.
"""

from __future__ import annotations

import heapq
import math
import secrets
from dataclasses import dataclass

from kemu.services.store.clock import Clock
from kemu.services.store.errors import LeaseTTLTooLarge

# etcd: minimum TTL is ceil(1.5 * election timeout) = 2 s with default settings.
MIN_TTL = 2
# etcd's MaxLeaseTTL.
MAX_TTL = 9_000_000_000


@dataclass(slots=True)
class Lease:
    """One live lease."""

    id: int
    ttl: int
    expiry: float


def effective_ttl(requested: int) -> int:
    """The TTL etcd would grant for a request (raised to the minimum, capped)."""
    if requested > MAX_TTL:
        raise LeaseTTLTooLarge()
    return max(requested, MIN_TTL)


class Lessor:
    """Tracks expiry times of the live leases and tells which have expired."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._leases: dict[int, Lease] = {}
        self._heap: list[tuple[float, int]] = []
        self._revoking: set[int] = set()

    def new_id(self) -> int:
        """A fresh positive int64 lease ID not in use."""
        while True:
            lease_id = secrets.randbits(63)
            if lease_id and lease_id not in self._leases:
                return lease_id

    def add(self, lease_id: int, ttl: int) -> Lease:
        """Track a lease that the writer has just persisted."""
        lease = Lease(lease_id, ttl, self._clock.monotonic() + ttl)
        self._leases[lease_id] = lease
        heapq.heappush(self._heap, (lease.expiry, lease_id))
        return lease

    def remove(self, lease_id: int) -> None:
        """Forget a lease that the writer has revoked."""
        self._leases.pop(lease_id, None)
        self._revoking.discard(lease_id)

    def get(self, lease_id: int) -> Lease | None:
        lease = self._leases.get(lease_id)
        if lease is None or self._expired(lease):
            return None
        return lease

    def renew(self, lease_id: int) -> int:
        """Restart a lease's TTL; returns the TTL, or 0 when it does not exist."""
        lease = self.get(lease_id)
        if lease is None:
            return 0
        lease.expiry = self._clock.monotonic() + lease.ttl
        heapq.heappush(self._heap, (lease.expiry, lease_id))
        return lease.ttl

    def remaining(self, lease: Lease) -> int:
        """Whole seconds left (etcd truncates)."""
        return max(0, math.floor(lease.expiry - self._clock.monotonic()))

    def ids(self) -> list[int]:
        return [i for i, lease in self._leases.items() if not self._expired(lease)]

    def expired(self) -> list[int]:
        """Leases past their expiry that are not already being revoked.

        They are marked as being revoked; the caller must revoke them and call
        ``remove`` (or ``retry`` when the revocation failed).
        """
        now = self._clock.monotonic()
        out: list[int] = []
        while self._heap and self._heap[0][0] <= now:
            expiry, lease_id = heapq.heappop(self._heap)
            lease = self._leases.get(lease_id)
            if lease is None or lease.expiry != expiry or lease_id in self._revoking:
                continue  # stale heap entry (renewed or removed)
            self._revoking.add(lease_id)
            out.append(lease_id)
        return out

    def retry(self, lease_id: int) -> None:
        """Put back a lease whose revocation failed, to be tried again."""
        lease = self._leases.get(lease_id)
        self._revoking.discard(lease_id)
        if lease is not None:
            heapq.heappush(self._heap, (lease.expiry, lease_id))

    def next_expiry(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def _expired(self, lease: Lease) -> bool:
        return lease.id in self._revoking or lease.expiry <= self._clock.monotonic()
