"""The kubelet's `/metrics/resource`: the node's, pods' and containers' CPU and memory in
Prometheus form, the endpoint metrics-server scrapes.

The numbers are the Metrics service's (NodeAgent.Stats, what `kemuctl top` shows): one
`NodeStats` serves both, so a scrape takes the same per-container samples from the same
cache (a sample per container at most every few seconds, shared with concurrent askers);
there is no second sampling loop. The memory series are the working set of those samples.

CPU: the samples keep a rate (cores over the engine's ~1 s window), which is no counter.
The counter comes from the same `docker stats` documents: each sample also keeps the
document's cumulative `cpu_usage.total_usage` (nanoseconds of CPU the container used since
it started, `Usage.cpu_usage_ns`). So
`container_cpu_usage_seconds_total` is the engine's own counter, read when the sample was
taken. The node's and a pod's counters are sums over their containers; a container that
goes away leaves its last reading in the sum, so those two never go down while the agent
runs (as the kubelet's cgroup counters), though CPU a container used after its last
sample is not counted.

As the kubelet: pods and containers count their app containers only (not the sandbox, not
init containers); the node counts every running container of the node; each sample
carries the time it was taken; `scrape_error` is 1 when the engine could not be listed.
Under the fake runtime nothing has usage: the node's series are zero (as `kemuctl top
nodes` shows) and there are no pod or container series.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from kemu.api.v1 import api_pb2
from kemu.nodeagent import naming
from kemu.nodeagent.runtime import ContainerRuntimeError
from kemu.nodeagent.stats import NodeStats
from kemu.util.metrics import CallbackCollector


@dataclass(frozen=True)
class ContainerSample:
    """One app container's usage: cumulative CPU seconds (None: the engine gave none),
    memory working set, when it started and when the sample was taken (unix seconds)."""

    namespace: str
    pod: str
    container: str
    cpu_seconds: float | None
    memory_bytes: int
    start_time: float | None
    at: float


@dataclass(frozen=True)
class PodSample:
    """A pod's usage: the sum over its app containers (CPU never going down)."""

    namespace: str
    pod: str
    cpu_seconds: float | None
    memory_bytes: int
    at: float


@dataclass(frozen=True)
class ResourceSnapshot:
    """What one scrape serves; `error` when the engine could not be read."""

    node_cpu_seconds: float
    node_memory_bytes: int
    at: float
    pods: Sequence[PodSample] = ()
    containers: Sequence[ContainerSample] = ()
    error: bool = False


class _Monotonic:
    """A sum of per-container counters that keeps the last reading of containers gone."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._gone = 0.0

    def total(self, live: Mapping[str, float]) -> float:
        self._gone += sum(v for cid, v in self._last.items() if cid not in live)
        self._last = dict(live)
        return self._gone + sum(live.values())


_C = ("container", "namespace", "pod")
_P = ("namespace", "pod")


def families(snap: ResourceSnapshot) -> list[Metric]:
    """The kubelet's resource series for one snapshot (names, help and labels as its)."""
    node_cpu = CounterMetricFamily("node_cpu_usage_seconds", "Cumulative cpu time consumed "
                                   "by the node in core-seconds")
    node_mem = GaugeMetricFamily("node_memory_working_set_bytes", "Current working set of "
                                 "the node in bytes")
    pod_cpu = CounterMetricFamily("pod_cpu_usage_seconds", "Cumulative cpu time consumed "
                                  "by the pod in core-seconds", labels=_P)
    pod_mem = GaugeMetricFamily("pod_memory_working_set_bytes", "Current working set of the "
                                "pod in bytes", labels=_P)
    cpu = CounterMetricFamily("container_cpu_usage_seconds", "Cumulative cpu time consumed "
                              "by the container in core-seconds", labels=_C)
    mem = GaugeMetricFamily("container_memory_working_set_bytes", "Current working set of "
                            "the container in bytes", labels=_C)
    start = GaugeMetricFamily("container_start_time_seconds", "Start time of the container "
                              "since unix epoch in seconds", labels=_C)
    error = GaugeMetricFamily("scrape_error", "1 if there was an error while getting "
                              "container metrics, 0 otherwise", value=1 if snap.error else 0)
    if snap.error:
        return [error]
    node_cpu.add_metric((), snap.node_cpu_seconds, timestamp=snap.at)
    node_mem.add_metric((), snap.node_memory_bytes, timestamp=snap.at)
    for p in snap.pods:
        if p.cpu_seconds is not None:
            pod_cpu.add_metric((p.namespace, p.pod), p.cpu_seconds, timestamp=p.at)
        pod_mem.add_metric((p.namespace, p.pod), p.memory_bytes, timestamp=p.at)
    for c in snap.containers:
        labels = (c.container, c.namespace, c.pod)
        if c.cpu_seconds is not None:
            cpu.add_metric(labels, c.cpu_seconds, timestamp=c.at)
        mem.add_metric(labels, c.memory_bytes, timestamp=c.at)
        if c.start_time is not None:
            start.add_metric(labels, c.start_time, timestamp=c.at)
    return [node_cpu, node_mem, pod_cpu, pod_mem, cpu, mem, start, error]


def resource_registry(snapshot: Callable[[], ResourceSnapshot]) -> CollectorRegistry:
    """A registry of its own holding only the resource series of `snapshot()`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CallbackCollector(lambda: families(snapshot())))
    return registry


class ResourceMetrics:
    """Samples the node through `stats` when scraped: `await
    refresh()`, then encode `registry`. `pod(key)` is the agent's cached pod by
    `namespace/name` (a container of a pod gone or replaced is left out)."""

    def __init__(self, stats: NodeStats, pod: Callable[[str], api_pb2.Object | None], *,
                 wall: Callable[[], float] = time.time) -> None:
        self.stats, self.pod, self.wall = stats, pod, wall
        self.snapshot = ResourceSnapshot(0.0, 0, wall())
        self.registry = resource_registry(lambda: self.snapshot)
        self._node_cpu = _Monotonic()
        self._pod_cpu: dict[str, _Monotonic] = {}

    async def refresh(self) -> ResourceSnapshot:
        """Take (or reuse, within the cache's TTL) the samples and keep the snapshot."""
        try:
            sampled = await self.stats.sample()
        except ContainerRuntimeError:
            self.snapshot = ResourceSnapshot(0.0, 0, self.wall(), error=True)
            return self.snapshot
        cpu = {c.id: u.cpu_usage_ns / 1e9 for c, u in sampled if u.cpu_usage_ns is not None}
        node_mem, node_at = 0, 0.0
        containers: list[ContainerSample] = []
        by_pod: dict[tuple[str, str, str], list[tuple[str, ContainerSample]]] = {}
        for info, usage in sampled:
            node_mem += usage.memory_bytes
            node_at = max(node_at, usage.at)
            labels = info.labels
            if labels.get(naming.KIND) != naming.KIND_APP:
                continue
            ns, name = labels.get(naming.NAMESPACE, ""), labels.get(naming.POD, "")
            obj = self.pod(f"{ns}/{name}")
            uid = labels.get(naming.UID, "")
            if obj is None or obj.pod.metadata.uid != uid:
                continue
            sample = ContainerSample(
                ns, name, labels.get(naming.CONTAINER, ""), cpu.get(info.id),
                usage.memory_bytes,
                info.started_at.timestamp() if info.started_at is not None else None, usage.at)
            containers.append(sample)
            by_pod.setdefault((ns, name, uid), []).append((info.id, sample))
        self._pod_cpu = {uid: self._pod_cpu.get(uid) or _Monotonic()
                         for _, _, uid in by_pod}
        pods = [self._pod_sample(ns, name, self._pod_cpu[uid], members)
                for (ns, name, uid), members in sorted(by_pod.items())]
        containers.sort(key=lambda c: (c.namespace, c.pod, c.container))
        self.snapshot = ResourceSnapshot(self._node_cpu.total(cpu), node_mem,
                                         node_at or self.wall(), pods, containers)
        return self.snapshot

    @staticmethod
    def _pod_sample(ns: str, name: str, counter: _Monotonic,
                    members: Iterable[tuple[str, ContainerSample]]) -> PodSample:
        members = list(members)
        known = {cid: s.cpu_seconds for cid, s in members if s.cpu_seconds is not None}
        return PodSample(ns, name, counter.total(known) if known else None,
                         sum(s.memory_bytes for _, s in members),
                         max(s.at for _, s in members))
