"""Resource usage of this node's pods, read from the container engine, as the kubelet's
resource metrics endpoint serves metrics-server.

CPU is a rate, so one reading is not enough: `docker stats --no-stream` samples a
container's cgroup twice about a second apart (cpu_stats and precpu_stats) and we compute
cores used exactly as the `docker stats` command does: the container's share of the
host's CPU time over that interval, times the number of online CPUs. Memory is the
working set (usage minus inactive file pages), which is what the kubelet reports and what
`kubectl top` shows.

Every sample costs the engine about a second of wall time, so samples are cached per
container for a few seconds and concurrent askers share one in-flight sample: `kemuctl
top`, every HPA and the apiserver's fan-out can call as often as they like.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from kemu.api.v1 import metrics_pb2, nodeagent_pb2
from kemu.nodeagent import naming
from kemu.nodeagent.runtime import ContainerInfo, ContainerRuntimeError

log = logging.getLogger(__name__)

API_VERSION = "metrics.k8s.io/v1beta1"
DEFAULT_TTL = 5.0


@dataclass(frozen=True)
class Usage:
    """One container's usage: cpu in nanocores over `window` seconds, memory working set
    in bytes, sampled at `at` (unix seconds), and the CPU nanoseconds it has used since it
    started (the engine's cumulative counter, None when the document has none)."""

    cpu_nanocores: int
    memory_bytes: int
    at: float
    window: float
    cpu_usage_ns: int | None = None


class StatsRuntime(Protocol):
    """What sampling needs from the runtime (DockerRuntime has it; tests give a fake)."""

    async def list_containers(self, labels: Mapping[str, str]) -> list[ContainerInfo]: ...

    async def stats(self, container_id: str) -> Mapping[str, Any]: ...


def _docker_time(text: Any) -> float | None:
    """Docker's RFC 3339 nanosecond time as unix seconds; None when unset or unreadable."""
    if not isinstance(text, str) or not text or text.startswith("0001-01-01"):
        return None
    base, _, frac = text.rstrip("Z").partition(".")
    try:
        dt = datetime.strptime(base[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    digits = "".join(ch for ch in frac if ch.isdigit())[:9]
    return dt.timestamp() + (int(digits) / 10 ** len(digits) if digits else 0.0)


def _total_usage(stats: Mapping[str, Any]) -> int | None:
    """`cpu_usage.total_usage` of a `cpu_stats` or `precpu_stats` part: the CPU
    nanoseconds the container has used since it started."""
    total = (stats.get("cpu_usage") or {}).get("total_usage")
    return int(total) if total is not None else None


def cpu_cores(doc: Mapping[str, Any]) -> float | None:
    """Cores used between precpu_stats and cpu_stats, as `docker stats` computes its CPU %
    (divided by 100); None when the engine has no previous reading yet."""
    cpu = doc.get("cpu_stats") or {}
    pre = doc.get("precpu_stats") or {}
    total, pre_total = _total_usage(cpu), _total_usage(pre)
    system, pre_system = cpu.get("system_cpu_usage"), pre.get("system_cpu_usage")
    if total is None or pre_total is None or system is None or pre_system is None:
        return None
    cpu_delta, system_delta = total - pre_total, int(system) - int(pre_system)
    if system_delta <= 0 or cpu_delta < 0:
        return None
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage")
                                           or ()) or 1
    return float(cpu_delta) / float(system_delta) * float(online)


def working_set(doc: Mapping[str, Any]) -> int:
    """Memory usage minus inactive file pages (cgroup v2 `inactive_file`, v1
    `total_inactive_file`), never below zero."""
    mem = doc.get("memory_stats") or {}
    usage = int(mem.get("usage") or 0)
    detail = mem.get("stats") or {}
    inactive = detail.get("inactive_file", detail.get("total_inactive_file", 0)) or 0
    return max(usage - int(inactive), 0)


def usage_of(doc: Mapping[str, Any], *, now: float) -> Usage | None:
    """A stats document as Usage; None when it carries no cpu rate yet."""
    cores = cpu_cores(doc)
    if cores is None:
        return None
    read, preread = _docker_time(doc.get("read")), _docker_time(doc.get("preread"))
    at = read if read is not None else now
    window = at - preread if preread is not None and at > preread else 1.0
    return Usage(round(cores * 1e9), working_set(doc), at, window,
                 _total_usage(doc.get("cpu_stats") or {}))


class StatsCache:
    """Per-container samples, reused for `ttl` seconds; one sample in flight per container."""

    def __init__(self, runtime: StatsRuntime, *, ttl: float = DEFAULT_TTL,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.runtime = runtime
        self.ttl = ttl
        self.clock = clock
        self.wall = wall
        self._cached: dict[str, tuple[float, Usage | None]] = {}
        self._inflight: dict[str, asyncio.Future[Usage | None]] = {}

    async def usage(self, container_id: str) -> Usage | None:
        """The container's usage; None when it has none yet or is gone."""
        hit = self._cached.get(container_id)
        if hit is not None and self.clock() - hit[0] < self.ttl:
            return hit[1]
        pending = self._inflight.get(container_id)
        if pending is None:
            pending = self._inflight[container_id] = asyncio.ensure_future(
                self._sample(container_id))
            pending.add_done_callback(lambda _: self._inflight.pop(container_id, None))
        return await asyncio.shield(pending)

    async def _sample(self, container_id: str) -> Usage | None:
        try:
            doc = await self.runtime.stats(container_id)
        except ContainerRuntimeError as e:
            log.debug("no stats for container=%s: %s", container_id[:12], e)
            result = None
        else:
            result = usage_of(doc, now=self.wall())
        self._cached[container_id] = (self.clock(), result)
        return result

    def prune(self, live: Iterable[str]) -> None:
        """Forget containers that no longer run."""
        keep = set(live)
        for cid in [c for c in self._cached if c not in keep]:
            del self._cached[cid]


def cpu_quantity(nanocores: int) -> str:
    """Nanocores as metrics-server writes them: `12345678n`."""
    return f"{nanocores}n"


def memory_quantity(n_bytes: int) -> str:
    """Bytes as metrics-server writes them: `12288Ki` when whole kibibytes."""
    return f"{n_bytes // 1024}Ki" if n_bytes % 1024 == 0 else str(n_bytes)


def _usage_map(cpu: int, memory: int) -> dict[str, str]:
    return {"cpu": cpu_quantity(cpu), "memory": memory_quantity(memory)}


def _stamp(msg: Any, at: float, window: float) -> None:
    msg.timestamp.FromNanoseconds(int(at * 1e9))
    msg.window.FromNanoseconds(int(window * 1e9))


class NodeStats:
    """Samples every running container of one node and answers NodeAgent.Stats."""

    def __init__(self, runtime: StatsRuntime, node: str, *, ttl: float = DEFAULT_TTL,
                 cache: StatsCache | None = None) -> None:
        self.runtime = runtime
        self.node = node
        self.cache = cache or StatsCache(runtime, ttl=ttl)

    async def sample(self) -> list[tuple[ContainerInfo, Usage]]:
        """Every running container of the node with its usage (from the cache within its
        TTL), those without usage yet left out; the cache forgets containers gone. Both the
        Stats RPC and the agent's /metrics/resource read the node through this."""
        running = [c for c in await self.runtime.list_containers({naming.NODE: self.node})
                   if c.running]
        self.cache.prune(c.id for c in running)
        usages = await asyncio.gather(*(self.cache.usage(c.id) for c in running))
        return [(c, u) for c, u in zip(running, usages, strict=True) if u is not None]

    async def collect(self, pod_meta: Callable[[str, str], Any | None]
                      ) -> nodeagent_pb2.StatsResponse:
        """Usage of the node and its pods. `pod_meta(namespace, name)` gives the pod's
        ObjectMeta from the agent's cache (None: the pod is gone, leave it out)."""
        resp = nodeagent_pb2.StatsResponse()
        node_cpu = node_mem = 0
        node_at, node_window = self.cache.wall(), 0.0
        pods: dict[tuple[str, str], metrics_pb2.PodMetrics] = {}
        for info, usage in await self.sample():
            node_cpu += usage.cpu_nanocores
            node_mem += usage.memory_bytes
            node_window = max(node_window, usage.window)
            labels = info.labels
            if labels.get(naming.KIND) != naming.KIND_APP:
                continue  # the sandbox and init containers count for the node only
            key = (labels.get(naming.NAMESPACE, ""), labels.get(naming.POD, ""))
            meta = pod_meta(*key)
            if meta is None or meta.uid != labels.get(naming.UID):
                continue
            pod = pods.get(key)
            if pod is None:
                pod = pods[key] = metrics_pb2.PodMetrics(api_version=API_VERSION,
                                                         kind="PodMetrics")
                pod.metadata.name, pod.metadata.namespace = meta.name, meta.namespace
                pod.metadata.uid = meta.uid
                pod.metadata.labels.update(meta.labels)
                _stamp(pod, usage.at, usage.window)
            pod.containers.add(name=labels.get(naming.CONTAINER, ""),
                               usage=_usage_map(usage.cpu_nanocores, usage.memory_bytes))
        resp.pods.extend(pods[k] for k in sorted(pods))
        resp.node.api_version, resp.node.kind = API_VERSION, "NodeMetrics"
        resp.node.metadata.name = self.node
        resp.node.usage.update(_usage_map(node_cpu, node_mem))
        _stamp(resp.node, node_at, node_window or 1.0)
        return resp
