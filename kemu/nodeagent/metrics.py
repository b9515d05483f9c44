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
own, the resource series of `resourcemetrics` at /metrics/resource. (The shared endpoint of
kemu.util.metrics serves one registry, with no await before encoding; this one samples
first, so the agent has its own small server on the same HTTP helpers.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter as Tally
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

from kemu.api.v1 import api_pb2
from kemu.nodeagent.resourcemetrics import ResourceMetrics
from kemu.util.httphead import read_request, respond
from kemu.util.listen import check_bindable
from kemu.util.metrics import CallbackCollector, MetricsEndpoint, new_registry

log = logging.getLogger(__name__)
RESOURCE_PATH = "/metrics/resource"
_MAX_HEAD = 16 * 1024

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


async def _answer(registry: CollectorRegistry, resource: ResourceMetrics,
                  reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One HTTP/1.x request, then close: GET /metrics, /metrics/resource (sampled now, or
    from the samples' cache), /healthz; else 404."""
    try:
        request = await read_request(reader)
        if request is None:
            return
        head_only = request.method == "HEAD"
        encoder, ctype = choose_encoder(request.headers.get("accept", ""))
        if request.method not in ("GET", "HEAD"):
            await respond(writer, 405, b"GET only\n", content_type="text/plain")
        elif request.path in ("/metrics", "/"):
            await respond(writer, 200, encoder(registry), content_type=ctype,
                          head_only=head_only)
        elif request.path == RESOURCE_PATH:
            await resource.refresh()
            await respond(writer, 200, encoder(resource.registry), content_type=ctype,
                          head_only=head_only)
        elif request.path in ("/healthz", "/livez"):
            await respond(writer, 200, b"ok\n", content_type="text/plain",
                          head_only=head_only)
        else:
            await respond(writer, 404, b"not found: try /metrics or /metrics/resource\n",
                          content_type="text/plain", head_only=head_only)
    except (ConnectionError, UnicodeError):
        pass
    except Exception:
        log.exception("metrics: scrape failed")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def serve_agent_metrics(listen: str, registry: CollectorRegistry,
                              resource: ResourceMetrics) -> MetricsEndpoint:
    """Serve `registry` at http://listen/metrics and `resource` at /metrics/resource on
    the running loop (port 0: a free one). OSError with one line when it cannot bind."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    check_bindable(listen)
    try:
        server = await asyncio.start_server(
            lambda r, w: _answer(registry, resource, r, w), host, int(port),
            limit=_MAX_HEAD, reuse_address=True)
    except OSError as e:
        raise OSError(f"cannot listen on {listen}: {e.strerror or e}") from None
    endpoint = MetricsEndpoint(server, registry)
    log.info("metrics: serving http://%s:%d/metrics and %s", host, endpoint.port,
             RESOURCE_PATH)
    return endpoint
