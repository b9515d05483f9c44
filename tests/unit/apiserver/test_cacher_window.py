"""The watch cache over an in-memory store: the age-bounded event window (resumes within
it answered, older ones Gone) and Events watched straight from the store, uncached."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from kemu.api import kinds, labels, manifest, objects
from kemu.api.etcd import kv_pb2, rpc_pb2
from kemu.api.v1 import api_pb2
from kemu.services.apiserver import cacher
from kemu.services.apiserver.cacher import Cacher, Filter, Watcher
from kemu.services.apiserver.errors import Gone
from kemu.services.apiserver.registry import encode
from kemu.services.apiserver.storage import KeyValue

W = api_pb2.WatchEvent
CM = kinds.resolve("configmaps")
EV = kinds.resolve("events")


class FakeStore:
    """etcd's list and watch over a dict and a history of events, every revision kept."""

    def __init__(self) -> None:
        self.revision = 1
        self.kvs: dict[str, kv_pb2.KeyValue] = {}
        self.history: list[kv_pb2.Event] = []
        self.changed = asyncio.Condition()
        self.watches = 0

    async def write(self, key: str, obj: api_pb2.Object | None) -> int:
        self.revision += 1
        before = self.kvs.get(key)
        if obj is None:
            assert before is not None
            del self.kvs[key]
            ev = kv_pb2.Event(type=kv_pb2.Event.DELETE, prev_kv=before, kv=kv_pb2.KeyValue(
                key=key.encode(), mod_revision=self.revision))
        else:
            kv = kv_pb2.KeyValue(key=key.encode(), value=encode(obj), mod_revision=self.revision,
                                 create_revision=before.create_revision if before
                                 else self.revision)
            self.kvs[key] = kv
            ev = kv_pb2.Event(type=kv_pb2.Event.PUT, kv=kv)
            if before is not None:
                ev.prev_kv.CopyFrom(before)
        self.history.append(ev)
        async with self.changed:
            self.changed.notify_all()
        return self.revision

    async def list(self, prefix: str, *, revision: int = 0) -> tuple[list[KeyValue], int]:
        return [KeyValue(k, kv.value, kv.create_revision, kv.mod_revision)
                for k, kv in sorted(self.kvs.items()) if k.startswith(prefix)], self.revision

    async def watch(self, prefix: str, start_revision: int,
                    progress: asyncio.Event | None = None, *,
                    prev_kv: bool = False) -> AsyncIterator[rpc_pb2.WatchResponse]:
        self.watches += 1
        sent = start_revision - 1
        while True:
            batch = [e for e in self.history if e.kv.mod_revision > sent
                     and e.kv.key.decode().startswith(prefix)]
            if batch:
                sent = batch[-1].kv.mod_revision
                resp = rpc_pb2.WatchResponse(events=batch)
                resp.header.revision = self.revision
                if not prev_kv:
                    for e in resp.events:
                        e.ClearField("prev_kv")
                yield resp
            async with self.changed:
                while self.revision <= sent:
                    await self.changed.wait()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def configmap(name: str, app: str = "a") -> api_pb2.Object:
    return manifest.from_dict({"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": name, "namespace": "ns",
                                            "labels": {"app": app}}, "data": {"k": name}})


def event(name: str, reason: str = "Started") -> api_pb2.Object:
    return manifest.from_dict({"apiVersion": "v1", "kind": "Event",
                               "metadata": {"name": name, "namespace": "ns",
                                            "labels": {"app": "a"}},
                               "reason": reason, "message": f"{name} happened",
                               "involvedObject": {"kind": "Pod", "name": name,
                                                  "namespace": "ns"}})


def key(kind: kinds.Kind, name: str) -> str:
    return kind.store_key("ns", name)


async def settle(cache: Cacher, revision: int) -> None:
    async with asyncio.timeout(5):
        while cache.revision < revision:
            await asyncio.sleep(0.01)


async def take(w: Watcher, n: int) -> list[tuple[int, str, str]]:
    """The next n events of a watch as (type, name, resourceVersion)."""
    out: list[tuple[int, str, str]] = []
    async with asyncio.timeout(5):
        for _ in range(n):
            item = await w.queue.get()
            assert isinstance(item, api_pb2.WatchEvent), item
            meta = objects.meta(item.object)
            out.append((item.type, meta.name, meta.resource_version))
    return out


def by_label(app: str) -> Filter:
    return Filter(selector=labels.parse(f"app={app}"))


@pytest.fixture
async def store() -> FakeStore:
    return FakeStore()


async def started(cache: Cacher) -> Cacher:
    cache.start()
    await asyncio.wait_for(cache.ready.wait(), 5)
    return cache


async def test_resume_within_the_fresh_window_is_answered_from_it(store: FakeStore) -> None:
    clock = Clock()
    cache = await started(Cacher(CM, store, capacity=5000, clock=clock))  # type: ignore[arg-type]
    try:
        revs = [await store.write(key(CM, f"c{i}"), configmap(f"c{i}")) for i in range(300)]
        await settle(cache, revs[-1])
        clock.now += 74  # younger than eventFreshDuration: all 300 stay, past the 100
        last = await store.write(key(CM, "late"), configmap("late"))
        await settle(cache, last)
        assert len(cache.events) == 301
        w = await cache.watch(Filter(), str(revs[0]))
        got = await take(w, 300)
        assert [name for _, name, _ in got] == [f"c{i}" for i in range(1, 300)] + ["late"]
        assert [rv for _, _, rv in got] == [str(r) for r in revs[1:]] + [str(last)]
        assert {t for t, _, _ in got} == {W.ADDED}
    finally:
        await cache.stop()


async def test_events_older_than_fresh_leave_the_window_and_resumes_from_them_are_gone(
        store: FakeStore) -> None:
    clock = Clock()
    cache = await started(Cacher(CM, store, capacity=5000, clock=clock))  # type: ignore[arg-type]
    try:
        revs = [await store.write(key(CM, f"c{i}"), configmap(f"c{i}")) for i in range(250)]
        await settle(cache, revs[-1])
        clock.now += cacher.EVENT_FRESH_DURATION + 1
        last = await store.write(key(CM, "c0"), configmap("c0", app="b"))
        await settle(cache, last)
        # Old events go down to the lower bound (100 kept whatever their age).
        assert len(cache.events) == cacher.LOWER_BOUND_CAPACITY
        with pytest.raises(Gone, match="too old resource version"):
            await cache.watch(Filter(), str(revs[100]))
        # A resume inside what is left still sees every later event, decoded from the
        # window's stored form: c0 leaving the app=a selector is DELETED for that watch.
        w = await cache.watch(by_label("a"), str(revs[-2]))
        assert await take(w, 2) == [(W.ADDED, "c249", str(revs[-1])),
                                    (W.DELETED, "c0", str(last))]
    finally:
        await cache.stop()


async def test_capacity_still_caps_the_window(store: FakeStore) -> None:
    cache = await started(Cacher(CM, store, capacity=150, clock=Clock()))  # type: ignore[arg-type]
    try:
        revs = [await store.write(key(CM, f"c{i}"), configmap(f"c{i}")) for i in range(200)]
        await settle(cache, revs[-1])
        assert len(cache.events) == 150
        with pytest.raises(Gone):
            await cache.watch(Filter(), str(revs[10]))
        w = await cache.watch(Filter(), str(revs[-2]))
        assert await take(w, 1) == [(W.ADDED, "c199", str(revs[-1]))]
    finally:
        await cache.stop()


async def test_deletes_in_the_window_carry_the_last_state_at_the_delete_revision(
        store: FakeStore) -> None:
    cache = await started(Cacher(CM, store, clock=Clock()))  # type: ignore[arg-type]
    try:
        start = await store.write(key(CM, "x"), configmap("x"))
        gone = await store.write(key(CM, "x"), None)
        await settle(cache, gone)
        w = await cache.watch(Filter(), str(start - 1))
        events = [await w.queue.get() for _ in range(2)]
        assert all(isinstance(e, api_pb2.WatchEvent) for e in events)
        deleted = events[1]
        assert isinstance(deleted, api_pb2.WatchEvent) and deleted.type == W.DELETED
        assert deleted.object.config_map.data["k"] == "x"
        assert deleted.object.config_map.kind == "ConfigMap"
        assert objects.meta(deleted.object).resource_version == str(gone)
    finally:
        await cache.stop()


async def test_events_are_not_cached_and_each_watch_reads_the_store(store: FakeStore) -> None:
    cache = await started(Cacher(EV, store))  # type: ignore[arg-type]
    try:
        first = await store.write(key(EV, "e1"), event("e1"))
        assert store.watches == 0 and not cache.current and not cache.events
        w = await cache.watch(Filter(namespace="ns"), "")
        assert await take(w, 1) == [(W.ADDED, "e1", str(first))]
        second = await store.write(key(EV, "e2"), event("e2"))
        assert await take(w, 1) == [(W.ADDED, "e2", str(second))]
        assert store.watches == 1 and not cache.current and not cache.events
        assert len(cache.watchers) == 1
        cache.unregister(w)
        assert w.task is not None
        with pytest.raises(asyncio.CancelledError):
            await w.task
        assert not cache.watchers
        watchers, stored = cacher.cache_metrics([cache])
        assert [s.value for s in watchers.samples] == [0]
        assert stored.samples == []  # no object count from a cache that holds nothing
    finally:
        await cache.stop()


async def test_uncached_watch_resumes_and_follows_selectors_with_the_stores_prev_value(
        store: FakeStore) -> None:
    cache = await started(Cacher(EV, store))  # type: ignore[arg-type]
    try:
        before = store.revision
        created = await store.write(key(EV, "e1"), event("e1"))
        relabelled = event("e1", reason="Killing")
        relabelled.event.metadata.labels["app"] = "b"
        moved = await store.write(key(EV, "e1"), relabelled)
        w = await cache.watch(by_label("a"), str(before))
        assert await take(w, 2) == [(W.ADDED, "e1", str(created)),
                                    (W.DELETED, "e1", str(moved))]
        deleted = await store.write(key(EV, "e1"), None)
        everything = await cache.watch(Filter(), str(moved))
        assert await take(everything, 1) == [(W.DELETED, "e1", str(deleted))]
        assert everything.queue.empty()
        bookmark = cache.bookmark(everything)
        assert bookmark.type == W.BOOKMARK and bookmark.object.event.kind == "Event"
        assert objects.meta(bookmark.object).resource_version == str(deleted)
    finally:
        await cache.stop()
