"""The node agent's own code under `--authorization-mode Node,RBAC`, against a real apiserver
with a token file: with its node's token the agent registers its Node and writes its status,
renews its Lease, records events, reads the Secret its pod uses and writes that pod's status;
as another node it can do none of that."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kemu.api import manifest
from kemu.api.v1 import api_pb2
from kemu.client import Client
from kemu.client.aio import AsyncClient
from kemu.client.errors import Forbidden
from kemu.client.events import EventRecorder
from kemu.nodeagent.clock import FakeClock
from kemu.nodeagent.config import AgentConfig
from kemu.nodeagent.lease import NodeLease
from kemu.nodeagent.node import NodeStatus
from tests.support import processes
from tests.unit.nodeagent.fakes import FakeRuntime

pytestmark = pytest.mark.integration
TOKENS = 'admin,root,1,"system:masters"\nn1,system:node:n1,2,"system:nodes"\n'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("nodeauthz")
    (tmp / "tokens.csv").write_text(TOKENS)
    store = processes.kemu_store(tmp)
    api = processes.kemu_apiserver(tmp, store.address, extra=(
        "--insecure", "--token-file", str(tmp / "tokens.csv"),
        "--authorization-mode", "Node,RBAC"))
    with processes.running(store, api):
        yield api.address


def _config(tmp: Path, name: str) -> AgentConfig:
    return AgentConfig(apiserver="unused", node_name=name, node_ip="192.0.2.4", port=10555,
                       data_dir=tmp)


async def test_agent_works_as_its_node_and_only_for_it(server: str, tmp_path: Path) -> None:
    clock = FakeClock()
    agent = AsyncClient(server, token="n1", read_retry_seconds=0)
    try:
        node = NodeStatus(_config(tmp_path, "n1"), agent, FakeRuntime(clock), clock)
        await node.register()
        await node.write_status()
        lease = NodeLease(agent, "n1", clock)
        await lease.renew()
        await lease.renew()
        with pytest.raises(Forbidden, match='node "n1" is not allowed to modify node "n2"'):
            await NodeStatus(_config(tmp_path, "n2"), agent, FakeRuntime(clock),
                             clock).register()
        with pytest.raises(Forbidden, match="can only access node lease with the same name"):
            await NodeLease(agent, "n2", clock).renew()

        with Client(server, token="admin") as admin:
            for name in ("used", "unused"):
                admin.create(manifest.from_dict({"apiVersion": "v1", "kind": "Secret",
                                                 "metadata": {"name": name},
                                                 "stringData": {"k": "v"}}))
            pod = admin.create(manifest.from_dict({
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}],
                         "volumes": [{"name": "s", "secret": {"secretName": "used"}}]}}))
            admin.create(manifest.from_dict({
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "elsewhere"},
                "spec": {"nodeName": "n2", "containers": [{"name": "c", "image": "x"}]}}))
        secret = await agent.get("secrets", "used", "default")
        assert secret.secret.metadata.name == "used"
        with pytest.raises(Forbidden, match="no relationship found between node 'n1'"):
            await agent.get("secrets", "unused", "default")
        pod.pod.status.phase = "Running"
        await agent.update_status(pod)
        other = await agent.get("pods", "elsewhere", "default")
        with pytest.raises(Forbidden, match=r"can only update pod status for pods with "
                                            r"spec\.nodeName set to itself"):
            await agent.update_status(other)

        recorder = EventRecorder(agent, "kubelet", instance="n1", host="n1")
        recorder.start()
        recorder.event(pod.pod, "Normal", "Started", "Started container c")
        await recorder.flush()
        await recorder.stop()
        with Client(server, token="admin") as admin:
            events = admin.list("events", "default").items
        assert [e.event.reason for e in events] == ["Started"]
        with pytest.raises(Forbidden):  # a node writes events but does not read them
            await agent.list("events", "default")
        with pytest.raises(Forbidden):
            await agent.create(api_pb2.Object(config_map=manifest.from_dict({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "x", "namespace": "default"}}).config_map))
    finally:
        await agent.close()
