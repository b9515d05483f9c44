"""kube-scheduler's series: attempts by result, their latency, and pending pods per queue.

An attempt ends `scheduled` when its bind succeeded, `unschedulable` when no node fits,
`error` otherwise (a bad request, a failed bind), as kube-scheduler counts them; its
duration runs from the start of the scheduling cycle to that end. Pending pods are read
from the scheduling queue at scrape time: `active` (waiting for a worker), `backoff`
(waiting out a back-off after a failure) and `unschedulable` (parked until something
changes).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from kemu.services.scheduler.queue import SchedulingQueue
from kemu.util.metrics import CallbackCollector, new_registry

RESULTS = ("scheduled", "unschedulable", "error")
# kube-scheduler's: exponential from 1 ms, factor 2, 15 buckets (to about 16 s).
ATTEMPT_BUCKETS = tuple(0.001 * 2 ** i for i in range(15))


class SchedulerMetrics:
    """The scheduler's registry and its series; `attempt(result, started)` per attempt."""

    def __init__(self, queue: SchedulingQueue, *, profile: str,
                 registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else new_registry()
        attempts = Counter("scheduler_schedule_attempts",
                           "Number of attempts to schedule pods, by the result.",
                           ("result", "profile"), registry=self.registry)
        duration = Histogram("scheduler_scheduling_attempt_duration_seconds",
                             "Scheduling attempt latency in seconds (scheduling algorithm "
                             "+ binding)", ("result", "profile"), buckets=ATTEMPT_BUCKETS,
                             registry=self.registry)
        self._record: dict[str, tuple[Callable[[], None], Callable[[float], None]]] = {
            r: (attempts.labels(r, profile).inc, duration.labels(r, profile).observe)
            for r in RESULTS}

        def pending() -> list[Metric]:
            family = GaugeMetricFamily("scheduler_pending_pods",
                                       "Number of pending pods, by the queue type.",
                                       labels=("queue",))
            family.add_metric(("active",), len(queue))
            family.add_metric(("backoff",), queue.active.waiting)
            family.add_metric(("unschedulable",), queue.unschedulable)
            return [family]
        self.registry.register(CallbackCollector(pending))

    def attempt(self, result: str, started: float) -> None:
        """One attempt that ended with `result`; `started` is its time.perf_counter()."""
        inc, observe = self._record[result]
        inc()
        observe(time.perf_counter() - started)
