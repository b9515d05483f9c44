"""The NodeAgent gRPC service: container logs and exec, as the kubelet's API serves them,
and the resource usage of the node's pods, as its resource metrics endpoint does.

A thin servicer: find the pod in the agent's cache and the container instance in Docker
(by labels), then stream. Errors read as the apiserver's do for `kubectl logs/exec`, so
the apiserver's proxy can pass them through unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from kemu.api.v1 import api_pb2, nodeagent_pb2, nodeagent_pb2_grpc
from kemu.client.informer import Informer
from kemu.nodeagent import naming
from kemu.nodeagent.runtime import ContainerInfo, ContainerRuntime, ContainerRuntimeError
from kemu.nodeagent.stats import NodeStats

log = logging.getLogger(__name__)


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NodeAgentService(nodeagent_pb2_grpc.NodeAgentServicer):
    """Logs, Exec and Stats for the pods of this node."""

    def __init__(self, runtime: ContainerRuntime, node: str, pods: Informer, *,
                 stats: NodeStats | None = None) -> None:
        self.runtime = runtime
        self.node = node
        self.pods = pods
        self.stats = stats or NodeStats(runtime, node)

    def _pod(self, namespace: str, name: str) -> Any:
        obj = self.pods.get(f"{namespace or 'default'}/{name}")
        if obj is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f'pods "{name}" not found')
        return obj.pod

    @staticmethod
    def _container_name(pod: Any, requested: str) -> str:
        names = [c.name for c in pod.spec.containers]
        init_names = [c.name for c in pod.spec.init_containers]
        if requested:
            if requested not in names and requested not in init_names:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                             f"container {requested} is not valid for pod {pod.metadata.name}")
            return str(requested)
        if len(names) == 1:
            return str(names[0])
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                     f"a container name must be specified for pod {pod.metadata.name}, "
                     f"choose one of: [{' '.join(names)}] or one of the init containers: "
                     f"[{' '.join(init_names)}]" if init_names else
                     f"a container name must be specified for pod {pod.metadata.name}, "
                     f"choose one of: [{' '.join(names)}]")

    async def _instances(self, pod: Any, container: str) -> list[ContainerInfo]:
        found = await self.runtime.list_containers({
            naming.NODE: self.node, naming.UID: pod.metadata.uid, naming.CONTAINER: container})
        found = [f for f in found if f.labels.get(naming.KIND) != naming.KIND_SANDBOX]

        def attempt(i: ContainerInfo) -> int:
            return int(i.labels.get(naming.ATTEMPT, "0") or 0)
        return sorted(found, key=attempt, reverse=True)

    def _status_of(self, pod: Any, container: str) -> Any | None:
        for cs in (*pod.status.container_statuses, *pod.status.init_container_statuses):
            if cs.name == container:
                return cs
        return None

    async def _log_target(self, req: api_pb2.LogsRequest) -> ContainerInfo:
        pod = self._pod(req.namespace, req.name)
        name = self._container_name(pod, req.container)
        instances = await self._instances(pod, name)
        if req.previous:
            cs = self._status_of(pod, name)
            want = cs.last_state.terminated.container_id.removeprefix("docker://") \
                if cs is not None else ""
            match = next((i for i in instances if want and i.id == want), None)
            if match is None and len(instances) > 1:
                match = instances[1]
            if match is None:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                             f'previous terminated container "{name}" in pod '
                             f'"{pod.metadata.name}" not found')
            return match
        if not instances:
            cs = self._status_of(pod, name)
            reason = cs.state.waiting.reason if cs is not None and cs.state.waiting.reason \
                else "ContainerCreating"
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                         f'container "{name}" in pod "{pod.metadata.name}" is waiting to '
                         f"start: {reason}")
        return instances[0]

    async def Logs(self, request: api_pb2.LogsRequest,
                   context: grpc.aio.ServicerContext[Any, Any]
                   ) -> AsyncIterator[api_pb2.LogChunk]:
        try:
            target = await self._log_target(request)
        except _Abort as e:
            await context.abort(e.code, e.message)
            return
        try:
            async for chunk in self.runtime.logs(
                    target.id, follow=request.follow, tail=int(request.tail_lines),
                    timestamps=request.timestamps, since=_since(int(request.since_seconds))):
                yield api_pb2.LogChunk(data=chunk)
        except ContainerRuntimeError as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(e))

    async def Exec(self, request_iterator: AsyncIterator[api_pb2.ExecRequest],
                   context: grpc.aio.ServicerContext[Any, Any]
                   ) -> AsyncIterator[api_pb2.ExecResponse]:
        try:
            first = await anext(aiter(request_iterator))
        except StopAsyncIteration:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "exec: no start message")
            return
        if first.WhichOneof("input") != "start":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "exec: the first message must carry `start`")
            return
        start = first.start
        if not start.command:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "you must specify at least one command for the container")
            return
        try:
            pod = self._pod(start.namespace, start.name)
            name = self._container_name(pod, start.container)
            instances = await self._instances(pod, name)
            if not instances or not instances[0].running:
                raise _Abort(grpc.StatusCode.FAILED_PRECONDITION,
                             f"container {name} is not valid for pod {pod.metadata.name}: "
                             "the container is not running" if instances else
                             f"container {name} in pod {pod.metadata.name} is not running")
            session = await self.runtime.exec_session(instances[0].id, list(start.command),
                                                      stdin=start.stdin, tty=start.tty)
        except _Abort as e:
            await context.abort(e.code, e.message)
            return
        except ContainerRuntimeError as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
            return

        async def pump_input() -> None:
            try:
                async for req in request_iterator:
                    which = req.WhichOneof("input")
                    if which == "stdin" and start.stdin:
                        await session.write(req.stdin)
                    elif which == "resize":
                        await session.resize(req.resize.width, req.resize.height)
                    elif which == "close_stdin":
                        await session.close_stdin()
            except (grpc.aio.AioRpcError, OSError, asyncio.CancelledError):
                pass
            finally:
                if start.stdin:
                    await session.close_stdin()

        pump = asyncio.create_task(pump_input())
        try:
            async for stream, data in session.output():
                if stream == 2:
                    yield api_pb2.ExecResponse(stderr=data)
                else:
                    yield api_pb2.ExecResponse(stdout=data)
            code = await session.exit_code()
            yield api_pb2.ExecResponse(exit_code=code)
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
            await session.close()

    async def Stats(self, request: nodeagent_pb2.StatsRequest,
                    context: grpc.aio.ServicerContext[Any, Any]
                    ) -> nodeagent_pb2.StatsResponse:
        def pod_meta(namespace: str, name: str) -> Any | None:
            obj = self.pods.get(f"{namespace}/{name}")
            return obj.pod.metadata if obj is not None else None

        try:
            return await self.stats.collect(pod_meta)
        except ContainerRuntimeError as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
            raise  # unreachable: abort raises


def _since(seconds: int) -> int:
    """`--since` as Docker's unix timestamp (0: from the beginning)."""
    if seconds <= 0:
        return 0
    import time

    return int(time.time()) - seconds
