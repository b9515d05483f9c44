"""Lease expiry with a fake clock, and watchers, without gRPC."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kemu.api.etcd import kv_pb2, rpc_pb2
from kemu.services.store.clock import FakeClock
from kemu.services.store.errors import LeaseExists, LeaseNotFound, LeaseTTLTooLarge
from kemu.services.store.lease import MIN_TTL, Lessor
from kemu.services.store.mvcc import prefix_end
from kemu.services.store.store import Store
from kemu.services.store.watch import WatchStream

PUT, DELETE = kv_pb2.Event.PUT, kv_pb2.Event.DELETE


# ------------------------------------------------------------------ lessor


def test_lessor_expiry_and_renewal() -> None:
    clock = FakeClock()
    lessor = Lessor(clock)
    lessor.add(1, 10)
    lessor.add(2, 5)
    clock.advance(4)
    assert lessor.renew(2) == 5  # now expires at +9
    assert lessor.remaining(lessor.get(1)) == 6  # type: ignore[arg-type]
    clock.advance(4.5)  # t=8.5
    assert lessor.expired() == []
    clock.advance(1.5)  # t=10: lease 1 expires, lease 2 (renewed at 4, so due at 9) too
    assert sorted(lessor.expired()) == [1, 2]
    assert lessor.get(1) is None, "expired leases are not visible while being revoked"
    assert lessor.renew(1) == 0
    assert lessor.expired() == [], "never handed out twice"
    lessor.retry(1)
    assert lessor.expired() == [1]
    lessor.remove(1)
    lessor.remove(2)
    assert lessor.ids() == []


async def test_grant_applies_minimum_and_maximum(store: Store) -> None:
    resp = await store.lease_grant(1)
    assert resp.TTL == MIN_TTL
    assert resp.ID > 0
    with pytest.raises(LeaseTTLTooLarge):
        await store.lease_grant(10**10)
    await store.lease_grant(30, 77)
    with pytest.raises(LeaseExists):
        await store.lease_grant(30, 77)


async def test_lease_expiry_deletes_keys_at_a_new_revision(store: Store, clock: FakeClock) -> None:
    lease = (await store.lease_grant(10)).ID
    await store.put(rpc_pb2.PutRequest(key=b"a", value=b"1", lease=lease))
    await store.put(rpc_pb2.PutRequest(key=b"b", value=b"1", lease=lease))
    await store.put(rpc_pb2.PutRequest(key=b"c", value=b"1"))
    info = store.lease_time_to_live(lease, keys=True)
    assert info is not None
    assert (info.ttl, info.granted_ttl, info.keys) == (10, 10, [b"a", b"b"])
    stream = watch(store, b"\x00", b"\x00")
    clock.advance(9)
    assert await store.revoke_expired() == 0
    assert store.lease_renew(lease) == 10
    clock.advance(10)
    assert await store.revoke_expired() == 1
    assert store.revision == 5, "one revision for the whole revocation"
    resp = await next_events(stream)
    assert [(e.type, e.kv.key, e.kv.mod_revision) for e in resp.events] == [
        (DELETE, b"a", 5),
        (DELETE, b"b", 5),
    ]
    assert store.lease_time_to_live(lease, keys=False) is None
    assert store.lease_renew(lease) == 0
    assert [kv.key for kv in store.latest_kvs(b"\x00", b"\x00")] == [b"c"]
    with pytest.raises(LeaseNotFound):
        await store.lease_revoke(lease)


async def test_revoke_without_keys_does_not_bump(store: Store) -> None:
    lease = (await store.lease_grant(10)).ID
    await store.lease_revoke(lease)
    assert store.revision == 1
    assert store.lease_ids() == []


async def test_put_can_keep_or_move_its_lease(store: Store) -> None:
    l1 = (await store.lease_grant(10)).ID
    l2 = (await store.lease_grant(10)).ID
    await store.put(rpc_pb2.PutRequest(key=b"k", value=b"1", lease=l1))
    await store.put(rpc_pb2.PutRequest(key=b"k", value=b"2", ignore_lease=True))
    assert store.range(rpc_pb2.RangeRequest(key=b"k")).kvs[0].lease == l1
    await store.put(rpc_pb2.PutRequest(key=b"k", value=b"3", lease=l2))
    await store.lease_revoke(l1)
    assert store.range(rpc_pb2.RangeRequest(key=b"k")).kvs[0].value == b"3"


# ------------------------------------------------------------------ watch


def watch(store: Store, key: bytes, range_end: bytes = b"", **kw: object) -> WatchStream:
    assert store.hub is not None
    stream = store.hub.open_stream()
    stream.create(rpc_pb2.WatchCreateRequest(key=key, range_end=range_end, **kw))  # type: ignore[arg-type]
    created = stream.queue.get_nowait()
    assert created is not None and created.created
    return stream


async def next_events(stream: WatchStream, timeout: float = 5.0) -> rpc_pb2.WatchResponse:
    resp = await asyncio.wait_for(stream.queue.get(), timeout)
    assert resp is not None
    return resp


async def collect(stream: WatchStream, n: int) -> list[tuple[int, bytes, int]]:
    out: list[tuple[int, bytes, int]] = []
    while len(out) < n:
        resp = await next_events(stream)
        revs = {e.kv.mod_revision for e in resp.events}
        out += [(e.type, e.kv.key, e.kv.mod_revision) for e in resp.events]
        assert revs, "no empty event responses expected here"
    return out


async def test_watch_live_prefix_filters_and_prev_kv(store: Store) -> None:
    s_all = watch(store, b"p/", prefix_end(b"p/"))
    s_noput = watch(store, b"p/", prefix_end(b"p/"), filters=[0], prev_kv=True)
    await store.put(rpc_pb2.PutRequest(key=b"p/a", value=b"1"))
    await store.put(rpc_pb2.PutRequest(key=b"q", value=b"1"))
    await store.put(rpc_pb2.PutRequest(key=b"p/a", value=b"2"))
    await store.delete_range(rpc_pb2.DeleteRangeRequest(key=b"p/a"))
    assert await collect(s_all, 3) == [(PUT, b"p/a", 2), (PUT, b"p/a", 4), (DELETE, b"p/a", 5)]
    resp = await next_events(s_noput)
    assert [(e.type, e.prev_kv.value) for e in resp.events] == [(DELETE, b"2")]
    plain = [e for e in (await collect_all(s_all))]
    assert plain == []


async def collect_all(stream: WatchStream) -> list[rpc_pb2.WatchResponse]:
    out = []
    while not stream.queue.empty():
        item = stream.queue.get_nowait()
        assert item is not None
        out.append(item)
    return out


async def test_txn_events_come_in_one_response(store: Store) -> None:
    s = watch(store, b"\x00", b"\x00")
    await store.txn(
        rpc_pb2.TxnRequest(
            success=[
                rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"x", value=b"1")),
                rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"y", value=b"1")),
            ]
        )
    )
    resp = await next_events(s)
    assert [(e.kv.key, e.kv.mod_revision) for e in resp.events] == [(b"x", 2), (b"y", 2)]
    assert resp.header.revision == 2


async def test_watch_from_old_revision_during_writes_never_misses_or_repeats(
    store: Store,
) -> None:
    for i in range(1500):
        await store.put(rpc_pb2.PutRequest(key=b"k%d" % (i % 7), value=b"%d" % i))
    s = watch(store, b"k", prefix_end(b"k"), start_revision=2)
    writer = asyncio.ensure_future(
        asyncio.gather(
            *(store.put(rpc_pb2.PutRequest(key=b"k%d" % i, value=b"live")) for i in range(500))
        )
    )
    seen: list[int] = []
    while len(seen) < 2000:
        resp = await next_events(s)
        revs = sorted({e.kv.mod_revision for e in resp.events})
        seen += [e.kv.mod_revision for e in resp.events]
        assert revs == sorted(revs)
    await writer
    assert seen == list(range(2, 2002))


async def test_watch_compacted_start_is_created_then_canceled(store: Store) -> None:
    for i in range(5):
        await store.put(rpc_pb2.PutRequest(key=b"k", value=b"%d" % i))
    await store.compact(rpc_pb2.CompactionRequest(revision=4))
    s = watch(store, b"k", start_revision=2)
    resp = await next_events(s)
    assert resp.canceled
    assert resp.compact_revision == 4
    assert "compacted" in resp.cancel_reason


async def test_watch_ids_cancel_and_progress(store: Store) -> None:
    assert store.hub is not None
    stream = store.hub.open_stream()
    stream.create(rpc_pb2.WatchCreateRequest(key=b"a"))
    stream.create(rpc_pb2.WatchCreateRequest(key=b"b", watch_id=7))
    stream.create(rpc_pb2.WatchCreateRequest(key=b"c", watch_id=7))
    first, second, dup = (stream.queue.get_nowait() for _ in range(3))
    assert first is not None and (first.created, first.watch_id) == (True, 0)
    assert second is not None and (second.created, second.watch_id) == (True, 7)
    assert dup is not None and dup.canceled and dup.watch_id == -1
    stream.cancel(0)
    canceled = stream.queue.get_nowait()
    assert canceled is not None and canceled.canceled and canceled.watch_id == 0
    await store.put(rpc_pb2.PutRequest(key=b"a", value=b"1"))
    stream.request_progress()
    progress = stream.queue.get_nowait()
    assert progress is not None
    assert (progress.watch_id, progress.header.revision, list(progress.events)) == (-1, 2, [])
    stream.close()


async def test_catch_up_splits_large_history_between_revisions(store: Store) -> None:
    big = b"x" * 100_000
    for i in range(30):
        await store.put(rpc_pb2.PutRequest(key=b"big%d" % i, value=big))
    s = watch(store, b"big", prefix_end(b"big"), start_revision=2)
    seen: list[int] = []
    responses = 0
    while len(seen) < 30:
        resp = await next_events(s)
        responses += 1
        assert sum(len(e.kv.value) for e in resp.events) <= 1_200_000
        seen += [e.kv.mod_revision for e in resp.events]
    assert seen == list(range(2, 32))
    assert responses > 1


async def test_progress_notify_reaches_idle_watchers(tmp_path: Path) -> None:
    s = Store(tmp_path / "d", fsync=False, progress_interval=0.05)
    await s.start()
    try:
        stream = watch(s, b"k", progress_notify=True)
        quiet = watch(s, b"k")
        await s.put(rpc_pb2.PutRequest(key=b"other", value=b"1"))
        resp = await next_events(stream)
        assert (resp.watch_id, list(resp.events), resp.header.revision) == (0, [], 2)
        assert quiet.queue.empty()
    finally:
        await s.close()


async def test_slow_watcher_falls_back_to_history_without_gaps(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kemu.services.store.watch as watch_mod

    monkeypatch.setattr(watch_mod, "STREAM_HIGH_WATER", 4)
    s = watch(store, b"k", prefix_end(b"k"))
    for i in range(50):  # nobody drains the stream meanwhile
        await store.put(rpc_pb2.PutRequest(key=b"k%d" % (i % 3), value=b"%d" % i))
    assert s.queue.qsize() <= 5, "a stalled stream stops buffering"
    seen: list[int] = []
    while len(seen) < 50:
        resp = await next_events(s)
        s.sent_one()
        seen += [e.kv.mod_revision for e in resp.events]
    assert seen == list(range(2, 52))
    await store.put(rpc_pb2.PutRequest(key=b"k0", value=b"live"))
    resp = await next_events(s)
    assert [e.kv.mod_revision for e in resp.events] == [52]
