"""Thin gRPC servicers for the etcd v3 API: validate, delegate, translate, fill headers.

Why so thin: every behaviour lives in the Store (store.py, mvcc.py, watch.py)
where unit tests reach it without gRPC. Errors cross this boundary through one
table, ERRORS, which gives etcd's exact status codes and messages, because etcd
clients (and the apiserver) match on the message text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import NoReturn

import grpc

from kemu.api.etcd import rpc_pb2, rpc_pb2_grpc
from kemu.services.store import errors
from kemu.services.store.store import RAFT_TERM, Store
from kemu.services.store.watch import WatchStream

log = logging.getLogger(__name__)

ETCD_VERSION = "3.4.0"

# StoreError subclass -> (status code, message); None keeps the exception's message.
ERRORS: dict[type[errors.StoreError], tuple[grpc.StatusCode, str | None]] = {
    errors.Compacted: (
        grpc.StatusCode.OUT_OF_RANGE,
        "etcdserver: mvcc: required revision has been compacted",
    ),
    errors.FutureRevision: (
        grpc.StatusCode.OUT_OF_RANGE,
        "etcdserver: mvcc: required revision is a future revision",
    ),
    errors.LeaseNotFound: (grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found"),
    errors.LeaseExists: (grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: lease already exists"),
    errors.LeaseTTLTooLarge: (grpc.StatusCode.OUT_OF_RANGE, "etcdserver: too large lease TTL"),
    errors.KeyNotFound: (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: key not found"),
    errors.InvalidRequest: (grpc.StatusCode.INVALID_ARGUMENT, None),
    errors.Unavailable: (grpc.StatusCode.UNAVAILABLE, None),
    errors.StorageError: (grpc.StatusCode.INTERNAL, None),
}


def translate(e: errors.StoreError) -> tuple[grpc.StatusCode, str]:
    """The gRPC status for a store error (INTERNAL for anything unlisted)."""
    for cls in type(e).__mro__:
        if cls in ERRORS:
            code, message = ERRORS[cls]
            return code, message if message is not None else str(e)
    return grpc.StatusCode.INTERNAL, str(e) or type(e).__name__


async def _abort(context: grpc.aio.ServicerContext, e: errors.StoreError) -> NoReturn:
    code, message = translate(e)
    await context.abort(code, message)
    raise AssertionError("unreachable")  # context.abort always raises


class KVServicer(rpc_pb2_grpc.KVServicer):
    """etcdserverpb.KV."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def Range(
        self, request: rpc_pb2.RangeRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.RangeResponse:
        try:
            resp = await self._store.range_async(request)
        except errors.StoreError as e:
            await _abort(context, e)
        self._store.fill_header(resp.header)
        return resp

    async def Put(
        self, request: rpc_pb2.PutRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.PutResponse:
        try:
            resp = await self._store.put(request)
        except errors.StoreError as e:
            await _abort(context, e)
        self._store.fill_header(resp.header)
        return resp

    async def DeleteRange(
        self, request: rpc_pb2.DeleteRangeRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.DeleteRangeResponse:
        try:
            resp = await self._store.delete_range(request)
        except errors.StoreError as e:
            await _abort(context, e)
        self._store.fill_header(resp.header)
        return resp

    async def Txn(
        self, request: rpc_pb2.TxnRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.TxnResponse:
        try:
            resp = await self._store.txn(request)
        except errors.StoreError as e:
            await _abort(context, e)
        self._store.fill_header(resp.header)
        return resp

    async def Compact(
        self, request: rpc_pb2.CompactionRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.CompactionResponse:
        try:
            resp = await self._store.compact(request)
        except errors.StoreError as e:
            await _abort(context, e)
        self._store.fill_header(resp.header)
        return resp


class WatchServicer(rpc_pb2_grpc.WatchServicer):
    """etcdserverpb.Watch: one task reads requests, the handler writes responses."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def Watch(  # type: ignore[override]
        self,
        request_iterator: AsyncIterator[rpc_pb2.WatchRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[rpc_pb2.WatchResponse]:
        assert self._store.hub is not None
        stream = self._store.hub.open_stream()
        reader = asyncio.get_running_loop().create_task(self._read(request_iterator, stream))
        try:
            while True:
                resp = await stream.queue.get()
                if resp is None:
                    return
                yield resp
                stream.sent_one()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            stream.close()

    @staticmethod
    async def _read(
        request_iterator: AsyncIterator[rpc_pb2.WatchRequest], stream: WatchStream
    ) -> None:
        try:
            async for req in request_iterator:
                kind = req.WhichOneof("request_union")
                if kind == "create_request":
                    stream.create(req.create_request)
                elif kind == "cancel_request":
                    stream.cancel(req.cancel_request.watch_id)
                elif kind == "progress_request":
                    stream.request_progress()
        except (asyncio.CancelledError, grpc.aio.AioRpcError):
            raise
        except grpc.aio.AbortError:  # an undecodable request (grpcdecode): the status is set
            stream.close()
        except Exception:
            log.exception("watch stream reader failed")
            stream.close()
        # Half-close from the client keeps the stream open, as etcd does.


class LeaseServicer(rpc_pb2_grpc.LeaseServicer):
    """etcdserverpb.Lease."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def LeaseGrant(
        self, request: rpc_pb2.LeaseGrantRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.LeaseGrantResponse:
        try:
            resp = await self._store.lease_grant(request.TTL, request.ID)
        except errors.StoreError as e:
            await _abort(context, e)
        self._store.fill_header(resp.header)
        return resp

    async def LeaseRevoke(
        self, request: rpc_pb2.LeaseRevokeRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.LeaseRevokeResponse:
        try:
            resp = await self._store.lease_revoke(request.ID)
        except errors.StoreError as e:
            await _abort(context, e)
        self._store.fill_header(resp.header)
        return resp

    async def LeaseKeepAlive(  # type: ignore[override]
        self,
        request_iterator: AsyncIterator[rpc_pb2.LeaseKeepAliveRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[rpc_pb2.LeaseKeepAliveResponse]:
        async for req in request_iterator:
            resp = rpc_pb2.LeaseKeepAliveResponse(ID=req.ID, TTL=self._store.lease_renew(req.ID))
            self._store.fill_header(resp.header)
            yield resp

    async def LeaseTimeToLive(
        self, request: rpc_pb2.LeaseTimeToLiveRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.LeaseTimeToLiveResponse:
        info = self._store.lease_time_to_live(request.ID, keys=request.keys)
        if info is None:
            resp = rpc_pb2.LeaseTimeToLiveResponse(ID=request.ID, TTL=-1)
        else:
            resp = rpc_pb2.LeaseTimeToLiveResponse(
                ID=info.id, TTL=info.ttl, grantedTTL=info.granted_ttl, keys=info.keys
            )
        self._store.fill_header(resp.header)
        return resp

    async def LeaseLeases(
        self, request: rpc_pb2.LeaseLeasesRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.LeaseLeasesResponse:
        resp = rpc_pb2.LeaseLeasesResponse(
            leases=[rpc_pb2.LeaseStatus(ID=i) for i in self._store.lease_ids()]
        )
        self._store.fill_header(resp.header)
        return resp


class ClusterServicer(rpc_pb2_grpc.ClusterServicer):
    """etcdserverpb.Cluster: a one-member cluster."""

    def __init__(self, store: Store, *, name: str, client_urls: list[str]) -> None:
        self._store = store
        self._name = name
        self._client_urls = client_urls

    async def MemberList(
        self, request: rpc_pb2.MemberListRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.MemberListResponse:
        resp = rpc_pb2.MemberListResponse(
            members=[
                rpc_pb2.Member(
                    ID=self._store.member_id, name=self._name, clientURLs=self._client_urls
                )
            ]
        )
        self._store.fill_header(resp.header)
        return resp


class MaintenanceServicer(rpc_pb2_grpc.MaintenanceServicer):
    """etcdserverpb.Maintenance: Status and an always-empty Alarm list."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def Alarm(
        self, request: rpc_pb2.AlarmRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.AlarmResponse:
        resp = rpc_pb2.AlarmResponse()
        self._store.fill_header(resp.header)
        return resp

    async def Status(
        self, request: rpc_pb2.StatusRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.StatusResponse:
        size, in_use = self._store.db_sizes()
        rev = self._store.revision
        resp = rpc_pb2.StatusResponse(
            version=ETCD_VERSION,
            dbSize=size,
            dbSizeInUse=in_use,
            leader=self._store.member_id,
            raftIndex=rev,
            raftTerm=RAFT_TERM,
            raftAppliedIndex=rev,
        )
        self._store.fill_header(resp.header, rev)
        return resp
