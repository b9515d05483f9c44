"""A synchronous client for the kemu.v1 API (kemuctl, tests, scripts).

Thin on purpose: each method is one RPC, objects are the typed envelope, and every gRPC
error becomes a ClientError subclass. Reads (get, list, discovery) are retried with
back-off while the server is UNAVAILABLE, within the call's deadline; writes are not,
since a write that timed out may have been applied.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc

from kemu.api.v1 import api_pb2, api_pb2_grpc
from kemu.client.auth import with_token
from kemu.client.errors import ClientError, Unavailable, from_rpc_error
from kemu.util.tls import ClientTLS, secure_channel

T = TypeVar("T")
Object = api_pb2.Object
_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


class Client:
    """One connection to an apiserver."""

    def __init__(self, server: str, *, timeout: float = 30.0, read_retry_seconds: float = 0.0,
                 metadata: tuple[tuple[str, str], ...] = (), token: str | None = None,
                 tls: ClientTLS | None = None) -> None:
        """`tls`: dial over TLS (None: $KEMU_CERTIFICATE_AUTHORITY and friends, else
        plaintext)."""
        self.server = server
        self.timeout = timeout
        self.read_retry_seconds = read_retry_seconds
        self.metadata = with_token(metadata, token)
        self.tls = tls if tls is not None else ClientTLS.from_env()
        self._channel = secure_channel(server, self.tls, options=_OPTIONS) if self.tls \
            else grpc.insecure_channel(server, options=_OPTIONS)
        self.resources = api_pb2_grpc.ResourcesStub(self._channel)
        self.discovery = api_pb2_grpc.DiscoveryStub(self._channel)

    @property
    def channel(self) -> grpc.Channel:
        """The connection, for stubs of other services (Metrics) on the same server."""
        return self._channel

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: Callable[..., T], request: Any, *, read: bool = False) -> T:
        deadline = time.monotonic() + (self.read_retry_seconds if read else 0)
        backoff = 0.1
        while True:
            try:
                result: T = method(request, timeout=self.timeout, metadata=self.metadata)
                return result
            except grpc.RpcError as e:
                err = from_rpc_error(e, self.server)
                if isinstance(err, Unavailable) and time.monotonic() + backoff < deadline:
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                raise err from None

    # ---- verbs ---------------------------------------------------------------------------

    def create(self, obj: api_pb2.Object, *, dry_run: bool = False) -> api_pb2.Object:
        return self._call(self.resources.Create, api_pb2.CreateRequest(object=obj,
                                                                       dry_run=dry_run))

    def get(self, resource: str, name: str, namespace: str = "") -> api_pb2.Object:
        key = api_pb2.ObjectKey(resource=resource, namespace=namespace, name=name)
        return self._call(self.resources.Get, api_pb2.GetRequest(key=key), read=True)

    def list(self, resource: str, namespace: str = "", *, label_selector: str = "",
             field_selector: str = "") -> api_pb2.ListResponse:
        req = api_pb2.ListRequest(resource=resource, namespace=namespace,
                                  label_selector=label_selector, field_selector=field_selector)
        return self._call(self.resources.List, req, read=True)

    def update(self, obj: api_pb2.Object, *, dry_run: bool = False) -> api_pb2.Object:
        return self._call(self.resources.Update, api_pb2.UpdateRequest(object=obj,
                                                                       dry_run=dry_run))

    def update_status(self, obj: api_pb2.Object) -> api_pb2.Object:
        return self._call(self.resources.UpdateStatus, api_pb2.UpdateRequest(object=obj))

    def delete(self, resource: str, name: str, namespace: str = "", *,
               propagation_policy: int = api_pb2.PROPAGATION_POLICY_UNSPECIFIED,
               grace_period_seconds: int | None = None,
               resource_version: str = "") -> api_pb2.DeleteResponse:
        req = api_pb2.DeleteRequest(
            key=api_pb2.ObjectKey(resource=resource, namespace=namespace, name=name),
            propagation_policy=propagation_policy,  # type: ignore[arg-type]
            resource_version=resource_version)
        if grace_period_seconds is not None:
            req.grace_period_seconds = grace_period_seconds
        return self._call(self.resources.Delete, req)

    def delete_collection(self, resource: str, namespace: str = "", *, label_selector: str = "",
                          field_selector: str = "",
                          propagation_policy: int = api_pb2.PROPAGATION_POLICY_UNSPECIFIED
                          ) -> api_pb2.DeleteCollectionResponse:
        req = api_pb2.DeleteCollectionRequest(
            resource=resource, namespace=namespace, label_selector=label_selector,
            field_selector=field_selector,
            propagation_policy=propagation_policy)  # type: ignore[arg-type]
        return self._call(self.resources.DeleteCollection, req)

    def apply(self, obj: api_pb2.Object, *, dry_run: bool = False) -> api_pb2.ApplyResponse:
        return self._call(self.resources.Apply, api_pb2.ApplyRequest(object=obj, dry_run=dry_run))

    def watch(self, resource: str, namespace: str = "", *, label_selector: str = "",
              field_selector: str = "", resource_version: str = "",
              allow_bookmarks: bool = False,
              timeout: float | None = None) -> Iterator[api_pb2.WatchEvent]:
        """Yield events until the stream ends; `timeout` bounds the whole watch."""
        req = api_pb2.WatchRequest(resource=resource, namespace=namespace,
                                   label_selector=label_selector, field_selector=field_selector,
                                   resource_version=resource_version,
                                   allow_bookmarks=allow_bookmarks)
        call = self.resources.Watch(req, timeout=timeout, metadata=self.metadata)
        try:
            yield from call
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED:
                return
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED and timeout is not None:
                return
            raise from_rpc_error(e, self.server) from None
        finally:
            call.cancel()

    def bind(self, namespace: str, name: str, node_name: str) -> api_pb2.Object:
        return self._call(self.resources.Bind, api_pb2.BindRequest(
            namespace=namespace, name=name, node_name=node_name))

    def scale(self, resource: str, name: str, replicas: int, namespace: str = "", *,
              resource_version: str = "") -> api_pb2.Object:
        key = api_pb2.ObjectKey(resource=resource, namespace=namespace, name=name)
        return self._call(self.resources.Scale, api_pb2.ScaleRequest(
            key=key, replicas=replicas, resource_version=resource_version))

    def rollback(self, name: str, namespace: str = "", to_revision: int = 0) -> api_pb2.Object:
        return self._call(self.resources.Rollback, api_pb2.RollbackRequest(
            namespace=namespace, name=name, to_revision=to_revision))

    def logs(self, request: api_pb2.LogsRequest) -> Iterator[bytes]:
        try:
            for chunk in self.resources.Logs(request, metadata=self.metadata):
                yield chunk.data
        except grpc.RpcError as e:
            raise from_rpc_error(e, self.server) from None

    def exec(self, requests: Iterator[api_pb2.ExecRequest]) -> Iterator[api_pb2.ExecResponse]:
        """Run a command in a container: send `start` first, then stdin; read the outputs."""
        try:
            yield from self.resources.Exec(requests, metadata=self.metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e, self.server) from None

    def api_resources(self) -> builtins.list[api_pb2.APIResource]:
        resp = self._call(self.discovery.ListAPIResources, api_pb2.ListAPIResourcesRequest(),
                          read=True)
        return list(resp.resources)

    def version(self) -> api_pb2.VersionInfo:
        return self._call(self.discovery.Version, api_pb2.VersionRequest(), read=True)


__all__ = ["Client", "ClientError"]
