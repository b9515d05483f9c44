"""The store as one object: reads, the writer, watchers and leases wired together.

Why a facade: the gRPC servicers stay thin (validate, call one method here,
fill the header), and the same object is what unit tests drive without gRPC.

Reads run on the event loop thread against their own WAL read connection; each
read takes the revision from the same SQLite snapshot as its data, so a
response's header revision always covers every key it returns. Writes go
through the group-commit writer; after each commit the watch hub and the
lessor learn what changed, before any client hears its acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

from kemu.api.etcd import kv_pb2, rpc_pb2
from kemu.services.store import backend
from kemu.services.store.clock import Clock, SystemClock
from kemu.services.store.errors import LeaseNotFound
from kemu.services.store.lease import Lessor, effective_ttl
from kemu.services.store.mvcc import (
    KVReader,
    LeaseGrant,
    LeaseRevoke,
    WriteOp,
    is_txn_readonly,
    row_to_kv,
    validate_delete,
    validate_put,
    validate_range,
    validate_txn,
)
from kemu.services.store.watch import WatchHub
from kemu.services.store.writer import Writer

log = logging.getLogger(__name__)

_T = TypeVar("_T")

RAFT_TERM = 2
_GET_LATEST = (
    "SELECT m.value, c.key, c.create_rev, c.mod_rev, c.version, c.lease, c.value"
    " FROM meta AS m LEFT JOIN current AS c ON c.key = ? WHERE m.name = 'rev'"
)
_GET_REVS = (
    "SELECT (SELECT value FROM meta WHERE name = 'rev'),"
    " (SELECT value FROM meta WHERE name = 'compact')"
)


def _is_point_read(req: rpc_pb2.RangeRequest) -> bool:
    """A latest-revision read of one key with no filters: served by one statement."""
    return (
        not req.range_end
        and req.revision <= 0
        and not req.count_only
        and not req.min_mod_revision
        and not req.max_mod_revision
        and not req.min_create_revision
        and not req.max_create_revision
    )


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """Answer to a time-to-live question."""

    id: int
    ttl: int
    granted_ttl: int
    keys: list[bytes]


class Store:
    """An etcd-compatible MVCC store on SQLite."""

    def __init__(
        self,
        data_dir: Path,
        *,
        fsync: bool = True,
        clock: Clock | None = None,
        progress_interval: float = 5.0,
        lease_check_interval: float = 0.5,
    ) -> None:
        self.data_dir = data_dir
        self._fsync = fsync
        self._clock = clock or SystemClock()
        self._progress_interval = progress_interval
        self._lease_check_interval = lease_check_interval
        meta = backend.initialize(data_dir, fsync=fsync)
        self.cluster_id = meta.cluster_id
        self.member_id = meta.member_id
        self._conn = backend.connect(data_dir, fsync=fsync)
        self._reader = KVReader(self._conn)
        self.lessor = Lessor(self._clock)
        for lease_id, ttl in backend.load_leases(self._conn).items():
            self.lessor.add(lease_id, ttl)
        self._meta = meta
        self._read_pool = ThreadPoolExecutor(2, thread_name_prefix="store-read")
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self.hub: WatchHub | None = None
        self.writer: Writer | None = None
        self._lease_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the writer, watch hub and lease expiry (needs a running loop)."""
        self.hub = WatchHub(
            self._conn,
            revision=self._meta.revision,
            compact_revision=self._meta.compact_revision,
            fill_header=self.fill_header,
            progress_interval=self._progress_interval,
        )
        self.writer = Writer(
            self.data_dir,
            fsync=self._fsync,
            revision=self._meta.revision,
            compact_revision=self._meta.compact_revision,
            on_commit=self.hub.publish,
        )
        self.hub.start()
        self.writer.start()
        self._lease_task = asyncio.get_running_loop().create_task(
            self._expire_leases(), name="lease-expiry"
        )

    async def close(self) -> None:
        if self._lease_task is not None:
            self._lease_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lease_task
        if self.hub is not None:
            await self.hub.close()
        if self.writer is not None:
            await self.writer.close()
        self._read_pool.shutdown(wait=True)
        for conn in self._read_conns:
            conn.close()
        self._conn.close()

    # ------------------------------------------------------------ headers

    @property
    def revision(self) -> int:
        """The latest revision whose events have been published."""
        assert self.hub is not None
        return self.hub.published_rev

    @property
    def compact_revision(self) -> int:
        assert self.hub is not None
        return self.hub.compact_rev

    def fill_header(self, header: rpc_pb2.ResponseHeader, revision: int = 0) -> None:
        header.cluster_id = self.cluster_id
        header.member_id = self.member_id
        header.raft_term = RAFT_TERM
        header.revision = revision or header.revision or self.revision

    # ------------------------------------------------------------ KV

    def range(self, req: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        """Serve a range on the calling thread (the event loop's connection)."""
        validate_range(req)
        if _is_point_read(req):
            return self._get_latest(req.key, req.keys_only)
        return self._in_snapshot(
            self._reader, lambda r, rev, c: r.range(req, current_rev=rev, compact_rev=c)
        )

    async def range_async(self, req: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        """Point reads inline; scans and past revisions on a reader thread.

        A large scan must not stall the event loop (acknowledgements and watch
        delivery run there); a point read is cheaper than the thread hop.
        """
        validate_range(req)
        if _is_point_read(req):
            return self._get_latest(req.key, req.keys_only)
        return await self._on_reader(lambda r, rev, c: r.range(req, current_rev=rev, compact_rev=c))

    async def _on_reader(self, fn: Callable[[KVReader, int, int], _T]) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._read_pool, lambda: self._in_snapshot(self._thread_reader(), fn)
        )

    def _thread_reader(self) -> KVReader:
        reader: KVReader | None = getattr(self._local, "reader", None)
        if reader is None:
            conn = backend.connect(self.data_dir, fsync=self._fsync)
            self._read_conns.append(conn)
            reader = self._local.reader = KVReader(conn)
        return reader

    @staticmethod
    def _in_snapshot(reader: KVReader, fn: Callable[[KVReader, int, int], _T]) -> _T:
        """Run fn in one read transaction, with the revisions of that snapshot."""
        conn = reader.conn
        conn.execute("BEGIN")
        try:
            rev, compact = conn.execute(_GET_REVS).fetchone()
            return fn(reader, rev, compact)
        finally:
            conn.execute("COMMIT")

    def _get_latest(self, key: bytes, keys_only: bool) -> rpc_pb2.RangeResponse:
        row = self._conn.execute(_GET_LATEST, (key,)).fetchone()
        resp = rpc_pb2.RangeResponse()
        resp.header.revision = row[0]
        if row[1] is not None:
            kv = resp.kvs.add()
            kv.key = row[1]
            kv.create_revision = row[2]
            kv.mod_revision = row[3]
            kv.version = row[4]
            kv.lease = row[5]
            if not keys_only:
                kv.value = row[6]
            resp.count = 1
        return resp

    async def put(self, req: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
        validate_put(req)
        return cast(rpc_pb2.PutResponse, await self._write(req))

    async def delete_range(self, req: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
        validate_delete(req)
        return cast(rpc_pb2.DeleteRangeResponse, await self._write(req))

    async def txn(self, req: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        validate_txn(req)
        if is_txn_readonly(req):
            return await self._on_reader(
                lambda r, rev, c: r.readonly_txn(req, current_rev=rev, compact_rev=c)
            )
        return cast(rpc_pb2.TxnResponse, await self._write(req))

    async def compact(self, req: rpc_pb2.CompactionRequest) -> rpc_pb2.CompactionResponse:
        return cast(rpc_pb2.CompactionResponse, await self._write(req))

    async def _write(self, op: WriteOp) -> object:
        assert self.writer is not None
        result = await self.writer.submit(op)
        return result.response

    # ------------------------------------------------------------ leases

    async def lease_grant(self, ttl: int, lease_id: int = 0) -> rpc_pb2.LeaseGrantResponse:
        ttl = effective_ttl(ttl)
        lease_id = lease_id or self.lessor.new_id()
        assert self.writer is not None
        result = await self.writer.submit(LeaseGrant(lease_id, ttl))
        self.lessor.add(lease_id, ttl)
        return result.response  # type: ignore[return-value]

    async def lease_revoke(self, lease_id: int) -> rpc_pb2.LeaseRevokeResponse:
        assert self.writer is not None
        try:
            result = await self.writer.submit(LeaseRevoke(lease_id))
        except LeaseNotFound:
            self.lessor.remove(lease_id)
            raise
        self.lessor.remove(lease_id)
        return result.response  # type: ignore[return-value]

    def lease_renew(self, lease_id: int) -> int:
        """The lease's TTL after renewal, 0 when it does not exist."""
        return self.lessor.renew(lease_id)

    def lease_time_to_live(self, lease_id: int, *, keys: bool) -> LeaseInfo | None:
        lease = self.lessor.get(lease_id)
        if lease is None:
            return None
        attached = self._reader.lease_keys(lease_id) if keys else []
        return LeaseInfo(lease_id, self.lessor.remaining(lease), lease.ttl, attached)

    def lease_ids(self) -> list[int]:
        return self.lessor.ids()

    async def _expire_leases(self) -> None:
        """Revoke expired leases through the writer: a normal revisioned delete."""
        assert self.writer is not None
        while True:
            await asyncio.sleep(self._lease_check_interval)
            await self.revoke_expired()

    async def revoke_expired(self) -> int:
        """Revoke every lease past its expiry now; returns how many were revoked."""
        assert self.writer is not None
        expired = self.lessor.expired()
        if not expired:
            return 0
        results = await asyncio.gather(
            *(self.writer.submit(LeaseRevoke(i)) for i in expired), return_exceptions=True
        )
        for lease_id, res in zip(expired, results, strict=True):
            if isinstance(res, LeaseNotFound) or not isinstance(res, BaseException):
                self.lessor.remove(lease_id)
            else:
                log.warning("lease expiry failed: lease=%x error=%s", lease_id, res)
                self.lessor.retry(lease_id)
        return len(expired)

    # ------------------------------------------------------------ status

    def db_sizes(self) -> tuple[int, int]:
        return backend.db_sizes(self._conn, self.data_dir)

    def latest_kvs(self, key: bytes, range_end: bytes = b"") -> list[kv_pb2.KeyValue]:
        """Convenience for tests: the live key-values in a range."""
        return [row_to_kv(r) for r in self._reader.latest(key, range_end)]

