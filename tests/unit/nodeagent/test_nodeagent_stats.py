"""Container usage from `docker stats` documents: cpu cores as `docker stats` computes them,
the memory working set, the per-container cache, and the node's Stats answer."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from kemu.api.v1 import meta_pb2
from kemu.nodeagent import naming
from kemu.nodeagent.runtime import ContainerInfo, ContainerNotFound
from kemu.nodeagent.stats import (
    NodeStats,
    StatsCache,
    cpu_cores,
    memory_quantity,
    usage_of,
    working_set,
)


def doc(cpu_delta: int, system_delta: int, *, online: int = 4, usage: int = 20 << 20,
        inactive: int = 4 << 20) -> dict[str, Any]:
    """A stats document of the shape dockerd returns (cgroup v2); cores used are
    cpu_delta / system_delta * online."""
    return {
        "read": "2026-11-22T09:00:01.500000000Z", "preread": "2026-11-22T09:00:00.500000000Z",
        "cpu_stats": {"cpu_usage": {"total_usage": 5_000_000_000 + cpu_delta},
                      "system_cpu_usage": 900_000_000_000 + system_delta,
                      "online_cpus": online},
        "precpu_stats": {"cpu_usage": {"total_usage": 5_000_000_000},
                         "system_cpu_usage": 900_000_000_000, "online_cpus": online},
        "memory_stats": {"usage": usage, "stats": {"inactive_file": inactive}},
    }


@pytest.mark.parametrize(("cpu_delta", "system_delta", "online", "cores"), [
    pytest.param(1_000_000_000, 4_000_000_000, 4, 1.0, id="one-busy-core-of-four"),
    pytest.param(250_000_000, 4_000_000_000, 4, 0.25, id="quarter-core"),
    pytest.param(0, 4_000_000_000, 4, 0.0, id="idle"),
])
def test_cpu_cores_as_docker_stats(cpu_delta: int, system_delta: int, online: int,
                                   cores: float) -> None:
    assert cpu_cores(doc(cpu_delta, system_delta, online=online)) == pytest.approx(cores)


def test_no_previous_reading_means_no_rate() -> None:
    first = doc(1, 1)
    first["precpu_stats"] = {"cpu_usage": {"total_usage": 0}}
    assert cpu_cores(first) is None and usage_of(first, now=0.0) is None


def test_cgroup_v1_counts_percpu_entries_and_total_inactive_file() -> None:
    d = doc(500_000_000, 2_000_000_000)
    del d["cpu_stats"]["online_cpus"]
    d["cpu_stats"]["cpu_usage"]["percpu_usage"] = [1, 2]
    d["memory_stats"] = {"usage": 10 << 20, "stats": {"total_inactive_file": 2 << 20}}
    assert cpu_cores(d) == pytest.approx(0.5)
    assert working_set(d) == 8 << 20


def test_usage_window_and_quantities() -> None:
    u = usage_of(doc(1_000_000_000, 4_000_000_000), now=0.0)
    assert u is not None
    assert (u.cpu_nanocores, u.memory_bytes) == (1_000_000_000, 16 << 20)
    assert u.window == pytest.approx(1.0)
    assert memory_quantity(16 << 20) == "16384Ki" and memory_quantity(1000) == "1000"


class FakeStatsRuntime:
    """Containers and one stats document each; counts the samples taken."""

    def __init__(self) -> None:
        self.containers: list[ContainerInfo] = []
        self.docs: dict[str, dict[str, Any]] = {}
        self.samples: dict[str, int] = {}

    def add(self, cid: str, pod: str, container: str, kind: str, cpu: int,
            uid: str = "u1") -> None:
        labels = naming.pod_labels("n1", "default", pod, uid, container, kind)
        self.containers.append(ContainerInfo(id=cid, name=cid, labels=labels, state="running"))
        self.docs[cid] = doc(cpu, 4_000_000_000)

    async def list_containers(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        return [c for c in self.containers
                if all(c.labels.get(k) == v for k, v in labels.items())]

    async def stats(self, container_id: str) -> Mapping[str, Any]:
        self.samples[container_id] = self.samples.get(container_id, 0) + 1
        await asyncio.sleep(0.01)
        if container_id not in self.docs:
            raise ContainerNotFound(container_id)
        return self.docs[container_id]


async def test_cache_shares_samples_within_its_ttl() -> None:
    rt = FakeStatsRuntime()
    rt.add("c1", "web", "web", naming.KIND_APP, 100_000_000)
    now = [0.0]
    cache = StatsCache(rt, ttl=5.0, clock=lambda: now[0])
    first = await asyncio.gather(*(cache.usage("c1") for _ in range(5)))
    assert rt.samples["c1"] == 1 and len({u.cpu_nanocores for u in first if u}) == 1
    now[0] = 4.0
    await cache.usage("c1")
    assert rt.samples["c1"] == 1
    now[0] = 6.0
    await cache.usage("c1")
    assert rt.samples["c1"] == 2
    assert await cache.usage("gone") is None


async def test_node_stats_group_app_containers_by_pod_and_sum_the_node() -> None:
    rt = FakeStatsRuntime()
    rt.add("s1", "web", naming.SANDBOX, naming.KIND_SANDBOX, 1_000_000)
    rt.add("c1", "web", "web", naming.KIND_APP, 400_000_000)
    rt.add("c2", "web", "sidecar", naming.KIND_APP, 40_000_000)
    rt.add("c3", "stale", "app", naming.KIND_APP, 40_000_000, uid="old")
    pods = {("default", "web"): meta_pb2.ObjectMeta(name="web", namespace="default", uid="u1",
                                                    labels={"app": "web"}),
            ("default", "stale"): meta_pb2.ObjectMeta(name="stale", namespace="default",
                                                      uid="new")}
    resp = await NodeStats(rt, "n1").collect(lambda ns, name: pods.get((ns, name)))
    [pod] = resp.pods
    assert (pod.metadata.name, dict(pod.metadata.labels)) == ("web", {"app": "web"})
    assert {c.name: c.usage["cpu"] for c in pod.containers} == {
        "web": "400000000n", "sidecar": "40000000n"}
    assert pod.containers[0].usage["memory"] == "16384Ki"
    # the node: every container it runs, the sandbox and the stale pod's container included
    assert resp.node.metadata.name == "n1"
    assert resp.node.usage["cpu"] == f"{1_000_000 + 400_000_000 + 80_000_000}n"
