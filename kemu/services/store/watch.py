"""Watchers: live fan-out of committed events and catch-up from history.

Why two modes, as etcd's watchable store: a watcher that starts at an old
revision (or falls behind a slow client) is *unsynced*; a catch-up task reads
its events from the history table in chunks, up to the revision published so
far, and when nothing is left, in the same step and without yielding to the
event loop, moves it to the *synced* set that receives live events. Live
delivery skips revisions below a watcher's next revision. So a watcher never
misses and never repeats an event, however writes interleave with catch-up.

All of this runs on the event loop thread; history reads use the read
connection in one SQLite transaction so the compaction revision they check
matches the rows they read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

from kemu.api.etcd import kv_pb2, rpc_pb2
from kemu.services.store.mvcc import KVReader, RevisionEvents, in_range

log = logging.getLogger(__name__)

Event = kv_pb2.Event
WatchResponse = rpc_pb2.WatchResponse

# Rows read from history per catch-up step.
CATCHUP_CHUNK = 1000
# Value bytes per catch-up response (whole revisions only), to stay well under
# clients' default 4 MiB message limit.
CATCHUP_BYTES = 1 << 20
# Responses queued on one stream before its watchers fall back to catch-up.
STREAM_HIGH_WATER = 1024
COMPACTED_REASON = "etcdserver: mvcc: required revision has been compacted"


@dataclass(eq=False, slots=True)
class Watcher:
    """One watcher on one stream."""

    stream: WatchStream
    id: int
    key: bytes
    range_end: bytes
    next_rev: int
    prev_kv: bool
    no_put: bool
    no_delete: bool
    progress_notify: bool
    synced: bool = False
    active: bool = True
    sent_recently: bool = False

    def wants(self, ev: Event) -> bool:
        if ev.type == kv_pb2.Event.PUT:
            if self.no_put:
                return False
        elif self.no_delete:
            return False
        return in_range(ev.kv.key, self.key, self.range_end)


@dataclass(eq=False)
class WatchStream:
    """One gRPC Watch stream: its watchers and the responses waiting to be sent."""

    hub: WatchHub
    queue: asyncio.Queue[WatchResponse | None] = field(default_factory=asyncio.Queue)
    watchers: dict[int, Watcher] = field(default_factory=dict)
    next_id: int = 0
    progress_pending: bool = False
    _drained: asyncio.Event = field(default_factory=asyncio.Event)

    def send(self, resp: WatchResponse) -> None:
        self.queue.put_nowait(resp)

    @property
    def congested(self) -> bool:
        return self.queue.qsize() >= STREAM_HIGH_WATER

    def sent_one(self) -> None:
        """Called by the sender after each response left the queue."""
        if self.queue.qsize() < STREAM_HIGH_WATER // 2:
            self._drained.set()

    async def wait_writable(self) -> None:
        while self.congested:
            self._drained.clear()
            await self._drained.wait()

    # -- requests from the client

    def create(self, req: rpc_pb2.WatchCreateRequest) -> None:
        self.hub.create(self, req)

    def cancel(self, watch_id: int) -> None:
        w = self.watchers.pop(watch_id, None)
        if w is None:
            return
        self.hub.remove(w)
        resp = WatchResponse(watch_id=watch_id, canceled=True)
        self.hub.fill_header(resp.header, self.hub.published_rev)
        self.send(resp)

    def request_progress(self) -> None:
        if all(w.synced for w in self.watchers.values()):
            self._send_progress()
        else:
            self.progress_pending = True

    def _send_progress(self) -> None:
        self.progress_pending = False
        resp = WatchResponse(watch_id=-1)
        self.hub.fill_header(resp.header, self.hub.published_rev)
        self.send(resp)

    def became_synced(self) -> None:
        if self.progress_pending and all(w.synced for w in self.watchers.values()):
            self._send_progress()

    def close(self) -> None:
        for w in self.watchers.values():
            self.hub.remove(w)
        self.watchers.clear()
        self.queue.put_nowait(None)


class WatchHub:
    """All watchers of the store; fed by the writer after each commit."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        revision: int,
        compact_revision: int,
        fill_header: Callable[[rpc_pb2.ResponseHeader, int], None],
        progress_interval: float = 5.0,
    ) -> None:
        self._conn = conn
        self._reader = KVReader(conn)
        self.published_rev = revision
        self.compact_rev = compact_revision
        self.fill_header = fill_header
        self.progress_interval = progress_interval
        self._synced: dict[Watcher, None] = {}
        self._catchups: set[asyncio.Task[None]] = set()
        self._progress_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._progress_task = asyncio.get_running_loop().create_task(
            self._progress_loop(), name="watch-progress"
        )

    async def close(self) -> None:
        tasks = [*self._catchups]
        if self._progress_task is not None:
            tasks.append(self._progress_task)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    def open_stream(self) -> WatchStream:
        return WatchStream(self)

    @property
    def watcher_count(self) -> int:
        return len(self._synced)

    # -- watcher lifecycle

    def create(self, stream: WatchStream, req: rpc_pb2.WatchCreateRequest) -> None:
        range_end = req.range_end
        error = ""
        watch_id = req.watch_id
        if range_end and range_end != b"\x00" and req.key >= range_end:
            error = "mvcc: watcher range is empty"
        elif watch_id:
            if watch_id in stream.watchers:
                error = "mvcc: duplicate watch ID provided on the WatchStream"
        else:
            while stream.next_id in stream.watchers:
                stream.next_id += 1
            watch_id = stream.next_id
            stream.next_id += 1
        created = WatchResponse(watch_id=-1 if error else watch_id, created=True)
        self.fill_header(created.header, self.published_rev)
        if error:
            created.canceled = True
            created.cancel_reason = error
            stream.send(created)
            return
        filters = set(req.filters)
        start = req.start_revision if req.start_revision > 0 else self.published_rev + 1
        w = Watcher(
            stream=stream,
            id=watch_id,
            key=req.key,
            range_end=range_end,
            next_rev=start,
            prev_kv=req.prev_kv,
            no_put=rpc_pb2.WatchCreateRequest.NOPUT in filters,
            no_delete=rpc_pb2.WatchCreateRequest.NODELETE in filters,
            progress_notify=req.progress_notify,
        )
        stream.watchers[watch_id] = w
        stream.send(created)
        if start > self.published_rev:
            w.synced = True
            self._synced[w] = None
        else:
            self._start_catch_up(w)

    def remove(self, w: Watcher) -> None:
        w.active = False
        self._synced.pop(w, None)

    def _cancel_compacted(self, w: Watcher, compact_rev: int) -> None:
        resp = WatchResponse(
            watch_id=w.id,
            canceled=True,
            compact_revision=compact_rev,
            cancel_reason=COMPACTED_REASON,
        )
        self.fill_header(resp.header, self.published_rev)
        w.stream.send(resp)
        w.stream.watchers.pop(w.id, None)
        self.remove(w)

    # -- live delivery

    def publish(self, changes: list[RevisionEvents], revision: int, compact_revision: int) -> None:
        """Deliver the events of a commit to synced watchers, then advance."""
        self.compact_rev = compact_revision
        if changes and self._synced:
            for w in list(self._synced):
                for batch in changes:
                    if batch.revision < w.next_rev:
                        continue
                    events = [e for e in batch.events if w.wants(e)]
                    if not events:
                        w.next_rev = batch.revision + 1
                        continue
                    if w.stream.congested:
                        # The client is slow: stop buffering; catch up from history later.
                        w.synced = False
                        del self._synced[w]
                        self._start_catch_up(w)
                        break
                    w.next_rev = batch.revision + 1
                    self._send_events(w, events, batch.revision)
        self.published_rev = revision

    def _send_events(self, w: Watcher, events: list[Event], header_rev: int) -> None:
        if not w.prev_kv:
            events = [Event(type=e.type, kv=e.kv) if e.HasField("prev_kv") else e for e in events]
        resp = WatchResponse(watch_id=w.id, events=events)
        self.fill_header(resp.header, header_rev)
        w.sent_recently = True
        w.stream.send(resp)

    # -- catch-up from history

    def _start_catch_up(self, w: Watcher) -> None:
        task = asyncio.get_running_loop().create_task(self._catch_up(w), name=f"watch-{w.id}")
        self._catchups.add(task)
        task.add_done_callback(self._catchups.discard)

    async def _catch_up(self, w: Watcher) -> None:
        try:
            while w.active:
                target = self.published_rev
                if w.next_rev > target:
                    w.synced = True
                    self._synced[w] = None
                    w.stream.became_synced()
                    return
                if w.stream.congested:
                    await w.stream.wait_writable()
                    continue
                compact_rev, events, upto = self._read_history(w, target)
                if w.next_rev < compact_rev:
                    self._cancel_compacted(w, compact_rev)
                    return
                w.next_rev = upto + 1
                if events:
                    self._send_events(w, events, target)
                await asyncio.sleep(0)
        except Exception:
            log.exception("watch catch-up failed: watch_id=%d", w.id)
            w.stream.close()

    def _read_history(self, w: Watcher, target: int) -> tuple[int, list[Event], int]:
        """Events for w from its next revision up to at most target, whole revisions only."""
        conn = self._conn
        conn.execute("BEGIN")
        try:
            (compact_rev,) = conn.execute(
                "SELECT value FROM meta WHERE name = 'compact'"
            ).fetchone()
            if w.next_rev < compact_rev:
                return compact_rev, [], w.next_rev - 1
            rows = self._reader.history(
                w.next_rev, target, w.key, w.range_end, limit=CATCHUP_CHUNK + 1
            )
            upto = target
            if len(rows) > CATCHUP_CHUNK:
                last = rows[-1][0]
                if rows[0][0] == last:  # one huge revision: read it whole
                    rows = self._reader.history(last, last, w.key, w.range_end, limit=-1)
                else:
                    rows = [r for r in rows if r[0] != last]
                    last -= 1
                upto = last
            events: list[Event] = []
            size = 0
            upto_rev = 0  # revision of the previous row: cut only between revisions
            for rev, _sub, key, create_rev, version, lease, value, deleted in rows:
                if size > CATCHUP_BYTES and rev != upto_rev:
                    upto = rev - 1
                    break
                upto_rev = rev
                if deleted:
                    ev = Event(
                        type=kv_pb2.Event.DELETE, kv=kv_pb2.KeyValue(key=key, mod_revision=rev)
                    )
                else:
                    ev = Event(
                        type=kv_pb2.Event.PUT,
                        kv=kv_pb2.KeyValue(
                            key=key,
                            create_revision=create_rev,
                            mod_revision=rev,
                            version=version,
                            lease=lease,
                            value=value,
                        ),
                    )
                if not w.wants(ev):
                    continue
                if w.prev_kv:
                    prev = self._reader.previous(key, rev)
                    if prev is not None:
                        ev.prev_kv.CopyFrom(prev)
                        size += len(prev.value)
                size += len(key) + len(value)
                events.append(ev)
            return compact_rev, events, upto
        finally:
            conn.execute("COMMIT")

    # -- progress notifications

    async def _progress_loop(self) -> None:
        while True:
            await asyncio.sleep(self.progress_interval)
            for w in list(self._synced):
                if w.progress_notify and not w.sent_recently:
                    resp = WatchResponse(watch_id=w.id)
                    self.fill_header(resp.header, self.published_rev)
                    w.stream.send(resp)
                w.sent_recently = False
