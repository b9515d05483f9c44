"""Malformed frames to the node agent's NodeAgent service (Logs, Exec, Stats).

`kemu agent` as a process needs a Docker daemon; its gRPC side does not. So the real
NodeAgentService runs here on a grpc.aio server built as the agent builds it, over a fake
container runtime (no containers) and a fake pod cache (one pod, default/web), in a
thread's event loop on a loopback port. Same rules as the other services: never an
unhandled servicer error, and the server still serves after the barrage.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from kemu.api.v1 import api_pb2, core_pb2, meta_pb2, nodeagent_pb2, nodeagent_pb2_grpc
from kemu.nodeagent.agent import new_grpc_server
from kemu.nodeagent.runtime import ContainerInfo
from kemu.nodeagent.service import NodeAgentService
from tests.fuzz import corpus, frames
from tests.fuzz.test_grpc_frames import barrage, health_methods

pytestmark = pytest.mark.integration


class NoContainers:
    """A container runtime with nothing running."""

    async def list_containers(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        return []

    async def stats(self, container_id: str) -> Mapping[str, Any]:
        return {}

    def logs(self, container_id: str, **_: Any) -> AsyncIterator[bytes]:
        raise AssertionError("no container to read logs from")


class OnePod:
    """The agent's pod cache, holding default/web."""

    def __init__(self) -> None:
        pod = core_pb2.Pod(metadata=meta_pb2.ObjectMeta(name="web", namespace="default",
                                                        uid="u-web"),
                           spec=core_pb2.PodSpec(containers=[core_pb2.Container(name="app")]))
        self.objects = {"default/web": api_pb2.Object(pod=pod)}

    def get(self, key: str) -> api_pb2.Object | None:
        return self.objects.get(key)


class ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        # grpc.aio's process-wide poller calling back into the closed event loop of an
        # earlier test in this worker: that test's leftover, not this agent's doing.
        if message.startswith("Exception in callback PollerCompletionQueue._handle_events"):
            return
        self.messages.append(message)


@pytest.fixture(scope="module")
def agent() -> Iterator[tuple[str, ErrorLog]]:
    errors = ErrorLog()
    logging.getLogger().addHandler(errors)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> tuple[grpc.aio.Server, int]:
        server = new_grpc_server()
        nodeagent_pb2_grpc.add_NodeAgentServicer_to_server(
            NodeAgentService(NoContainers(), "n1", OnePod()),  # type: ignore[arg-type]
            server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield f"127.0.0.1:{port}", errors
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(0), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        logging.getLogger().removeHandler(errors)


# Frames aimed at the one pod that exists, with odd numbers in every other field.
AIMED = [
    api_pb2.LogsRequest(namespace="default", name="web", tail_lines=-5, since_seconds=-(2**62),
                        previous=True).SerializeToString(),
    api_pb2.LogsRequest(namespace="default", name="web", container="nope",
                        tail_lines=2**62).SerializeToString(),
    api_pb2.ExecRequest(start=api_pb2.ExecRequest.Start(namespace="default", name="web",
                                                command=["sh"], tty=True)).SerializeToString(),
    api_pb2.ExecRequest(start=api_pb2.ExecRequest.Start(namespace="default", name="web")
                        ).SerializeToString(),
    api_pb2.ExecRequest(stdin=b"x").SerializeToString(),
]


def test_nodeagent_survives_malformed_frames(agent: tuple[str, ErrorLog],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    address, errors = agent
    service = nodeagent_pb2.DESCRIPTOR.services_by_name["NodeAgent"]
    methods = frames.methods(service) + health_methods()
    seen = barrage(address, methods, seed=13)
    aimed = barrage(address, [m for m in methods if m.path.endswith(("/Logs", "/Exec"))],
                    seed=14, extra=AIMED)
    corpus.report(capsys, f"node agent frames {dict(seen + aimed)}",
                  seen["total"] + aimed["total"])
    unexpected = [m for m in errors.messages if "[DecodeError]" not in m]
    assert not unexpected, unexpected[:5]
    with grpc.insecure_channel(address) as channel:
        resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                          timeout=5)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
