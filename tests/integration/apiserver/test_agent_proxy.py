"""The apiserver proxies logs and exec to the pod's node agent (a stand-in agent here;
the real agent's tests drive the same path end to end)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from kemu.api import manifest
from kemu.api.v1 import api_pb2, nodeagent_pb2_grpc
from kemu.client import Client, NotFound
from kemu.client.errors import ClientError, Forbidden, Unavailable
from tests.conftest import Cluster
from tests.support import processes

pytestmark = pytest.mark.integration


class StandInAgent(nodeagent_pb2_grpc.NodeAgentServicer):
    """Answers logs with the request echoed and exec by upper-casing stdin."""

    def Logs(self, request: api_pb2.LogsRequest,
             context: grpc.ServicerContext) -> Iterator[api_pb2.LogChunk]:
        if request.container == "missing":
            context.abort(grpc.StatusCode.NOT_FOUND, 'container "missing" not found')
        yield api_pb2.LogChunk(data=f"{request.namespace}/{request.name} line 1\n".encode())
        yield api_pb2.LogChunk(data=f"tail={request.tail_lines}\n".encode())

    def Exec(self, request_iterator: Iterator[api_pb2.ExecRequest],
             context: grpc.ServicerContext) -> Iterator[api_pb2.ExecResponse]:
        start = next(request_iterator)
        yield api_pb2.ExecResponse(stdout=" ".join(start.start.command).encode() + b"\n")
        for req in request_iterator:
            if req.WhichOneof("input") == "stdin":
                yield api_pb2.ExecResponse(stdout=req.stdin.upper())
            elif req.WhichOneof("input") == "close_stdin":
                break
        yield api_pb2.ExecResponse(exit_code=3)


@pytest.fixture(scope="module")
def agent_port() -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    nodeagent_pb2_grpc.add_NodeAgentServicer_to_server(StandInAgent(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(0)


def _setup(client: Client, node: str, port: int, pod: str) -> None:
    client.create(manifest.from_dict({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": node},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}))
    client.create(manifest.from_dict({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x:1"}]}}))


def test_logs_and_exec_reach_the_agent(cluster: Cluster, agent_port: int) -> None:
    with Client(cluster.server) as client:
        _setup(client, "proxy-node", agent_port, "proxied")
        data = b"".join(client.logs(api_pb2.LogsRequest(namespace="default", name="proxied",
                                                         tail_lines=5)))
        assert data == b"default/proxied line 1\ntail=5\n"
        with pytest.raises(NotFound, match='container "missing" not found'):
            list(client.logs(api_pb2.LogsRequest(namespace="default", name="proxied",
                                                  container="missing")))

        def inputs() -> Iterator[api_pb2.ExecRequest]:
            yield api_pb2.ExecRequest(start=api_pb2.ExecRequest.Start(
                namespace="default", name="proxied", command=["cat", "-"], stdin=True))
            yield api_pb2.ExecRequest(stdin=b"hello\n")
            yield api_pb2.ExecRequest(close_stdin=True)
        out = list(client.exec(inputs()))
        assert [r.WhichOneof("output") for r in out] == ["stdout", "stdout", "exit_code"]
        assert out[1].stdout == b"HELLO\n" and out[2].exit_code == 3


def test_unbound_pods_and_dead_agents_are_one_clear_error(cluster: Cluster) -> None:
    with Client(cluster.server) as client:
        client.create(manifest.from_dict({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pending"},
            "spec": {"containers": [{"name": "c", "image": "x:1"}]}}))
        with pytest.raises(Forbidden, match="does not have a host assigned"):
            list(client.logs(api_pb2.LogsRequest(namespace="default", name="pending")))
        _setup(client, "dead-node", processes.free_port(), "orphan")
        with pytest.raises(Unavailable, match='node agent of node "dead-node" is unreachable'):
            list(client.logs(api_pb2.LogsRequest(namespace="default", name="orphan")))
        with pytest.raises(ClientError):
            list(client.exec(iter([api_pb2.ExecRequest(stdin=b"x")])))
