"""Proxy `logs` and `exec` to the node agent that runs the pod, as the apiserver proxies
to the kubelet. The agent is found from the pod's node: its InternalIP address and the
port in status.daemonEndpoints.kubeletEndpoint. Errors from the agent pass through with
their status code; an agent that cannot be reached is UNAVAILABLE naming the node.

Agents that serve TLS are dialled with `tls` (kube-apiserver's `--kubelet-certificate-authority`
to check the agent's serving certificate for its InternalIP, and `--kubelet-client-certificate`
/ `--kubelet-client-key` for an agent that requires client certificates).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from kemu.api import kinds, nodes
from kemu.api.v1 import api_pb2, core_pb2, nodeagent_pb2_grpc
from kemu.services.apiserver.errors import FailedPrecondition, Unavailable
from kemu.services.apiserver.registry import Registry
from kemu.util.tls import ClientTLS, aio_channel

_OPTIONS = [("grpc.keepalive_time_ms", 20_000), ("grpc.keepalive_permit_without_calls", 1)]


class NodeAgentProxy:
    """Channels to node agents, one per address, reused across calls."""

    def __init__(self, registry: Registry, *, tls: ClientTLS | None = None) -> None:
        self.registry = registry
        self.tls = tls
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()

    async def agent_for(self, namespace: str, pod_name: str
                        ) -> tuple[nodeagent_pb2_grpc.NodeAgentStub, str]:
        """The stub of the agent running the pod, and the node's name."""
        pod = (await self.registry.get(kinds.resolve("pods"), namespace, pod_name)).pod
        node_name = pod.spec.node_name
        if not node_name:
            raise FailedPrecondition(f"pod {pod_name} does not have a host assigned")
        node = (await self.registry.get(kinds.resolve("nodes"), "", node_name)).node
        return self.stub_for(node), node_name

    def stub_for(self, node: core_pb2.Node) -> nodeagent_pb2_grpc.NodeAgentStub:
        """The stub of a node's agent (Unavailable when the node publishes no endpoint)."""
        node_name = node.metadata.name
        address = nodes.internal_ip(node)
        port = node.status.daemon_endpoints.kubelet_endpoint.port
        if not address or not port:
            raise Unavailable(f'node "{node_name}" has no agent endpoint (InternalIP and '
                              "daemonEndpoints.kubeletEndpoint.Port)")
        target = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        channel = self._channels.get(target)
        if channel is None:
            channel = self._channels[target] = aio_channel(target, self.tls, options=_OPTIONS)
        return nodeagent_pb2_grpc.NodeAgentStub(channel)

    async def logs(self, request: api_pb2.LogsRequest) -> AsyncIterator[api_pb2.LogChunk]:
        stub, node = await self.agent_for(request.namespace, request.name)
        call = stub.Logs(request)
        try:
            async for chunk in call:
                yield chunk
        except grpc.aio.AioRpcError as e:
            raise _agent_error(e, node) from e
        finally:
            call.cancel()

    async def exec(self, start: api_pb2.ExecRequest,
                   rest: AsyncIterator[api_pb2.ExecRequest]
                   ) -> AsyncIterator[api_pb2.ExecResponse]:
        stub, node = await self.agent_for(start.start.namespace, start.start.name)

        async def requests() -> AsyncIterator[api_pb2.ExecRequest]:
            yield start
            async for req in rest:
                yield req

        call = stub.Exec(requests())
        try:
            async for resp in call:
                yield resp
        except grpc.aio.AioRpcError as e:
            raise _agent_error(e, node) from e
        finally:
            call.cancel()


class AgentError(Exception):
    """An error status from a node agent, passed on to the client as it is."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _agent_error(e: grpc.aio.AioRpcError, node: str) -> Exception:
    if e.code() == grpc.StatusCode.UNAVAILABLE:
        return Unavailable(f'node agent of node "{node}" is unreachable: {e.details()}')
    return AgentError(e.code(), e.details() or str(e.code()))
