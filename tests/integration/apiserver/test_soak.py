"""A soak of a real apiserver on a kemu store (loopback, `--no-fsync`, every apiserver limit
at its default): 10,000 ConfigMap writes (a create and then updates of each object, spread
over namespaces, from several concurrent kemu.client.aio writers, each its own client by
bearer token) while watchers drop their stream every few dozen events, 1,000 times in all,
and resume from the last resourceVersion they saw (listing again on Gone).

Every watcher must see every write exactly once and in order per object (no loss, no
repeat; a watcher that had to relist may skip what the relist covered, never repeat), and
the final list must match the writers' last results. Counts and timing are printed (-s).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from kemu.api.v1 import api_pb2
from kemu.client.aio import AsyncClient
from kemu.client.errors import Gone, Unavailable
from tests.support import processes

pytestmark = pytest.mark.integration

WRITES = 10_000
RECONNECTS = 1_000
NAMESPACES = 5
OBJECTS = 200  # WRITES / OBJECTS writes each: one create, the rest updates
WRITERS = 8
WATCHERS = 4
EVERY = WRITES * WATCHERS // RECONNECTS - 1  # events a watcher reads before it drops
SELECTOR = "soak=yes"
DEADLINE = 240.0  # a hang fails here rather than at the suite's timeout

Key = str  # namespace/name


@dataclass
class Watcher:
    """What one watcher has seen: per object the resourceVersions, in order."""

    seen: dict[Key, list[int]] = field(default_factory=lambda: defaultdict(list))
    types: dict[Key, list[int]] = field(default_factory=lambda: defaultdict(list))
    rv: int = 0
    streams: int = 0
    relists: int = 0
    events: int = 0

    def record(self, ev_type: int, obj: api_pb2.Object) -> None:
        meta = obj.config_map.metadata
        rv = int(meta.resource_version)
        key = f"{meta.namespace}/{meta.name}"
        self.seen[key].append(rv)
        self.types[key].append(ev_type)
        self.events += 1


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("soak")
    store = processes.kemu_store(tmp)
    store.args.append("--no-fsync")
    api = processes.kemu_apiserver(tmp, store.address)
    with processes.running(store, api):
        yield api.address


def config_map(namespace: str, name: str, n: int) -> api_pb2.Object:
    obj = api_pb2.Object()
    cm = obj.config_map
    cm.metadata.namespace, cm.metadata.name = namespace, name
    cm.metadata.labels["soak"] = "yes"
    cm.data["n"] = str(n)
    return obj


async def write(address: str, index: int, written: dict[Key, list[int]]) -> None:
    """Writer `index`: its share of the objects, one write each per round, each update on
    the object the last write returned (so a lost update would be a Conflict)."""
    mine = [(f"soak-{i % NAMESPACES}", f"cm-{i}") for i in range(index, OBJECTS, WRITERS)]
    last: dict[Key, api_pb2.Object] = {}
    async with AsyncClient(address, token=f"soak-writer-{index}") as client:
        for n in range(WRITES // OBJECTS):
            for namespace, name in mine:
                key = f"{namespace}/{name}"
                if n == 0:
                    obj = await client.create(config_map(namespace, name, n))
                else:
                    obj = last[key]
                    obj.config_map.data["n"] = str(n)
                    obj = await client.update(obj)
                last[key] = obj
                written[key].append(int(obj.config_map.metadata.resource_version))


async def watch(address: str, index: int, w: Watcher) -> None:
    """Watch every soak ConfigMap, dropping the stream after EVERY events and resuming
    from the last resourceVersion; relist on Gone, retry on UNAVAILABLE."""
    async with AsyncClient(address, token=f"soak-watcher-{index}") as client:
        w.rv = int((await client.list("configmaps", label_selector=SELECTOR)).resource_version)
        while True:
            w.streams += 1
            try:
                events = client.watch("configmaps", label_selector=SELECTOR,
                                      resource_version=str(w.rv))
                async with contextlib.aclosing(events):
                    n = 0
                    async for ev in events:
                        if ev.type != api_pb2.WatchEvent.BOOKMARK:
                            w.record(ev.type, ev.object)
                            n += 1
                        w.rv = int(ev.object.config_map.metadata.resource_version)
                        if n >= EVERY:
                            break
            except Gone:
                w.relists += 1
                listed = await client.list("configmaps", label_selector=SELECTOR)
                for obj in listed.items:
                    meta = obj.config_map.metadata
                    key = f"{meta.namespace}/{meta.name}"
                    if not w.seen[key] or w.seen[key][-1] < int(meta.resource_version):
                        w.record(api_pb2.WatchEvent.MODIFIED, obj)
                w.rv = int(listed.resource_version)
            except Unavailable:
                await asyncio.sleep(0.1)


async def soak(address: str) -> tuple[dict[Key, list[int]], list[Watcher], float, float,
                                      api_pb2.ListResponse]:
    async with AsyncClient(address) as client:
        for i in range(NAMESPACES):
            ns = api_pb2.Object()
            ns.namespace.metadata.name = f"soak-{i}"
            await client.create(ns)
    watchers = [Watcher() for _ in range(WATCHERS)]
    tasks = [asyncio.create_task(watch(address, i, w)) for i, w in enumerate(watchers)]
    while any(w.streams == 0 for w in watchers):
        await asyncio.sleep(0.01)
    written: dict[Key, list[int]] = defaultdict(list)
    started = time.monotonic()
    await asyncio.gather(*(write(address, i, written) for i in range(WRITERS)))
    wrote = time.monotonic() - started
    final = max(rv[-1] for rv in written.values())
    while any(w.rv < final for w in watchers) and not any(t.done() for t in tasks):
        await asyncio.sleep(0.05)
    caught_up = time.monotonic() - started
    for t in tasks:
        if t.done():
            t.result()  # a watcher that failed fails the test with its error
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    async with AsyncClient(address) as client:
        listed = await client.list("configmaps", label_selector=SELECTOR)
    return written, watchers, wrote, caught_up, listed


def test_soak_writes_and_watch_reconnects(server: str) -> None:
    written, watchers, wrote, caught_up, listed = asyncio.run(
        asyncio.wait_for(soak(server), DEADLINE))

    assert sum(map(len, written.values())) == WRITES and len(written) == OBJECTS
    streams = sum(w.streams for w in watchers)
    relists = sum(w.relists for w in watchers)
    print(f"\nsoak: {WRITES} writes of {OBJECTS} ConfigMaps in {NAMESPACES} namespaces by "
          f"{WRITERS} writers in {wrote:.1f}s ({WRITES / wrote:.0f}/s); {WATCHERS} watchers "
          f"caught up after {caught_up:.1f}s, {sum(w.events for w in watchers)} events, "
          f"{streams - WATCHERS} reconnects, {relists} relists (store --no-fsync)")
    assert streams - WATCHERS >= RECONNECTS
    for i, w in enumerate(watchers):
        for key, rvs in written.items():
            seen = w.seen[key]
            if w.relists == 0:
                assert seen == rvs, f"watcher {i} on {key}: lost or repeated events"
                assert w.types[key] == [api_pb2.WatchEvent.ADDED] + \
                    [api_pb2.WatchEvent.MODIFIED] * (len(rvs) - 1), f"watcher {i} on {key}"
            else:  # a relist skips what it covers, but never repeats or reorders
                assert seen == sorted(set(seen)) and set(seen) <= set(rvs), \
                    f"watcher {i} on {key}"
                assert seen[-1] == rvs[-1], f"watcher {i} on {key}"
        assert set(w.seen) == set(written), f"watcher {i} saw objects nobody wrote"
    final = {f"{o.config_map.metadata.namespace}/{o.config_map.metadata.name}":
             (int(o.config_map.metadata.resource_version), o.config_map.data["n"])
             for o in listed.items}
    assert final == {key: (rvs[-1], str(len(rvs) - 1)) for key, rvs in written.items()}

