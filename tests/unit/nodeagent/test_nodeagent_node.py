"""Node status (capacity, addresses, conditions following the runtime) and the Lease."""

from __future__ import annotations

from pathlib import Path

from kemu.api.v1 import api_pb2
from kemu.client.errors import NotFound
from kemu.nodeagent.clock import FakeClock
from kemu.nodeagent.config import AgentConfig
from kemu.nodeagent.lease import NodeLease
from kemu.nodeagent.node import NodeStatus, node_labels
from kemu.nodeagent.runtime import RuntimeUnavailable


class Runtime:
    def __init__(self) -> None:
        self.down = False

    async def ping(self) -> None:
        if self.down:
            raise RuntimeUnavailable("Docker at unix:///x does not answer")

    async def version(self) -> str:
        return "20.10"


def config(tmp: Path) -> AgentConfig:
    return AgentConfig(apiserver="a:1", node_name="n1", node_ip="192.0.2.4", port=10555,
                       data_dir=tmp, labels={"node-role.kubernetes.io/worker": ""})


def test_labels_include_hostname_os_arch_and_extra(tmp_path: Path) -> None:
    labels = node_labels(config(tmp_path))
    assert labels["kubernetes.io/hostname"] == "n1"
    assert labels["kubernetes.io/os"] == "linux"
    assert labels["kubernetes.io/arch"]
    assert labels["node-role.kubernetes.io/worker"] == ""


async def test_status_and_ready_following_the_runtime(tmp_path: Path) -> None:
    clock = FakeClock()
    rt = Runtime()
    ns = NodeStatus(config(tmp_path), None, rt, clock)  # type: ignore[arg-type]
    st = ns.build_status()
    assert {"cpu", "memory", "pods"} <= set(st.capacity) and st.capacity["pods"] == "110"
    assert dict(st.allocatable) == dict(st.capacity)
    assert [(a.type, a.address) for a in st.addresses] == [("InternalIP", "192.0.2.4"),
                                                           ("Hostname", "n1")]
    assert st.daemon_endpoints.kubelet_endpoint.port == 10555
    ready = next(c for c in st.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("True", "KubeletReady")
    first_transition = ready.last_transition_time
    rt.down = True
    assert await ns._check_runtime()  # changed: written at once by the loop
    clock.advance(5)
    ready = next(c for c in ns.build_status().conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "KubeletNotReady")
    assert ready.message.startswith("container runtime is down: Docker at")
    assert ready.last_transition_time != first_transition
    assert not await ns._check_runtime()  # still down: no change
    rt.down = False
    assert await ns._check_runtime()
    conds = {c.type: c.status for c in ns.build_status().conditions}
    assert conds == {"Ready": "True", "MemoryPressure": "False", "DiskPressure": "False",
                     "PIDPressure": "False"}


class LeaseAPI:
    def __init__(self) -> None:
        self.obj: api_pb2.Object | None = None
        self.writes = 0

    async def get(self, resource: str, name: str, namespace: str = "") -> api_pb2.Object:
        if self.obj is None:
            raise NotFound("leases not found")
        return self.obj

    async def create(self, obj: api_pb2.Object) -> api_pb2.Object:
        self.obj = obj
        self.writes += 1
        return obj

    async def update(self, obj: api_pb2.Object) -> api_pb2.Object:
        self.obj = obj
        self.writes += 1
        return obj


async def test_lease_created_then_renewed() -> None:
    api = LeaseAPI()
    clock = FakeClock()
    lease = NodeLease(api, "n1", clock)  # type: ignore[arg-type]
    await lease.renew()
    assert api.obj is not None
    spec = api.obj.lease.spec
    assert (api.obj.lease.metadata.namespace, spec.holder_identity,
            spec.lease_duration_seconds) == ("kube-node-lease", "n1", 40)
    first = spec.renew_time.ToNanoseconds()
    clock.advance(4)
    await lease.renew()
    assert api.obj.lease.spec.renew_time.ToNanoseconds() == first + 4 * 10**9
    assert api.writes == 2
