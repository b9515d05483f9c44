"""The agent's /metrics/resource: the kubelet's resource series (names, labels, types,
values) from a stub snapshot, from the samples the Stats service takes, and over HTTP on the
agent's metrics port beside /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kemu.api.v1 import api_pb2, core_pb2, meta_pb2
from kemu.nodeagent import naming
from kemu.nodeagent.fakeruntime import FakeRuntime
from kemu.nodeagent.metrics import AgentMetrics, serve_agent_metrics
from kemu.nodeagent.resourcemetrics import (
    ContainerSample,
    PodSample,
    ResourceMetrics,
    ResourceSnapshot,
    resource_registry,
)
from kemu.nodeagent.runtime import ContainerInfo, ContainerRuntimeError
from kemu.nodeagent.stats import NodeStats

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> tuple[dict[str, str], Series]:
    """Family name -> type, and (sample name, sorted labels) -> value."""
    types: dict[str, str] = {}
    series: Series = {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            series[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return types, series


def lbl(**kv: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(kv.items()))


def test_series_names_labels_types_and_values_from_a_snapshot() -> None:
    snap = ResourceSnapshot(
        12.5, 300 << 20, 1_700_000_000.0,
        pods=[PodSample("default", "web", 3.25, 40 << 20, 1_700_000_000.0)],
        containers=[ContainerSample("default", "web", "app", 3.25, 40 << 20,
                                    1_699_999_000.0, 1_700_000_000.0)])
    text = generate_latest(resource_registry(lambda: snap)).decode()
    types, series = parse(text)
    assert types == {
        "node_cpu_usage_seconds": "counter", "node_memory_working_set_bytes": "gauge",
        "pod_cpu_usage_seconds": "counter", "pod_memory_working_set_bytes": "gauge",
        "container_cpu_usage_seconds": "counter",
        "container_memory_working_set_bytes": "gauge",
        "container_start_time_seconds": "gauge", "scrape_error": "gauge"}
    c = lbl(container="app", namespace="default", pod="web")
    assert series == {
        ("node_cpu_usage_seconds_total", ()): 12.5,
        ("node_memory_working_set_bytes", ()): 300 << 20,
        ("pod_cpu_usage_seconds_total", lbl(namespace="default", pod="web")): 3.25,
        ("pod_memory_working_set_bytes", lbl(namespace="default", pod="web")): 40 << 20,
        ("container_cpu_usage_seconds_total", c): 3.25,
        ("container_memory_working_set_bytes", c): 40 << 20,
        ("container_start_time_seconds", c): 1_699_999_000.0,
        ("scrape_error", ()): 0}
    # each sample carries the time it was taken, as the kubelet's do (milliseconds)
    assert 'container_memory_working_set_bytes{container="app",namespace="default",' \
        'pod="web"} 4.194304e+07 1700000000000' in text


def test_an_engine_error_serves_scrape_error_only() -> None:
    text = generate_latest(resource_registry(
        lambda: ResourceSnapshot(0.0, 0, 0.0, error=True))).decode()
    assert parse(text)[1] == {("scrape_error", ()): 1}


def stats_doc(cpu_total_ns: int, *, usage: int = 20 << 20) -> dict[str, Any]:
    """A `docker stats` document: 0.25 cores over its window, `cpu_total_ns` so far."""
    return {
        "read": "2026-11-22T09:00:01.500000000Z", "preread": "2026-11-22T09:00:00.500000000Z",
        "cpu_stats": {"cpu_usage": {"total_usage": cpu_total_ns},
                      "system_cpu_usage": 904_000_000_000, "online_cpus": 4},
        "precpu_stats": {"cpu_usage": {"total_usage": cpu_total_ns - 250_000_000},
                         "system_cpu_usage": 900_000_000_000, "online_cpus": 4},
        "memory_stats": {"usage": usage, "stats": {"inactive_file": 4 << 20}},
    }


class Engine:
    """Containers with one stats document each; `down` makes listing fail."""

    def __init__(self) -> None:
        self.containers: dict[str, ContainerInfo] = {}
        self.docs: dict[str, dict[str, Any]] = {}
        self.down = False

    def add(self, cid: str, pod: str, container: str, kind: str, cpu_ns: int,
            uid: str = "u1") -> None:
        labels = naming.pod_labels("n1", "default", pod, uid, container, kind)
        self.containers[cid] = ContainerInfo(id=cid, name=cid, labels=labels,
                                             state="running")
        self.docs[cid] = stats_doc(cpu_ns)

    async def list_containers(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        if self.down:
            raise ContainerRuntimeError("docker is down")
        return [c for c in self.containers.values()
                if all(c.labels.get(k) == v for k, v in labels.items())]

    async def stats(self, container_id: str) -> Mapping[str, Any]:
        return self.docs[container_id]


def pod_cache(**uids: str) -> Any:
    objs = {f"default/{name}": api_pb2.Object(pod=core_pb2.Pod(metadata=meta_pb2.ObjectMeta(
        name=name, namespace="default", uid=uid))) for name, uid in uids.items()}
    return objs.get


def resource(engine: Any, pods: Any) -> tuple[ResourceMetrics, NodeStats]:
    stats = NodeStats(engine, "n1", ttl=0.0)  # no cache: every refresh samples again
    return ResourceMetrics(stats, pods), stats


async def test_samples_are_the_stats_services_and_node_cpu_never_goes_down() -> None:
    engine = Engine()
    engine.add("s1", "web", naming.SANDBOX, naming.KIND_SANDBOX, 1_000_000_000)
    engine.add("c1", "web", "app", naming.KIND_APP, 7_000_000_000)
    engine.add("c2", "web", "sidecar", naming.KIND_APP, 2_000_000_000)
    engine.add("c3", "stale", "app", naming.KIND_APP, 5_000_000_000, uid="old")
    res, stats = resource(engine, pod_cache(web="u1", stale="new"))
    snap = await res.refresh()
    assert [(c.pod, c.container, c.cpu_seconds, c.memory_bytes) for c in snap.containers] == [
        ("web", "app", 7.0, 16 << 20), ("web", "sidecar", 2.0, 16 << 20)]
    [pod] = snap.pods
    assert (pod.pod, pod.cpu_seconds, pod.memory_bytes) == ("web", 9.0, 32 << 20)
    # the node: every running container, the sandbox and the stale pod's included
    assert (snap.node_cpu_seconds, snap.node_memory_bytes) == (15.0, 4 * (16 << 20))
    # the Metrics service reads the same samples
    rpc = await stats.collect(lambda ns, name: None)
    assert rpc.node.usage["memory"] == f"{4 * (16 << 20) // 1024}Ki"

    del engine.containers["c3"]  # the stale pod's container goes away
    engine.docs["c1"] = stats_doc(8_000_000_000)
    snap = await res.refresh()
    assert snap.node_cpu_seconds == 1 + 8 + 2 + 5.0  # c3's last reading stays in the sum
    assert snap.pods[0].cpu_seconds == 10.0 and snap.containers[0].cpu_seconds == 8.0

    engine.down = True
    assert (await res.refresh()).error


async def test_the_fake_runtime_has_zero_node_usage_and_no_pods() -> None:
    fake = FakeRuntime()
    res, _ = resource(fake, pod_cache())
    snap = await res.refresh()
    assert (snap.node_cpu_seconds, snap.node_memory_bytes, snap.pods, snap.error) == (
        0.0, 0, [], False)


async def get(port: int, path: str) -> tuple[str, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    return head.split("\r\n")[0], body


async def test_the_agent_serves_resource_series_on_their_own_path() -> None:
    engine = Engine()
    engine.add("c1", "web", "app", naming.KIND_APP, 7_000_000_000)
    res, _ = resource(engine, pod_cache(web="u1"))
    endpoint = await serve_agent_metrics("127.0.0.1:0", AgentMetrics().registry, res)
    try:
        status, body = await get(endpoint.port, "/metrics/resource")
        assert status == "HTTP/1.1 200 OK"
        series = parse(body)[1]
        assert series[("container_cpu_usage_seconds_total",
                       lbl(container="app", namespace="default", pod="web"))] == 7.0
        status, body = await get(endpoint.port, "/metrics")
        assert status == "HTTP/1.1 200 OK" and "kubelet_running_pods" in body
        assert "container_cpu_usage_seconds" not in body
        assert (await get(endpoint.port, "/metrics/nope"))[0] == "HTTP/1.1 404 Not Found"
    finally:
        await endpoint.stop()
