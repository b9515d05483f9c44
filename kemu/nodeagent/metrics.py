"""The node agent's series: the kubelet's pod counts and start latency, kube-proxy's sync.

- `kubelet_pod_start_duration_seconds`: from the agent first seeing a pod (bound to its
  node, not yet running) to the pod's status saying Running, as the kubelet measures it;
  pods already running when the agent starts (adopted) are not counted.
- `kubelet_running_pods` and `kubelet_pods{phase}` (kemu's, as kube-state-metrics'
  kube_pod_status_phase summed over the node): read from the agent's pod cache at scrape.
- `kubeproxy_sync_proxy_rules_duration_seconds` and `..._last_timestamp_seconds`: each
  iptables-restore of the Service rules (the sync runs in a thread; prometheus_client's
  metrics take their own locks).

`serve_agent_metrics` serves them at /metrics and, as the kubelet does on a path of its
own, the resource series of `resourcemetrics` at /metrics/resource, sampled for each scrape.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from kemu.api.v1 import api_pb2
from kemu.nodeagent.resourcemetrics import ResourceMetrics
from kemu.util.metrics import CallbackCollector, MetricsEndpoint, new_registry, serve_metrics

RESOURCE_PATH = "/metrics/resource"

PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
# The kubelet's pod start buckets (seconds).
POD_START_BUCKETS = (0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300,
                     360, 480, 600, 900, 1200, 1800, 2700, 3600)
# kube-proxy's: exponential from 1 ms, factor 2, 15 buckets.
SYNC_BUCKETS = tuple(0.001 * 2 ** i for i in range(15))


class AgentMetrics:
    """One agent's registry; `on_pod` is a pod informer handler, `watch_pods` sets the
    source of the per-phase counts, `proxy_synced` times one rules sync."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else new_registry()
        self._pod_start = Histogram(
            "kubelet_pod_start_duration_seconds", "Duration in seconds from kubelet seeing a "
            "pod for the first time to the pod starting to run", buckets=POD_START_BUCKETS,
            registry=self.registry).observe
        self._sync = Histogram("kubeproxy_sync_proxy_rules_duration_seconds",
                               "SyncProxyRules latency in seconds", buckets=SYNC_BUCKETS,
                               registry=self.registry).observe
        self._synced_at = Gauge("kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                                "The last time proxy rules were successfully synced",
                                registry=self.registry).set
        self._first_seen: dict[str, float] = {}
        self._pods: Callable[[], list[api_pb2.Object]] = list
        self.registry.register(CallbackCollector(self._collect))

    def watch_pods(self, pods: Callable[[], list[api_pb2.Object]]) -> None:
        """Count the pods `pods()` returns (the agent's informer of its node's pods)."""
        self._pods = pods

    def on_pod(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        if new is None:
            if old is not None:
                self._first_seen.pop(old.pod.metadata.uid, None)
            return
        uid, phase = new.pod.metadata.uid, new.pod.status.phase
        if phase in ("", "Pending"):
            self._first_seen.setdefault(uid, time.monotonic())
            return
        since = self._first_seen.pop(uid, None)
        if since is not None and phase == "Running":
            self._pod_start(time.monotonic() - since)

    def proxy_synced(self, seconds: float, ok: bool) -> None:
        self._sync(seconds)
        if ok:
            self._synced_at(time.time())

    def _collect(self) -> list[Metric]:
        phases = Tally(o.pod.status.phase or "Pending" for o in self._pods())
        by_phase = GaugeMetricFamily("kubelet_pods", "Pods bound to this node, by phase "
                                     "(kemu's).", labels=("phase",))
        for phase in PHASES:
            by_phase.add_metric((phase,), phases.get(phase, 0))
        running = GaugeMetricFamily("kubelet_running_pods",
                                    "Number of pods that have a running pod sandbox",
                                    value=phases.get("Running", 0))
        return [by_phase, running]


async def serve_agent_metrics(listen: str, registry: CollectorRegistry,
                              resource: ResourceMetrics) -> MetricsEndpoint:
    """Serve `registry` at http://listen/metrics and `resource`, sampled for each scrape, at
    /metrics/resource (port 0: a free one). OSError with one line when it cannot bind."""

    async def sampled() -> CollectorRegistry:
        await resource.refresh()
        return resource.registry

    return await serve_metrics(listen, registry, extra={RESOURCE_PATH: sampled})
