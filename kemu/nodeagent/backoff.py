"""Kubernetes' per-item exponential back-off (client-go `flowcontrol.Backoff`), as the
kubelet uses it for crash-looping containers and failing image pulls.

A container that exits is restarted at once the first time; after that, each restart waits
for the current back-off counted from the moment the container finished (10 s, 20 s, 40 s,
... up to 5 min). An item whose last back-off step is older than twice the maximum (10 min:
the container ran that long) starts again from the initial delay.
"""

from __future__ import annotations

from dataclasses import dataclass

from kemu.nodeagent.clock import Clock


@dataclass
class _Entry:
    backoff: float
    last_update: float


class Backoff:
    """Per-key back-off. Times are the clock's monotonic seconds."""

    def __init__(self, clock: Clock, *, initial: float = 10.0, maximum: float = 300.0) -> None:
        self.clock = clock
        self.initial = initial
        self.maximum = maximum
        self._items: dict[str, _Entry] = {}

    def _expired(self, event_time: float, entry: _Entry) -> bool:
        return event_time - entry.last_update > 2 * self.maximum

    def get(self, key: str) -> float:
        """The current back-off of `key` (0 when none)."""
        entry = self._items.get(key)
        return entry.backoff if entry else 0.0

    def next(self, key: str, event_time: float) -> None:
        """Record one more failure of `key` that happened at `event_time`."""
        entry = self._items.get(key)
        if entry is None or self._expired(event_time, entry):
            entry = self._items[key] = _Entry(self.initial, 0.0)
        else:
            entry.backoff = min(entry.backoff * 2, self.maximum)
        entry.last_update = self.clock.monotonic()

    def remaining(self, key: str, event_time: float) -> float:
        """Seconds until `key` may be retried after an event at `event_time` (0: now)."""
        entry = self._items.get(key)
        if entry is None or self._expired(event_time, entry):
            return 0.0
        return max(0.0, entry.backoff - (self.clock.monotonic() - event_time))

    def remaining_since_update(self, key: str, now: float) -> float:
        """Seconds left of the back-off counted from the last failure recorded (the image
        puller's IsInBackOffSinceUpdate)."""
        entry = self._items.get(key)
        if entry is None or self._expired(now, entry):
            return 0.0
        return max(0.0, entry.backoff - (now - entry.last_update))

    def in_backoff_since(self, key: str, event_time: float) -> bool:
        return self.remaining(key, event_time) > 0

    def reset(self, key: str) -> None:
        self._items.pop(key, None)

    def forget_prefix(self, prefix: str) -> None:
        """Drop every key of one pod (keys start with its uid)."""
        for key in [k for k in self._items if k.startswith(prefix)]:
            del self._items[key]

    def seed(self, key: str, backoff: float, last_update: float) -> None:
        """Restore an entry after an agent restart (from a container's labels)."""
        self._items[key] = _Entry(min(max(backoff, self.initial), self.maximum), last_update)
