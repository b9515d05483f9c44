"""An asyncio client for the kemu.v1 API, for components (scheduler, node agent, ...).

The same verbs as `kemu.client.Client`, over grpc.aio. Reads retry with back-off while
the server is UNAVAILABLE (bounded by `read_retry_seconds`); writes do not, since a write
that timed out may have been applied: callers reconcile level-triggered instead.
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from kemu.api.v1 import api_pb2, api_pb2_grpc
from kemu.client.auth import aio_interceptors
from kemu.client.errors import Unavailable, from_rpc_error
from kemu.util.tls import ClientTLS, aio_channel

T = TypeVar("T")
_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


class AsyncClient:
    """One grpc.aio connection to an apiserver. Create it inside the running loop."""

    def __init__(self, server: str, *, timeout: float = 30.0, read_retry_seconds: float = 30.0,
                 metadata: tuple[tuple[str, str], ...] = (), token: str | None = None,
                 tls: ClientTLS | None = None) -> None:
        """`tls`: dial over TLS (None: $KEMU_CERTIFICATE_AUTHORITY and friends, else
        plaintext)."""
        self.server = server
        self.timeout = timeout
        self.read_retry_seconds = read_retry_seconds
        self.metadata = metadata
        self.tls = tls if tls is not None else ClientTLS.from_env()
        self.channel = aio_channel(server, self.tls, options=_OPTIONS,
                                   interceptors=aio_interceptors(token))
        self.resources = api_pb2_grpc.ResourcesStub(self.channel)
        self.discovery = api_pb2_grpc.DiscoveryStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, method: Callable[..., Awaitable[Any]], request: Any, *,
                    read: bool = False) -> Any:
        deadline = time.monotonic() + (self.read_retry_seconds if read else 0)
        backoff = 0.1
        while True:
            try:
                return await method(request, timeout=self.timeout, metadata=self.metadata)
            except grpc.aio.AioRpcError as e:
                err = from_rpc_error(e, self.server)
                if isinstance(err, Unavailable) and time.monotonic() + backoff < deadline:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                raise err from None

    async def create(self, obj: api_pb2.Object) -> api_pb2.Object:
        return await self._call(self.resources.Create, api_pb2.CreateRequest(object=obj))

    async def get(self, resource: str, name: str, namespace: str = "") -> api_pb2.Object:
        key = api_pb2.ObjectKey(resource=resource, namespace=namespace, name=name)
        return await self._call(self.resources.Get, api_pb2.GetRequest(key=key), read=True)

    async def list(self, resource: str, namespace: str = "", *, label_selector: str = "",
                   field_selector: str = "") -> api_pb2.ListResponse:
        req = api_pb2.ListRequest(resource=resource, namespace=namespace,
                                  label_selector=label_selector, field_selector=field_selector)
        return await self._call(self.resources.List, req, read=True)

    async def update(self, obj: api_pb2.Object) -> api_pb2.Object:
        return await self._call(self.resources.Update, api_pb2.UpdateRequest(object=obj))

    async def update_status(self, obj: api_pb2.Object) -> api_pb2.Object:
        return await self._call(self.resources.UpdateStatus, api_pb2.UpdateRequest(object=obj))

    async def apply(self, obj: api_pb2.Object) -> api_pb2.ApplyResponse:
        return await self._call(self.resources.Apply, api_pb2.ApplyRequest(object=obj))

    async def delete(self, resource: str, name: str, namespace: str = "", *,
                     grace_period_seconds: int | None = None, uid: str = "",
                     propagation_policy: int = api_pb2.PROPAGATION_POLICY_UNSPECIFIED
                     ) -> api_pb2.DeleteResponse:
        req = api_pb2.DeleteRequest(
            key=api_pb2.ObjectKey(resource=resource, namespace=namespace, name=name),
            propagation_policy=propagation_policy, uid=uid)  # type: ignore[arg-type]
        if grace_period_seconds is not None:
            req.grace_period_seconds = grace_period_seconds
        return await self._call(self.resources.Delete, req)

    async def bind(self, namespace: str, name: str, node_name: str,
                   uid: str = "") -> api_pb2.Object:
        return await self._call(self.resources.Bind, api_pb2.BindRequest(
            namespace=namespace, name=name, node_name=node_name, uid=uid))

    async def watch(self, resource: str, namespace: str = "", *, label_selector: str = "",
                    field_selector: str = "", resource_version: str = "",
                    allow_bookmarks: bool = True) -> AsyncIterator[api_pb2.WatchEvent]:
        """Yield events until the stream ends or fails (errors are ClientError)."""
        req = api_pb2.WatchRequest(resource=resource, namespace=namespace,
                                   label_selector=label_selector, field_selector=field_selector,
                                   resource_version=resource_version,
                                   allow_bookmarks=allow_bookmarks)
        call = self.resources.Watch(req, metadata=self.metadata)
        try:
            async for event in call:
                yield event
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED:
                return
            raise from_rpc_error(e, self.server) from None
        finally:
            call.cancel()

    async def api_resources(self) -> builtins.list[api_pb2.APIResource]:
        resp = await self._call(self.discovery.ListAPIResources,
                                api_pb2.ListAPIResourcesRequest(), read=True)
        return list(resp.resources)
