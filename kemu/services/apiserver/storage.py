"""The apiserver's only door to the store: an async etcd v3 client.

It speaks the etcd v3 gRPC API, so the same code runs against kemu's embedded store and
against a real etcd cluster. It knows keys, bytes and revisions, nothing of kinds.
Several endpoints may be given; reads fail over to the next one on UNAVAILABLE, writes
do not (a write that may have been applied is reported, never silently repeated).
With an encryption config, values are encrypted on the way in and decrypted on the way out
here, and nowhere else (see encryption.py): above this line every value is plain.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

import grpc

from kemu.api.etcd import kv_pb2, rpc_pb2, rpc_pb2_grpc
from kemu.services.apiserver import encryption
from kemu.services.apiserver.encryption import EncryptionConfig
from kemu.services.apiserver.errors import Gone, Unavailable
from kemu.util.tls import ClientTLS, aio_channel

log = logging.getLogger(__name__)
_MAX_MESSAGE = 64 * 1024 * 1024
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.max_send_message_length", _MAX_MESSAGE),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_permit_without_calls", 1),
]
PAGE = 500
COMPACTED = "etcdserver: mvcc: required revision has been compacted"


@dataclass(frozen=True)
class KeyValue:
    """One stored key at one revision."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    # Written by anything but the current encryption writer (an older key, or plain):
    # an update must rewrite it even when the object is unchanged.
    stale: bool = False


def prefix_end(prefix: bytes) -> bytes:
    """etcd's range end for "every key with this prefix": the prefix with its last byte + 1."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


class Storage:
    """An async etcd v3 client over one or more endpoints."""

    def __init__(self, endpoints: Sequence[str], *,
                 encryption: EncryptionConfig | None = None,
                 tls: ClientTLS | None = None) -> None:
        """`tls`: dial the store over TLS (`--etcd-cafile`, with `--etcd-certfile` and
        `--etcd-keyfile` for a store that wants client certificates)."""
        if not endpoints:
            raise ValueError("at least one store endpoint is required")
        self.endpoints = list(endpoints)
        self.encryption = encryption
        self._channels = [aio_channel(e, tls, options=_CHANNEL_OPTIONS)
                          for e in self.endpoints]
        self._kv_stubs = [rpc_pb2_grpc.KVStub(c) for c in self._channels]
        self._current = 0

    @property
    def _kv(self) -> rpc_pb2_grpc.KVStub:
        return self._kv_stubs[self._current]

    def watch_stub(self) -> rpc_pb2_grpc.WatchStub:
        return rpc_pb2_grpc.WatchStub(self._channels[self._current])

    def _fail_over(self) -> None:
        self._current = (self._current + 1) % len(self._channels)

    def _plain(self, kv: kv_pb2.KeyValue) -> KeyValue:
        key = kv.key.decode()
        value, stale = encryption.from_storage(self.encryption, kv.value, key)
        return KeyValue(key, value, kv.create_revision, kv.mod_revision, stale)

    def _open_kvs(self, kvs: Iterable[kv_pb2.KeyValue]) -> None:
        """Decrypt values of a response in place (a store response is ours to change)."""
        for kv in kvs:
            if kv.value:
                kv.value = encryption.from_storage(self.encryption, kv.value,
                                                   kv.key.decode())[0]

    def _seal(self, ops: Iterable[rpc_pb2.RequestOp]) -> None:
        """Encrypt the values of a request's puts in place, nested transactions too."""
        for op in ops:
            if op.HasField("request_put"):
                put = op.request_put
                put.value = encryption.to_storage(self.encryption, put.value, put.key.decode())
            elif op.HasField("request_txn"):
                self._seal(op.request_txn.success)
                self._seal(op.request_txn.failure)

    def _open(self, responses: Iterable[rpc_pb2.ResponseOp]) -> None:
        for resp in responses:
            if resp.HasField("response_range"):
                self._open_kvs(resp.response_range.kvs)
            elif resp.HasField("response_txn"):
                self._open(resp.response_txn.responses)

    async def close(self) -> None:
        for ch in self._channels:
            await ch.close()

    async def _read(self, request: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        last: grpc.aio.AioRpcError | None = None
        for _ in self._channels:
            try:
                resp: rpc_pb2.RangeResponse = await self._kv.Range(request, timeout=30)
                return resp
            except grpc.aio.AioRpcError as e:
                if e.code() == grpc.StatusCode.OUT_OF_RANGE:
                    raise Gone(e.details() or "too old resource version") from e
                if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise Unavailable(f"store error: {e.details()}") from e
                last = e
                self._fail_over()
        assert last is not None
        raise Unavailable(f"store unavailable at {', '.join(self.endpoints)}: "
                          f"{last.details()}") from last

    async def get(self, key: str) -> tuple[KeyValue | None, int]:
        """The key's current value (or None) and the store revision of the read."""
        resp = await self._read(rpc_pb2.RangeRequest(key=key.encode()))
        return (self._plain(resp.kvs[0]) if resp.kvs else None), resp.header.revision

    async def needs_rewrite(self, key: str, mod_revision: int) -> bool:
        """Whether the value of `key` at `mod_revision` is stale (see KeyValue), so that an
        update that changes nothing must still write it (as Kubernetes' GuaranteedUpdate)."""
        if self.encryption is None or self.encryption.for_key(key) is None:
            return False
        kv, _ = await self.get(key)
        return kv is not None and kv.mod_revision == mod_revision and kv.stale

    async def list(self, prefix: str, *, revision: int = 0) -> tuple[list[KeyValue], int]:
        """Every key under the prefix, read at one revision in pages."""
        start, end = prefix.encode(), prefix_end(prefix.encode())
        out: list[KeyValue] = []
        while True:
            resp = await self._read(rpc_pb2.RangeRequest(
                key=start, range_end=end, limit=PAGE, revision=revision))
            if revision == 0:
                revision = resp.header.revision
            out.extend(self._plain(kv) for kv in resp.kvs)
            if not resp.more or not resp.kvs:
                return out, revision
            start = resp.kvs[-1].key + b"\0"

    async def keys(self, prefix: str) -> builtins.list[str]:
        """The keys (only) under a prefix."""
        resp = await self._read(rpc_pb2.RangeRequest(
            key=prefix.encode(), range_end=prefix_end(prefix.encode()), keys_only=True))
        return [kv.key.decode() for kv in resp.kvs]

    async def txn(self, request: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        """Run one transaction; UNAVAILABLE becomes Unavailable without a retry."""
        sealed = request
        if self.encryption is not None:  # the caller's request stays as it gave it
            sealed = rpc_pb2.TxnRequest()
            sealed.CopyFrom(request)
            self._seal(sealed.success)
            self._seal(sealed.failure)
        try:
            resp: rpc_pb2.TxnResponse = await self._kv.Txn(sealed, timeout=30)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.UNAVAILABLE:
                self._fail_over()
            raise Unavailable(f"store write failed: {e.details()}") from e
        self._open(resp.responses)
        return resp

    async def current_revision(self) -> int:
        resp = await self._read(rpc_pb2.RangeRequest(key=b"\0", count_only=True))
        return resp.header.revision

    async def watch(self, prefix: str, start_revision: int,
                    progress: asyncio.Event | None = None, *,
                    prev_kv: bool = False) -> AsyncIterator[rpc_pb2.WatchResponse]:
        """Stream the watch responses for a prefix from a revision (progress notify on).

        Setting `progress` asks the store for a progress notification (etcd's
        WatchProgressRequest), which tells how current the stream is. `prev_kv`: each event
        carries the key's value before it (what a watch with no cache behind it needs to
        tell an object leaving a selector from one that never matched).
        """
        outgoing: asyncio.Queue[rpc_pb2.WatchRequest | None] = asyncio.Queue()
        outgoing.put_nowait(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
            key=prefix.encode(), range_end=prefix_end(prefix.encode()),
            start_revision=start_revision, progress_notify=True, prev_kv=prev_kv)))

        async def requests() -> AsyncIterator[rpc_pb2.WatchRequest]:
            while (req := await outgoing.get()) is not None:
                yield req

        async def ask_progress() -> None:
            assert progress is not None
            while True:
                await progress.wait()
                progress.clear()
                outgoing.put_nowait(rpc_pb2.WatchRequest(
                    progress_request=rpc_pb2.WatchProgressRequest()))

        call = self.watch_stub().Watch(requests())
        asker = asyncio.create_task(ask_progress()) if progress is not None else None
        try:
            async for resp in call:
                if resp.canceled:
                    if resp.compact_revision:
                        raise Gone(COMPACTED)
                    raise Unavailable(f"store cancelled the watch: {resp.cancel_reason}")
                for ev in resp.events:
                    self._open_kvs((ev.kv, ev.prev_kv))
                yield resp
        except grpc.aio.AioRpcError as e:
            raise Unavailable(f"store watch failed: {e.details()}") from e
        finally:
            if asker is not None:
                asker.cancel()
            outgoing.put_nowait(None)
            call.cancel()


def put_op(key: str, value: bytes) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key.encode(), value=value))


def delete_op(key: str) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=key.encode()))


def get_op(key: str) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key.encode()))


def absent(key: str) -> rpc_pb2.Compare:
    """Compare: the key does not exist (create_revision == 0)."""
    return rpc_pb2.Compare(result=rpc_pb2.Compare.EQUAL, target=rpc_pb2.Compare.CREATE,
                           key=key.encode(), create_revision=0)


def unchanged(key: str, mod_revision: int) -> rpc_pb2.Compare:
    """Compare: the key was last written at exactly this revision."""
    return rpc_pb2.Compare(result=rpc_pb2.Compare.EQUAL, target=rpc_pb2.Compare.MOD,
                           key=key.encode(), mod_revision=mod_revision)


def value_is(key: str, value: bytes) -> rpc_pb2.Compare:
    return rpc_pb2.Compare(result=rpc_pb2.Compare.EQUAL, target=rpc_pb2.Compare.VALUE,
                           key=key.encode(), value=value)
