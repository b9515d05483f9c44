"""The node lifecycle controller in-process against a real store + apiserver, with the
test playing the node agent (a Node, its Lease renewed, pods it "runs"): when the lease
stops the node goes Unknown and tainted, its pods not-ready and then evicted (a
forever-tolerating pod stays), events are recorded; when the agent returns the taints go."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kemu.api import manifest
from kemu.api.v1 import api_pb2
from kemu.client.aio import AsyncClient
from kemu.client.errors import NotFound
from kemu.services.controllers import nodelifecycle as nlc
from kemu.services.controllers.ds_nodes import UNREACHABLE
from tests.conftest import Cluster
from tests.integration.controllers.test_gc_process import Runnable, running, until

pytestmark = pytest.mark.integration
GRACE, EVICT = 1.5, 2


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(cluster.server, timeout=10) as c:
        yield c


def running_nlc(server: str) -> contextlib.AbstractAsyncContextManager[Runnable]:
    return running(server, nlc.INFORMERS, lambda c, i: nlc.NodeLifecycleController(
        c, i, node_monitor_grace_period=GRACE, pod_eviction_timeout=EVICT,
        node_monitor_period=0.5))


class FakeAgent:
    """What a node agent writes: its Node with Ready, its Lease, renewed while on."""

    def __init__(self, api: AsyncClient, name: str) -> None:
        self.api, self.name = api, name
        self._task: asyncio.Task[None] | None = None

    async def register(self) -> None:
        await self.api.create(manifest.from_dict({"apiVersion": "v1", "kind": "Node",
                                                  "metadata": {"name": self.name}}))
        await self.post_ready()
        await self.api.create(manifest.from_dict({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.name, "namespace": nlc.LEASE_NAMESPACE},
            "spec": {"holderIdentity": self.name, "leaseDurationSeconds": 40}}))
        await self.renew()

    async def post_ready(self) -> None:
        obj = await self.api.get("nodes", self.name)
        del obj.node.status.conditions[:]
        c = obj.node.status.conditions.add(type="Ready", status="True", reason="KubeletReady")
        c.last_heartbeat_time.GetCurrentTime()
        c.last_transition_time.GetCurrentTime()
        obj.node.metadata.resource_version = ""
        await self.api.update_status(obj)

    async def renew(self) -> None:
        obj = await self.api.get("leases", self.name, nlc.LEASE_NAMESPACE)
        obj.lease.spec.renew_time.GetCurrentTime()
        obj.lease.metadata.resource_version = ""
        await self.api.update(obj)

    def start(self) -> None:
        async def loop() -> None:
            while True:
                await self.renew()
                await asyncio.sleep(0.2)
        self._task = asyncio.create_task(loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_pod(self, ns: str, name: str, tolerate: dict[str, Any] | None = None
                      ) -> None:
        spec: dict[str, Any] = {"nodeName": self.name,
                                "containers": [{"name": "c", "image": "x"}]}
        if tolerate is not None:
            spec["tolerations"] = [{"key": UNREACHABLE, "operator": "Exists",
                                    "effect": "NoExecute", **tolerate}]
        obj = await self.api.create(manifest.from_dict({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": spec}))
        obj.pod.status.phase = "Running"
        obj.pod.status.conditions.add(type="Ready", status="True")
        await self.api.update_status(obj)


async def node(api: AsyncClient, name: str) -> api_pb2.Object:
    return await api.get("nodes", name)


def ready_of(obj: api_pb2.Object) -> str:
    return next((c.status for c in obj.node.status.conditions if c.type == "Ready"), "")


async def reasons(api: AsyncClient, ns: str) -> set[str]:
    return {(e.event.reason) for e in (await api.list("events", ns)).items}


async def test_unreachable_node_is_tainted_drained_and_recovers(
        cluster: Cluster, api: AsyncClient) -> None:
    ns = f"nlc-{uuid.uuid4().hex[:8]}"
    await api.create(manifest.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": ns}}))
    name = f"node-{uuid.uuid4().hex[:6]}"
    agent = FakeAgent(api, name)
    await agent.register()
    peer = FakeAgent(api, f"{name}-peer")  # a healthy node: not a whole-cluster outage
    await peer.register()
    peer.start()
    await agent.run_pod(ns, "plain")
    await agent.run_pod(ns, "stays", {})  # tolerates forever: no tolerationSeconds
    agent.start()
    try:
        async with running_nlc(cluster.server):
            await asyncio.sleep(GRACE * 2)  # renewing: nothing happens
            assert ready_of(await node(api, name)) == "True"
            assert not (await node(api, name)).node.spec.taints

            await agent.stop()  # the agent falls silent

            async def tainted() -> bool:
                n = await node(api, name)
                return ready_of(n) == "Unknown" and \
                    {(t.key, t.effect) for t in n.node.spec.taints} == {
                        (UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")}
            await until("the node Unknown and tainted", tainted)
            n = await node(api, name)
            ready = next(c for c in n.node.status.conditions if c.type == "Ready")
            assert (ready.reason, ready.message) == ("NodeStatusUnknown",
                                                     "Kubelet stopped posting node status.")

            async def pods_not_ready() -> bool:
                for p in (await api.list("pods", ns)).items:
                    if [c.status for c in p.pod.status.conditions if c.type == "Ready"] \
                            != ["False"]:
                        return False
                return True
            await until("the pods not ready", pods_not_ready)

            async def evicted() -> bool:
                p = await api.get("pods", "plain", ns)
                return p.pod.metadata.HasField("deletion_timestamp")
            await until("the plain pod evicted", evicted, timeout=EVICT + 10)
            stays = await api.get("pods", "stays", ns)
            assert not stays.pod.metadata.HasField("deletion_timestamp")

            async def events_recorded() -> bool:
                return "NodeNotReady" in await reasons(api, "default") and \
                    {"NodeNotReady", "TaintManagerEviction"} <= await reasons(api, ns)
            await until("NodeNotReady and TaintManagerEviction events", events_recorded)

            # The agent is back: lease renewed, Ready written by the agent itself.
            agent.start()
            await agent.post_ready()

            async def recovered() -> bool:
                n = await node(api, name)
                return ready_of(n) == "True" and not n.node.spec.taints
            await until("the taints removed", recovered)
    finally:
        for a in (agent, peer):
            await a.stop()
            with contextlib.suppress(NotFound):
                await api.delete("nodes", a.name)
