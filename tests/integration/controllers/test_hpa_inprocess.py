"""The HPA controller in-process against a real store + apiserver: usage flows from a
stand-in node agent through the apiserver's Metrics service, the Deployment is scaled
through the scale subresource, the HPA's status and events are written, and a scale-down
waits for the (short here) stabilization window."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest

from kemu.api import manifest
from kemu.api.v1 import api_pb2, nodeagent_pb2, nodeagent_pb2_grpc
from kemu.client.aio import AsyncClient
from kemu.client.events import EventRecorder
from kemu.client.informer import Informer
from kemu.services.controllers import hpa as hpac
from tests.conftest import Cluster
from tests.integration.apiserver.test_metrics_api import serving
from tests.integration.controllers.test_gc_process import until

pytestmark = pytest.mark.integration
NS = "default"


class StandInAgent(nodeagent_pb2_grpc.NodeAgentServicer):
    """Reports `cpu` millicores for every pod it was given (namespace, name, uid)."""

    def __init__(self) -> None:
        self.pods: list[tuple[str, str]] = []
        self.cpu = 0

    def Stats(self, request: nodeagent_pb2.StatsRequest,
              context: grpc.ServicerContext) -> nodeagent_pb2.StatsResponse:
        resp = nodeagent_pb2.StatsResponse()
        resp.node.metadata.name = "hpa-node"
        for name, uid in self.pods:
            pod = resp.pods.add()
            pod.metadata.namespace, pod.metadata.name, pod.metadata.uid = NS, name, uid
            pod.timestamp.FromSeconds(int(time.time()))
            pod.window.FromSeconds(1)
            pod.containers.add(name="c", usage={"cpu": f"{self.cpu}m", "memory": "1024Ki"})
        return resp


@pytest.fixture(scope="module")
def agent() -> Iterator[tuple[StandInAgent, int]]:
    servicer = StandInAgent()
    with serving(servicer) as port:
        yield servicer, port


@contextlib.asynccontextmanager
async def running_controller(client: AsyncClient, **options: Any
                             ) -> AsyncIterator[hpac.HPAController]:
    infs = {r: Informer(client, r) for r in hpac.INFORMERS}
    recorder = EventRecorder(client, hpac.COMPONENT)
    ctrl = hpac.HPAController(client, infs, recorder=recorder, **options)
    for inf in infs.values():
        inf.start()
    await asyncio.gather(*(inf.synced.wait() for inf in infs.values()))
    recorder.start()
    task = asyncio.create_task(ctrl.run())
    try:
        yield ctrl
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await recorder.flush()
        await recorder.stop()
        for inf in infs.values():
            await inf.stop()


async def _setup(client: AsyncClient, port: int) -> list[tuple[str, str]]:
    await client.create(manifest.from_dict({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": "hpa-node"},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}))
    await client.create(manifest.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}}))
    pods = []
    for i in range(2):
        created = await client.create(manifest.from_dict({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"web-{i}", "labels": {"app": "web"}},
            "spec": {"nodeName": "hpa-node", "containers": [
                {"name": "c", "image": "x:1", "resources": {"requests": {"cpu": "200m"}}}]}}))
        p = created.pod
        p.status.phase = "Running"
        p.status.start_time.FromSeconds(int(time.time()) - 3600)
        c = p.status.conditions.add(type="Ready", status="True")
        c.last_transition_time.FromSeconds(int(time.time()) - 3000)
        await client.update_status(api_pb2.Object(pod=p))
        pods.append((p.metadata.name, p.metadata.uid))
    return pods


async def test_hpa_scales_a_deployment_from_agent_metrics(
        cluster: Cluster, agent: tuple[StandInAgent, int]) -> None:
    servicer, port = agent
    async with AsyncClient(cluster.server, timeout=15) as client:
        servicer.pods = await _setup(client, port)
        # 150% of the 200m request against a 50% target wants 6: at most double (2 -> 4),
        # then the maximum (4 -> 5)
        servicer.cpu = 300
        await client.create(manifest.from_dict({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": "web"},
                     "minReplicas": 1, "maxReplicas": 5,
                     "metrics": [{"type": "Resource", "resource": {
                         "name": "cpu", "target": {"type": "Utilization",
                                                   "averageUtilization": 50}}}]}}))

        async def replicas(n: int) -> bool:
            return (await client.get("deployments", "web", NS)).deployment.spec.replicas == n

        async with running_controller(client, sync_period=0.3, downscale_stabilization=2.0):
            await until("scale up to max 5", lambda: replicas(5))

            async def limited() -> Any:
                # The status is written just after the scale: wait for the sync that
                # saw 5 replicas to write it.
                got = (await client.get("hpa", "web", NS)).horizontal_pod_autoscaler
                conds = {c.type: (c.status, c.reason) for c in got.status.conditions}
                return got if conds.get("ScalingLimited") == ("True", "TooManyReplicas") \
                    else None
            hpa = await until("ScalingLimited TooManyReplicas", limited)
            assert hpa.status.current_metrics[0].resource.current.average_utilization == 150

            servicer.cpu = 10  # 5%: everything below target
            started = time.monotonic()
            await until("scale down to 1", lambda: replicas(1))
            assert time.monotonic() - started >= 1.5  # the stabilization window held it

        events = (await client.list("events", NS)).items
        messages = {e.event.message for e in events if e.event.reason == "SuccessfulRescale"
                    and e.event.involved_object.kind == "HorizontalPodAutoscaler"}
        up = "reason: cpu resource utilization (percentage of request) above target"
        assert messages == {f"New size: 4; {up}", f"New size: 5; {up}",
                            "New size: 1; reason: All metrics below target"}
