"""Multi-version semantics: revisions, ranges, compares, transactions, compaction.

This is etcd's server/storage/mvcc and its applier, over the SQLite tables of
backend.py. It speaks the etcd protobuf types (as etcd's own mvcc package
does with mvccpb.KeyValue) so no conversion layer sits on the hot path.

The rules, as in etcd:

- one global revision; an empty store is at revision 1;
- every write request that changes something bumps it by one; the writes of a
  Txn share that revision, with sub-revisions in order; a delete that deletes
  nothing changes nothing;
- per key: create_revision, mod_revision and version (1 at creation, reset by
  a delete);
- reading at a revision older than the compaction revision is ``Compacted``,
  newer than the current one ``FutureRevision``;
- compaction at C keeps, for every key, its latest version at C (dropped if it
  is a tombstone), so reads at C and later are unchanged.

``KVReader`` works on any connection (the read connection for reads, the
writer's connection inside a write transaction); ``KVWriter`` owns the
writer's state and is only ever used from the writer thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kemu.api.etcd import kv_pb2, rpc_pb2
from kemu.services.store.errors import (
    Compacted,
    FutureRevision,
    InvalidRequest,
    KeyNotFound,
    LeaseExists,
    LeaseNotFound,
)

KeyValue = kv_pb2.KeyValue
Event = kv_pb2.Event
PUT = kv_pb2.Event.PUT
DELETE = kv_pb2.Event.DELETE

MAX_TXN_OPS = 128
KV_COLUMNS = "key, create_rev, mod_rev, version, lease, value"
KEY_COLUMNS = "key, create_rev, mod_rev, version, lease, x''"

Row = tuple[bytes, int, int, int, int, bytes]


# ---------------------------------------------------------------- key ranges


def key_clause(key: bytes, range_end: bytes) -> tuple[str, tuple[bytes, ...]]:
    """SQL condition on column ``key`` for etcd's [key, range_end) conventions."""
    if not range_end:
        return "key = ?", (key,)
    if range_end == b"\x00":
        return "key >= ?", (key,)
    return "key >= ? AND key < ?", (key, range_end)


def in_range(k: bytes, key: bytes, range_end: bytes) -> bool:
    """Whether k lies in etcd's range [key, range_end)."""
    if not range_end:
        return k == key
    if range_end == b"\x00":
        return k >= key
    return key <= k < range_end


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that makes [prefix, end) mean "every key with this prefix"."""
    p = bytearray(prefix)
    while p:
        if p[-1] < 0xFF:
            p[-1] += 1
            return bytes(p)
        p.pop()
    return b"\x00"


def row_to_kv(row: Sequence[Any]) -> KeyValue:
    key, create_rev, mod_rev, version, lease, value = row
    return KeyValue(
        key=key,
        create_revision=create_rev,
        mod_revision=mod_rev,
        version=version,
        lease=lease,
        value=value,
    )


# ---------------------------------------------------------------- results


@dataclass(slots=True)
class RevisionEvents:
    """The events of one revision, delivered together to watchers."""

    revision: int
    events: list[Event]


@dataclass(slots=True)
class LeaseGrant:
    """Write op: persist a new lease."""

    id: int
    ttl: int


@dataclass(slots=True)
class LeaseRevoke:
    """Write op: delete a lease and its keys (revoke or expiry)."""

    id: int


WriteOp = (
    rpc_pb2.PutRequest
    | rpc_pb2.DeleteRangeRequest
    | rpc_pb2.TxnRequest
    | rpc_pb2.CompactionRequest
    | LeaseGrant
    | LeaseRevoke
)


@dataclass(slots=True)
class WriteResult:
    """What one write op produced: its response and, if it wrote, its events."""

    response: object
    changes: RevisionEvents | None = None


@dataclass(slots=True)
class TxnPath:
    """Which branch a txn (and each nested txn of that branch) takes."""

    succeeded: bool
    nested: list[TxnPath] = field(default_factory=list)


# ---------------------------------------------------------------- validation


def is_txn_readonly(req: rpc_pb2.TxnRequest) -> bool:
    """True when no branch (at any depth) writes; such a txn can run as a read."""
    for op in (*req.success, *req.failure):
        kind = op.WhichOneof("request")
        if kind in ("request_put", "request_delete_range"):
            return False
        if kind == "request_txn" and not is_txn_readonly(op.request_txn):
            return False
    return True


def _interval(key: bytes, range_end: bytes) -> tuple[bytes, bytes | None]:
    """A half-open interval; None as end means unbounded."""
    if not range_end:
        return key, key + b"\x00"
    if range_end == b"\x00":
        return key, None
    return key, range_end


def _hits(intervals: list[tuple[bytes, bytes | None]], k: bytes) -> bool:
    return any(lo <= k and (hi is None or k < hi) for lo, hi in intervals)


def _check_intervals(
    ops: Iterable[rpc_pb2.RequestOp],
) -> tuple[set[bytes], list[tuple[bytes, bytes | None]]]:
    """etcd's checkIntervals: no key is put twice or both put and deleted."""
    ops = list(ops)
    dels = [
        _interval(op.request_delete_range.key, op.request_delete_range.range_end)
        for op in ops
        if op.WhichOneof("request") == "request_delete_range"
    ]
    puts: set[bytes] = set()
    for op in ops:
        if op.WhichOneof("request") != "request_txn":
            continue
        puts_then, dels_then = _check_intervals(op.request_txn.success)
        puts_else, dels_else = _check_intervals(op.request_txn.failure)
        for k in puts_then:
            if k in puts or _hits(dels, k):
                raise InvalidRequest("etcdserver: duplicate key given in txn request")
            puts.add(k)
        for k in puts_else:
            if (k in puts and k not in puts_then) or _hits(dels, k):
                raise InvalidRequest("etcdserver: duplicate key given in txn request")
            puts.add(k)
        dels.extend(dels_then)
        dels.extend(dels_else)
    for op in ops:
        if op.WhichOneof("request") != "request_put":
            continue
        k = op.request_put.key
        if k in puts or _hits(dels, k):
            raise InvalidRequest("etcdserver: duplicate key given in txn request")
        puts.add(k)
    return puts, dels


def validate_range(req: rpc_pb2.RangeRequest) -> None:
    if not req.key:
        raise InvalidRequest("etcdserver: key is not provided")
    if req.sort_order not in (0, 1, 2) or req.sort_target not in (0, 1, 2, 3, 4):
        raise InvalidRequest("etcdserver: invalid sort option")


def validate_put(req: rpc_pb2.PutRequest) -> None:
    if not req.key:
        raise InvalidRequest("etcdserver: key is not provided")
    if req.ignore_value and req.value:
        raise InvalidRequest("etcdserver: value is provided")
    if req.ignore_lease and req.lease:
        raise InvalidRequest("etcdserver: lease is provided")


def validate_delete(req: rpc_pb2.DeleteRangeRequest) -> None:
    if not req.key:
        raise InvalidRequest("etcdserver: key is not provided")


def validate_txn(req: rpc_pb2.TxnRequest, *, top: bool = True) -> None:
    """etcd's checkTxnRequest: op count, each op, then duplicate keys."""
    if (
        len(req.compare) > MAX_TXN_OPS
        or len(req.success) > MAX_TXN_OPS
        or len(req.failure) > MAX_TXN_OPS
    ):
        raise InvalidRequest("etcdserver: too many operations in txn request")
    for c in req.compare:
        if not c.key:
            raise InvalidRequest("etcdserver: key is not provided")
    for op in (*req.success, *req.failure):
        kind = op.WhichOneof("request")
        if kind == "request_range":
            validate_range(op.request_range)
        elif kind == "request_put":
            validate_put(op.request_put)
        elif kind == "request_delete_range":
            validate_delete(op.request_delete_range)
        elif kind == "request_txn":
            validate_txn(op.request_txn, top=False)
        else:
            raise InvalidRequest("etcdserver: key is not provided")
    if top:
        _check_intervals(req.success)
        _check_intervals(req.failure)


# ---------------------------------------------------------------- reading

_SORT_COLUMNS = {0: "key", 1: "version", 2: "create_rev", 3: "mod_rev", 4: "value"}


class KVReader:
    """Range reads, compares and read-only txns over one connection's snapshot.

    The caller supplies the revision the snapshot represents and the compaction
    revision, read in the same SQLite transaction, so headers and data agree.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def range(
        self, req: rpc_pb2.RangeRequest, *, current_rev: int, compact_rev: int
    ) -> rpc_pb2.RangeResponse:
        rev = req.revision
        if rev > current_rev:
            raise FutureRevision()
        if 0 < rev < compact_rev:
            raise Compacted()
        if rev <= 0:
            rev = current_rev
        clause, params = key_clause(req.key, req.range_end)
        src_params: tuple[bytes | int, ...]
        if rev == current_rev:
            source, src_params = "current WHERE " + clause, params
        else:
            source = (
                "(SELECT key, create_rev, MAX(rev) AS mod_rev, version, lease, value, deleted"
                f" FROM kv WHERE {clause} AND rev <= ? GROUP BY key) WHERE deleted = 0"
            )
            src_params = (*params, rev)
        resp = rpc_pb2.RangeResponse()
        resp.header.revision = current_rev  # etcd answers with the current revision
        filters: list[str] = []
        fparams: list[int] = []
        for column, value, op in (
            ("mod_rev", req.min_mod_revision, ">="),
            ("mod_rev", req.max_mod_revision, "<="),
            ("create_rev", req.min_create_revision, ">="),
            ("create_rev", req.max_create_revision, "<="),
        ):
            if value:
                filters.append(f"{column} {op} ?")
                fparams.append(value)
        limit = req.limit if req.limit > 0 else 0
        if req.count_only or limit or filters:
            (count,) = self.conn.execute(f"SELECT COUNT(*) FROM {source}", src_params).fetchone()
            resp.count = count
            if req.count_only:
                return resp
        else:
            count = -1
        where = "".join(f" AND {f}" for f in filters)
        order = int(req.sort_order)
        if req.sort_target != 0 and order == 0:
            order = 1
        column = _SORT_COLUMNS[req.sort_target]
        if order == 0 or (order == 1 and column == "key"):
            order_by = "key"
        elif order == 1:
            order_by = f"{column}, key"
        elif column == "key":
            order_by = "key DESC"
        else:
            order_by = f"{column} DESC, key DESC"
        columns = KEY_COLUMNS if req.keys_only else KV_COLUMNS
        sql = f"SELECT {columns} FROM {source}{where} ORDER BY {order_by}"
        if limit:
            sql += f" LIMIT {limit + 1}"
        rows = self.conn.execute(sql, (*src_params, *fparams)).fetchall()
        if limit and len(rows) > limit:
            rows = rows[:limit]
            resp.more = True
        if count < 0:
            resp.count = len(rows)
        resp.kvs.extend([row_to_kv(r) for r in rows])
        return resp

    def latest(self, key: bytes, range_end: bytes = b"") -> list[Row]:
        clause, params = key_clause(key, range_end)
        return self.conn.execute(
            f"SELECT {KV_COLUMNS} FROM current WHERE {clause} ORDER BY key", params
        ).fetchall()

    def compare(self, c: rpc_pb2.Compare) -> bool:
        """etcd's applyCompare: every key in the range must satisfy the predicate."""
        rows = self.latest(c.key, c.range_end)
        if not rows:
            if c.target == rpc_pb2.Compare.VALUE:
                return False
            return _compare_row(c, None)
        return all(_compare_row(c, row) for row in rows)

    def txn_path(self, req: rpc_pb2.TxnRequest) -> TxnPath:
        """Evaluate every compare (nested ones too) against the state before the txn."""
        path = TxnPath(all(self.compare(c) for c in req.compare))
        for op in req.success if path.succeeded else req.failure:
            if op.WhichOneof("request") == "request_txn":
                path.nested.append(self.txn_path(op.request_txn))
        return path

    def check_ranges(
        self, req: rpc_pb2.TxnRequest, path: TxnPath, *, current_rev: int, compact_rev: int
    ) -> None:
        nested = iter(path.nested)
        for op in req.success if path.succeeded else req.failure:
            kind = op.WhichOneof("request")
            if kind == "request_range":
                rev = op.request_range.revision
                if rev > current_rev:
                    raise FutureRevision()
                if 0 < rev < compact_rev:
                    raise Compacted()
            elif kind == "request_txn":
                self.check_ranges(
                    op.request_txn, next(nested), current_rev=current_rev, compact_rev=compact_rev
                )

    def readonly_txn(
        self, req: rpc_pb2.TxnRequest, *, current_rev: int, compact_rev: int
    ) -> rpc_pb2.TxnResponse:
        path = self.txn_path(req)
        self.check_ranges(req, path, current_rev=current_rev, compact_rev=compact_rev)
        resp = self._readonly_apply(req, path, current_rev, compact_rev)
        resp.header.revision = current_rev
        return resp

    def _readonly_apply(
        self, req: rpc_pb2.TxnRequest, path: TxnPath, current_rev: int, compact_rev: int
    ) -> rpc_pb2.TxnResponse:
        resp = rpc_pb2.TxnResponse(succeeded=path.succeeded)
        nested = iter(path.nested)
        for op in req.success if path.succeeded else req.failure:
            out = resp.responses.add()
            if op.WhichOneof("request") == "request_range":
                out.response_range.CopyFrom(
                    self.range(op.request_range, current_rev=current_rev, compact_rev=compact_rev)
                )
            else:
                inner = self._readonly_apply(op.request_txn, next(nested), current_rev, compact_rev)
                inner.header.SetInParent()
                out.response_txn.CopyFrom(inner)
        return resp

    def history(
        self, start: int, end: int, key: bytes, range_end: bytes, *, limit: int
    ) -> list[tuple[int, int, bytes, int, int, int, bytes, int]]:
        """Rows of revisions [start, end] touching the range, in revision order."""
        clause, params = key_clause(key, range_end)
        return self.conn.execute(
            "SELECT rev, sub, key, create_rev, version, lease, value, deleted FROM kv"
            f" WHERE rev >= ? AND rev <= ? AND {clause} ORDER BY rev, sub LIMIT ?",
            (start, end, *params, limit),
        ).fetchall()

    def previous(self, key: bytes, before: int) -> KeyValue | None:
        """The live version of key just before revision ``before`` (None if absent)."""
        row = self.conn.execute(
            "SELECT create_rev, rev, version, lease, value, deleted FROM kv"
            " WHERE key = ? AND rev < ? ORDER BY rev DESC LIMIT 1",
            (key, before),
        ).fetchone()
        if row is None or row[5]:
            return None
        return KeyValue(
            key=key,
            create_revision=row[0],
            mod_revision=row[1],
            version=row[2],
            lease=row[3],
            value=row[4],
        )

    def lease_keys(self, lease_id: int) -> list[bytes]:
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT key FROM current WHERE lease = ? ORDER BY key", (lease_id,)
            )
        ]


def _compare_row(c: rpc_pb2.Compare, row: Row | None) -> bool:
    target = c.target
    if target == rpc_pb2.Compare.VALUE:
        have_b = row[5] if row else b""
        want_b = c.value
        result = (have_b > want_b) - (have_b < want_b)
    else:
        if target == rpc_pb2.Compare.VERSION:
            have, want = (row[3] if row else 0), c.version
        elif target == rpc_pb2.Compare.CREATE:
            have, want = (row[1] if row else 0), c.create_revision
        elif target == rpc_pb2.Compare.MOD:
            have, want = (row[2] if row else 0), c.mod_revision
        else:
            have, want = (row[4] if row else 0), c.lease
        result = (have > want) - (have < want)
    op = c.result
    if op == rpc_pb2.Compare.EQUAL:
        return result == 0
    if op == rpc_pb2.Compare.NOT_EQUAL:
        return result != 0
    if op == rpc_pb2.Compare.GREATER:
        return result > 0
    if op == rpc_pb2.Compare.LESS:
        return result < 0
    return True


# ---------------------------------------------------------------- writing


class KVWriter:
    """Applies write ops inside the writer's open SQLite transaction.

    Owns the authoritative revision, compaction revision and set of lease IDs;
    used only from the writer thread. Every op validates fully before it
    mutates anything, so a rejected op leaves the transaction untouched and the
    other ops of the batch commit normally.
    """

    def __init__(
        self, conn: sqlite3.Connection, *, revision: int, compact_revision: int, leases: set[int]
    ) -> None:
        self.conn = conn
        self.reader = KVReader(conn)
        self.rev = revision
        self.compact_rev = compact_revision
        self.lease_ids = leases
        self._sub = 0
        self._events: list[Event] = []
        self._lease_undo: list[tuple[bool, int]] = []

    # -- batch bookkeeping (called by the writer around a batch)

    def begin_batch(self) -> tuple[int, int]:
        self._lease_undo.clear()
        return self.rev, self.compact_rev

    def rollback_batch(self, saved: tuple[int, int]) -> None:
        self.rev, self.compact_rev = saved
        for added, lease_id in reversed(self._lease_undo):
            if added:
                self.lease_ids.discard(lease_id)
            else:
                self.lease_ids.add(lease_id)
        self._lease_undo.clear()

    def end_batch(self, saved: tuple[int, int]) -> None:
        if self.rev != saved[0]:
            self.conn.execute("UPDATE meta SET value = ? WHERE name = 'rev'", (self.rev,))
        if self.compact_rev != saved[1]:
            self.conn.execute(
                "UPDATE meta SET value = ? WHERE name = 'compact'", (self.compact_rev,)
            )

    # -- dispatch

    def apply(self, op: WriteOp) -> WriteResult:
        self._sub = 0
        self._events = []
        if isinstance(op, rpc_pb2.PutRequest):
            self._check_put(op)
            put = self._put(op)
            return self._finish(put)
        if isinstance(op, rpc_pb2.DeleteRangeRequest):
            return self._finish(self._delete(op))
        if isinstance(op, rpc_pb2.TxnRequest):
            return self._finish(self._txn(op))
        if isinstance(op, rpc_pb2.CompactionRequest):
            return WriteResult(self._compact(op.revision))
        if isinstance(op, LeaseGrant):
            return WriteResult(self._grant(op))
        return self._finish(self._revoke(op.id))

    def _finish(self, response: object) -> WriteResult:
        if not self._events:
            return WriteResult(response)
        self.rev += 1
        return WriteResult(response, RevisionEvents(self.rev, self._events))

    @property
    def _next_rev(self) -> int:
        return self.rev + 1

    # -- put

    def _check_put(self, req: rpc_pb2.PutRequest) -> None:
        if (req.ignore_value or req.ignore_lease) and not self.reader.latest(req.key):
            raise KeyNotFound()
        if req.lease and req.lease not in self.lease_ids:
            raise LeaseNotFound()

    def _put(self, req: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
        key = req.key
        rev = self._next_rev
        prev = self.conn.execute(
            f"SELECT {KV_COLUMNS} FROM current WHERE key = ?", (key,)
        ).fetchone()
        value = prev[5] if req.ignore_value and prev else req.value
        lease = prev[4] if req.ignore_lease and prev else req.lease
        if prev:
            create_rev, version = prev[1], prev[3] + 1
        else:
            create_rev, version = rev, 1
        self.conn.execute(
            "INSERT INTO kv (rev, sub, key, create_rev, version, lease, value, deleted)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
            (rev, self._sub, key, create_rev, version, lease, value),
        )
        self.conn.execute(
            "INSERT OR REPLACE INTO current (key, create_rev, mod_rev, version, lease, value)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (key, create_rev, rev, version, lease, value),
        )
        self._sub += 1
        kv = KeyValue(
            key=key,
            create_revision=create_rev,
            mod_revision=rev,
            version=version,
            lease=lease,
            value=value,
        )
        resp = rpc_pb2.PutResponse()
        resp.header.revision = rev
        if prev:
            prev_kv = row_to_kv(prev)
            self._events.append(Event(type=PUT, kv=kv, prev_kv=prev_kv))
            if req.prev_kv:
                resp.prev_kv.CopyFrom(prev_kv)
        else:
            self._events.append(Event(type=PUT, kv=kv))
        return resp

    # -- delete

    def _delete_rows(self, rows: list[Row]) -> None:
        rev = self._next_rev
        for row in rows:
            self.conn.execute(
                "INSERT INTO kv (rev, sub, key, create_rev, version, lease, value, deleted)"
                " VALUES (?, ?, ?, 0, 0, 0, x'', 1)",
                (rev, self._sub, row[0]),
            )
            self._sub += 1
            self._events.append(
                Event(
                    type=DELETE,
                    kv=KeyValue(key=row[0], mod_revision=rev),
                    prev_kv=row_to_kv(row),
                )
            )

    def _delete(self, req: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
        rows = self.reader.latest(req.key, req.range_end)
        resp = rpc_pb2.DeleteRangeResponse(deleted=len(rows))
        if rows:
            self._delete_rows(rows)
            clause, params = key_clause(req.key, req.range_end)
            self.conn.execute(f"DELETE FROM current WHERE {clause}", params)
            if req.prev_kv:
                resp.prev_kvs.extend([row_to_kv(r) for r in rows])
        resp.header.revision = self._next_rev if self._events else self.rev
        return resp

    # -- txn

    def _txn(self, req: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        if is_txn_readonly(req):
            return self.reader.readonly_txn(req, current_rev=self.rev, compact_rev=self.compact_rev)
        path = self.reader.txn_path(req)
        self._check_txn_puts(req, path)
        self.reader.check_ranges(req, path, current_rev=self.rev, compact_rev=self.compact_rev)
        resp = self._apply_txn(req, path)
        resp.header.revision = self._next_rev if self._events else self.rev
        return resp

    def _check_txn_puts(self, req: rpc_pb2.TxnRequest, path: TxnPath) -> None:
        nested = iter(path.nested)
        for op in req.success if path.succeeded else req.failure:
            kind = op.WhichOneof("request")
            if kind == "request_put":
                self._check_put(op.request_put)
            elif kind == "request_txn":
                self._check_txn_puts(op.request_txn, next(nested))

    def _apply_txn(self, req: rpc_pb2.TxnRequest, path: TxnPath) -> rpc_pb2.TxnResponse:
        resp = rpc_pb2.TxnResponse(succeeded=path.succeeded)
        nested = iter(path.nested)
        for op in req.success if path.succeeded else req.failure:
            out = resp.responses.add()
            kind = op.WhichOneof("request")
            if kind == "request_range":
                current = self._next_rev if self._events else self.rev
                out.response_range.CopyFrom(
                    self.reader.range(
                        op.request_range, current_rev=current, compact_rev=self.compact_rev
                    )
                )
            elif kind == "request_put":
                out.response_put.CopyFrom(self._put(op.request_put))
            elif kind == "request_delete_range":
                out.response_delete_range.CopyFrom(self._delete(op.request_delete_range))
            else:
                inner = self._apply_txn(op.request_txn, next(nested))
                inner.header.SetInParent()
                out.response_txn.CopyFrom(inner)
        return resp

    # -- compaction

    def _compact(self, revision: int) -> rpc_pb2.CompactionResponse:
        if revision <= self.compact_rev:
            raise Compacted()
        if revision > self.rev:
            raise FutureRevision()
        self.conn.execute(
            "DELETE FROM kv WHERE rev <= :c AND (deleted = 1 OR EXISTS ("
            " SELECT 1 FROM kv AS n WHERE n.key = kv.key AND n.rev > kv.rev AND n.rev <= :c))",
            {"c": revision},
        )
        self.compact_rev = revision
        resp = rpc_pb2.CompactionResponse()
        resp.header.revision = self.rev
        return resp

    # -- leases

    def _grant(self, op: LeaseGrant) -> rpc_pb2.LeaseGrantResponse:
        if op.id in self.lease_ids:
            raise LeaseExists()
        self.conn.execute("INSERT INTO lease (id, ttl) VALUES (?, ?)", (op.id, op.ttl))
        self.lease_ids.add(op.id)
        self._lease_undo.append((True, op.id))
        resp = rpc_pb2.LeaseGrantResponse(ID=op.id, TTL=op.ttl)
        resp.header.revision = self.rev
        return resp

    def _revoke(self, lease_id: int) -> rpc_pb2.LeaseRevokeResponse:
        if lease_id not in self.lease_ids:
            raise LeaseNotFound()
        rows = self.conn.execute(
            f"SELECT {KV_COLUMNS} FROM current WHERE lease = ? ORDER BY key", (lease_id,)
        ).fetchall()
        if rows:
            self._delete_rows(rows)
            self.conn.execute("DELETE FROM current WHERE lease = ?", (lease_id,))
        self.conn.execute("DELETE FROM lease WHERE id = ?", (lease_id,))
        self.lease_ids.discard(lease_id)
        self._lease_undo.append((False, lease_id))
        resp = rpc_pb2.LeaseRevokeResponse()
        resp.header.revision = self._next_rev if self._events else self.rev
        return resp
