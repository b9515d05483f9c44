"""The apiserver's Metrics service asks the node agents (stand-ins here; the agent's e2e test
drives a real one) and answers for the pods and nodes selected, leaving out dead agents."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from kemu.api import manifest
from kemu.api.v1 import metrics_pb2, metrics_pb2_grpc, nodeagent_pb2, nodeagent_pb2_grpc
from kemu.client import Client
from tests.conftest import Cluster
from tests.support import processes

pytestmark = pytest.mark.integration


class StandInAgent(nodeagent_pb2_grpc.NodeAgentServicer):
    """Reports usage for the pods it is told about; `uid` must match the stored pod."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.pods: list[tuple[str, str, str, str]] = []  # namespace, name, uid, cpu
        self.calls = 0

    def Stats(self, request: nodeagent_pb2.StatsRequest,
              context: grpc.ServicerContext) -> nodeagent_pb2.StatsResponse:
        self.calls += 1
        resp = nodeagent_pb2.StatsResponse()
        resp.node.metadata.name = self.node
        resp.node.usage.update({"cpu": "250000000n", "memory": "102400Ki"})
        for ns, name, uid, cpu in self.pods:
            pod = resp.pods.add()
            pod.metadata.namespace, pod.metadata.name, pod.metadata.uid = ns, name, uid
            pod.containers.add(name="c", usage={"cpu": cpu, "memory": "2048Ki"})
        return resp


@contextlib.contextmanager
def serving(servicer: nodeagent_pb2_grpc.NodeAgentServicer) -> Iterator[int]:
    """A NodeAgent servicer on a free loopback port (yielded) until the block ends."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    nodeagent_pb2_grpc.add_NodeAgentServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(0)


@pytest.fixture(scope="module")
def agents() -> Iterator[dict[str, tuple[StandInAgent, int]]]:
    one, two = StandInAgent("m-node-1"), StandInAgent("m-node-2")
    with serving(one) as port1, serving(two) as port2:
        yield {"m-node-1": (one, port1), "m-node-2": (two, port2)}


def _node(client: Client, name: str, port: int) -> None:
    client.create(manifest.from_dict({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"zone": name}},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
                   "allocatable": {"cpu": "2", "memory": "1Gi"}}}))


def _pod(client: Client, name: str, node: str, labels: dict[str, str]) -> str:
    obj = client.create(manifest.from_dict({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x:1"}]}}))
    return str(obj.pod.metadata.uid)


def test_pod_and_node_metrics_fan_out_to_the_agents(
        cluster: Cluster, agents: dict[str, tuple[StandInAgent, int]]) -> None:
    with Client(cluster.server) as client, grpc.insecure_channel(cluster.server) as channel:
        metrics = metrics_pb2_grpc.MetricsStub(channel)
        for node, (_, port) in agents.items():
            _node(client, node, port)
        _node(client, "m-dead", processes.free_port())
        web1 = _pod(client, "web-1", "m-node-1", {"app": "web"})
        web2 = _pod(client, "web-2", "m-node-2", {"app": "web"})
        db = _pod(client, "db", "m-node-2", {"app": "db"})
        _pod(client, "lost", "m-dead", {"app": "web"})
        agents["m-node-1"][0].pods = [("default", "web-1", web1, "100000000n")]
        agents["m-node-2"][0].pods = [("default", "web-2", web2, "300000000n"),
                                      ("default", "db", db, "5000000n"),
                                      ("default", "old", "not-a-stored-uid", "1n")]

        resp = metrics.ListPodMetrics(metrics_pb2.ListPodMetricsRequest(
            namespace="default", label_selector="app=web"), timeout=30)
        assert [(p.metadata.name, p.containers[0].usage["cpu"]) for p in resp.items] == [
            ("web-1", "100000000n"), ("web-2", "300000000n")]

        everything = metrics.ListPodMetrics(metrics_pb2.ListPodMetricsRequest(), timeout=30)
        assert [p.metadata.name for p in everything.items] == ["db", "web-1", "web-2"]

        nodes = metrics.ListNodeMetrics(metrics_pb2.ListNodeMetricsRequest(), timeout=30)
        assert [(n.metadata.name, n.usage["cpu"], n.metadata.labels["zone"])
                for n in nodes.items] == [("m-node-1", "250000000n", "m-node-1"),
                                          ("m-node-2", "250000000n", "m-node-2")]
        one = metrics.ListNodeMetrics(metrics_pb2.ListNodeMetricsRequest(
            label_selector="zone=m-node-2"), timeout=30)
        assert [n.metadata.name for n in one.items] == ["m-node-2"]

        with pytest.raises(grpc.RpcError) as err:
            metrics.ListPodMetrics(metrics_pb2.ListPodMetricsRequest(label_selector="a in b"),
                                   timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
