"""The watch cache: one store watch per resource type, fanned out to every client watch.

As Kubernetes' cacher (staging/.../storage/cacher): the cache lists the resource once,
then watches the store from the next revision. It keeps the current objects and a
bounded window of recent events. A client watch that resumes from resourceVersion R gets
every buffered event after R, then live events, with no gap and no repeat, because the
catch-up read and the registration happen in one step of the event loop, and events are
dispatched to watchers in the same step that records them. A resourceVersion older than
the window is Gone (the client lists again), as with Kubernetes' 410.

The window is bounded by age, as Kubernetes' (eventFreshDuration): an event stays while it
is younger than `fresh` seconds (75) or while fewer than 100 remain, and never more than
`capacity` (`--watch-cache-size`) stay. A resume within the last 75 s is answered from the
window; an older one is Gone once later events pushed it out. The window keeps each change
in the store's serialized form (a decoded pod weighs about 7 times its bytes) and decodes
it only for a watch that resumes; live events are sent from the decoded objects at hand.

Events are not cached (kube-apiserver's DefaultWatchCacheSizes, "events": 0): they are
many and short-lived, and few watch them. Each Event watch is its own store watch, and
Event lists go to the store as every list here does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from kemu.api import labels, objects
from kemu.api.kinds import Kind
from kemu.api.v1 import api_pb2
from kemu.services.apiserver import fields
from kemu.services.apiserver.encryption import TransformError
from kemu.services.apiserver.errors import APIError, Gone, Unavailable
from kemu.services.apiserver.registry import decode
from kemu.services.apiserver.storage import KeyValue, Storage
from kemu.services.apiserver.stored import Raw, StoredObjects, decode_raw

log = logging.getLogger(__name__)
# Kinds whose watches go to the store directly (kube-apiserver's DefaultWatchCacheSizes).
UNCACHED = frozenset({"events"})
EVENT_FRESH_DURATION = 75.0  # seconds: kube-apiserver's eventFreshDuration
LOWER_BOUND_CAPACITY = 100  # events kept whatever their age (the watch cache's lower bound)
WatchEvent = api_pb2.WatchEvent
ADDED, MODIFIED, DELETED, BOOKMARK = (WatchEvent.ADDED, WatchEvent.MODIFIED, WatchEvent.DELETED,
                                      WatchEvent.BOOKMARK)


class Timeout(APIError):
    """The cache did not reach the requested resourceVersion in time."""


class WatcherOverflow(APIError):
    """A client watch fell too far behind and was closed; the client should resume."""


class Change:
    """One store event for one object, with the object before it (None when created).

    The object before is decoded only when a watch's filter asks for it (a label or field
    selector): a watch of everything, or of a namespace, needs only the object after."""

    __slots__ = ("_prev", "_prev_raw", "key", "obj", "revision", "type")

    def __init__(self, revision: int, type: int, obj: api_pb2.Object,
                 prev: api_pb2.Object | None = None, *, key: str = "",
                 prev_raw: Raw | None = None) -> None:
        self.revision, self.type, self.obj, self.key = revision, type, obj, key
        self._prev, self._prev_raw = prev, prev_raw

    @property
    def prev(self) -> api_pb2.Object | None:
        if self._prev is None and self._prev_raw is not None:
            self._prev = decode_raw(self.key, self._prev_raw)
        return self._prev


@dataclass(frozen=True, slots=True)
class Recorded:
    """One change in the window, in the store's form: the object's stored bytes after it
    (DELETED: before it) and the stored bytes and revision of the object before it."""

    revision: int
    type: int
    key: str
    value: bytes
    prev: Raw | None
    at: float  # when the cache recorded it (monotonic seconds)

    def change(self) -> Change:
        """The decoded change, as live watchers were sent it."""
        obj = decode(KeyValue(self.key, self.value, 0, self.revision))
        return Change(self.revision, self.type, obj, key=self.key, prev_raw=self.prev)


@dataclass(eq=False)
class Filter:
    """What one client watch wants to see."""

    namespace: str = ""
    selector: labels.Selector = labels.EVERYTHING
    field_reqs: list[fields.FieldRequirement] = field(default_factory=list)

    def matches(self, obj: api_pb2.Object | None) -> bool:
        if obj is None:
            return False
        inner = objects.unwrap(obj)
        meta = inner.metadata
        return ((not self.namespace or meta.namespace == self.namespace)
                and self.selector.matches(meta.labels) and fields.matches(self.field_reqs, inner))

    def translate(self, change: Change) -> int | None:
        """The event type this watch sees for a change, or None to skip it (as Kubernetes:
        an object that stops matching is DELETED, one that starts matching is ADDED)."""
        if not self.field_reqs and self.selector.empty():
            # Only the namespace, which the object before shares (same key): the change
            # as it is, without decoding the object before.
            if self.namespace and objects.meta(change.obj).namespace != self.namespace:
                return None
            return change.type
        now_ok = change.type != DELETED and self.matches(change.obj)
        was_ok = self.matches(change.prev)
        if change.type == DELETED:
            return DELETED if was_ok else None
        if now_ok:
            return change.type if was_ok or change.type == ADDED else ADDED
        return DELETED if was_ok else None


@dataclass(eq=False)
class Watcher:
    """One client watch: a filter and a queue of events to send."""

    filter: Filter
    limit: int
    queue: asyncio.Queue[api_pb2.WatchEvent | APIError] = field(default_factory=asyncio.Queue)
    closed: bool = False
    # An uncached kind's watch: its own store watch, and the revision it has sent up to.
    task: asyncio.Task[None] | None = None
    revision: int = 0

    def offer(self, event: api_pb2.WatchEvent) -> None:
        if self.closed:
            return
        if self.queue.qsize() >= self.limit:
            self.close(WatcherOverflow("watch closed: the client is too slow to keep up; "
                                       "resume from the last resourceVersion received"))
            return
        self.queue.put_nowait(event)

    def close(self, error: APIError) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(error)


class Cacher:
    """The watch cache of one resource type (for an UNCACHED kind: the door to per-watch
    store watches, holding nothing)."""

    def __init__(self, kind: Kind, storage: Storage, *, capacity: int = 5000,
                 watcher_queue: int = 100_000, fresh: float = EVENT_FRESH_DURATION,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.kind = kind
        self.storage = storage
        self.cached = kind.plural not in UNCACHED
        self.capacity = capacity
        self.fresh = fresh
        self.clock = clock
        self.watcher_queue = watcher_queue
        # Every object, as stored bytes (see stored.py); a window entry refers to the same
        # bytes objects, not copies.
        self.current = StoredObjects()
        self.revision = 0  # the cache holds every change up to this store revision
        self.oldest = 0  # a watch may resume from any revision >= this
        self.events: deque[Recorded] = deque()
        self.watchers: set[Watcher] = set()
        self.ready = asyncio.Event()
        # Set (and replaced) each time the cache advances; waiters hold the one they saw.
        self._advanced = asyncio.Event()
        self._want_progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Why the cache cannot be filled (a value it cannot decrypt): client watches fail
        # with it, and the apiserver still serves everything else.
        self.error: TransformError | None = None
        self.stopped = False

    def start(self) -> None:
        if not self.cached:
            self.ready.set()
            return
        self._task = asyncio.create_task(self._run(), name=f"cacher-{self.kind.plural}")

    async def stop(self) -> None:
        """End every client watch with UNAVAILABLE (after the events already queued for
        it) and refuse new ones: the apiserver is draining."""
        self.stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for w in list(self.watchers):
            self._cancel_direct(w)
            w.close(Unavailable("apiserver is shutting down"))

    # ---- the store side ----------------------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.1
        relist = True
        while True:
            try:
                if relist:
                    kvs, rev = await self.storage.list(self.kind.store_prefix())
                    self._reset(kvs, rev)
                    relist = False
                async for resp in self.storage.watch(self.kind.store_prefix(), self.revision + 1,
                                                     self._want_progress):
                    self._receive(resp)
                    backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Gone:
                log.warning("watch cache %s: store compacted past us; relisting", self.kind.plural)
                relist = True
            except TransformError as e:
                log.error("watch cache %s: %s; retrying in %.1fs", self.kind.plural, e, backoff)
                self._fail(e)
                relist = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception as e:  # the store is down or restarting: retry
                log.warning("watch cache %s: %s; retrying in %.1fs", self.kind.plural, e, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _fail(self, error: TransformError) -> None:
        self.error = error
        for w in list(self.watchers):
            w.close(error)
        self.watchers.clear()
        self.ready.set()

    def _reset(self, kvs: list[KeyValue], revision: int) -> None:
        first = not self.ready.is_set()
        self.error = None
        self.current = StoredObjects({kv.key: (kv.value, kv.mod_revision) for kv in kvs})
        self.events.clear()
        self.revision = self.oldest = revision
        if not first:
            for w in list(self.watchers):
                w.close(Gone("watch cache relisted; list again"))
            self.watchers.clear()
        self.ready.set()
        self._notify()

    def _receive(self, resp: object) -> None:
        events = getattr(resp, "events")  # noqa: B009 - etcd WatchResponse
        header_rev = getattr(resp, "header").revision  # noqa: B009
        if not events:
            # A progress notification: the stream has sent everything up to header_rev.
            self._trim()
            if header_rev > self.revision:
                self.revision = header_rev
                self._notify()
            return
        now = self.clock()
        raw = self.current.raw
        for ev in events:
            key = ev.kv.key.decode()
            raw_prev = raw.get(key)
            change = _change_of(ev, key, raw_prev)
            if change is None:
                continue
            rev = change.revision
            if change.type == DELETED:
                del raw[key]
                value = raw_prev[0] if raw_prev is not None else b""
            else:
                value = ev.kv.value
                raw[key] = (value, rev)
            self._record(change, Recorded(rev, change.type, key, value, raw_prev, now))
            self.revision = max(self.revision, rev)
        self._notify()

    def _trim(self) -> None:
        """Drop the window's oldest events: beyond `capacity`, or older than `fresh` while
        more than the lower bound remain (Kubernetes' eventFreshDuration)."""
        now = self.clock()
        keep = min(LOWER_BOUND_CAPACITY, self.capacity)
        events = self.events
        while events and (len(events) > self.capacity or
                          (len(events) > keep and now - events[0].at > self.fresh)):
            self.oldest = events.popleft().revision

    def _record(self, change: Change, recorded: Recorded) -> None:
        self.events.append(recorded)
        self._trim()
        prepared: dict[int, api_pb2.WatchEvent] = {}
        for w in list(self.watchers):
            t = w.filter.translate(change)
            if t is None:
                continue
            ev = prepared.get(t)
            if ev is None:
                ev = prepared[t] = WatchEvent(type=t, object=change.obj)  # type: ignore[arg-type]
            w.offer(ev)
            if w.closed:
                self.watchers.discard(w)

    def _notify(self) -> None:
        """Wake whoever waits for the cache to advance: no task per store response."""
        self._advanced.set()
        self._advanced = asyncio.Event()

    async def _wait_for(self, revision: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.revision < revision:
            self._want_progress.set()
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout(f"Too large resource version: {revision}, current: {self.revision}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._advanced.wait(), timeout=min(left, 0.5))

    # ---- the client side ---------------------------------------------------------------

    async def watch(self, flt: Filter, resource_version: str, *,
                    wait_timeout: float = 5.0) -> Watcher:
        """Register a client watch starting after `resource_version` ("" or "0": from now,
        with an ADDED event for each existing object first)."""
        await self.ready.wait()
        if self.error is not None:
            raise self.error
        if self.stopped:
            raise Unavailable("apiserver is shutting down")
        w = Watcher(flt, self.watcher_queue)
        if not self.cached:
            return self._watch_direct(w, resource_version)
        if resource_version in ("", "0"):
            for key in sorted(self.current):
                obj = self.current[key]
                if flt.matches(obj):
                    w.queue.put_nowait(WatchEvent(type=ADDED, object=obj))
            self.watchers.add(w)
            return w
        rv = _parse_rv(resource_version)
        if rv > self.revision:
            await self._wait_for(rv, wait_timeout)
        if self.stopped:
            raise Unavailable("apiserver is shutting down")
        self._trim()
        if rv < self.oldest:
            raise Gone(f"too old resource version: {rv} ({self.oldest})")
        for recorded in self.events:  # one synchronous step: no event can slip between
            if recorded.revision <= rv:
                continue
            change = recorded.change()
            t = flt.translate(change)
            if t is not None:
                w.queue.put_nowait(WatchEvent(type=t, object=change.obj))  # type: ignore[arg-type]
        self.watchers.add(w)
        return w

    def _watch_direct(self, w: Watcher, resource_version: str) -> Watcher:
        """An uncached kind's watch: a store watch of its own, from the revision asked
        (from now: the store's current objects first, as ADDED)."""
        start = None if resource_version in ("", "0") else _parse_rv(resource_version)
        w.task = asyncio.create_task(self._pump(w, start),
                                     name=f"watch-{self.kind.plural}-direct")
        self.watchers.add(w)
        return w

    async def _pump(self, w: Watcher, start: int | None) -> None:
        prefix = self.kind.store_prefix()
        try:
            if start is None:
                kvs, start = await self.storage.list(prefix)
                for kv in kvs:  # in key order, as the store ranges
                    obj = decode(kv)
                    if w.filter.matches(obj):
                        w.queue.put_nowait(WatchEvent(type=ADDED, object=obj))
            w.revision = start
            async for resp in self.storage.watch(prefix, start + 1, prev_kv=True):
                if not resp.events:
                    w.revision = max(w.revision, resp.header.revision)
                for ev in resp.events:
                    change = _direct_change(ev)
                    if change is None:
                        continue
                    t = w.filter.translate(change)
                    if t is not None:
                        w.offer(WatchEvent(type=t, object=change.obj))  # type: ignore[arg-type]
                    w.revision = max(w.revision, change.revision)
                if w.closed:
                    return
            w.close(Unavailable("the store ended the watch; resume from the last "
                                "resourceVersion received"))
        except asyncio.CancelledError:
            raise
        except APIError as e:
            w.close(e)
        except Exception as e:
            w.close(Unavailable(f"store watch failed: {e}"))
        finally:
            self.watchers.discard(w)

    @staticmethod
    def _cancel_direct(w: Watcher) -> None:
        if w.task is not None and not w.task.done():
            w.task.cancel()

    def unregister(self, w: Watcher) -> None:
        self.watchers.discard(w)
        self._cancel_direct(w)

    def bookmark(self, w: Watcher | None = None) -> api_pb2.WatchEvent:
        """A BOOKMARK at the cache's revision (an uncached kind's watch: the revision its
        store watch has reached): valid once a watcher's queue is drained."""
        revision = w.revision if w is not None and not self.cached else self.revision
        ev = WatchEvent(type=BOOKMARK)
        getattr(ev.object, self.kind.envelope_field).metadata.resource_version = str(revision)
        return objects.fill_type_meta(ev.object) and ev


def _parse_rv(resource_version: str) -> int:
    try:
        return int(resource_version)
    except ValueError:
        raise Gone(f"invalid resourceVersion {resource_version!r}") from None


def _change_of(ev: object, key: str, raw_prev: Raw | None) -> Change | None:
    """A store watch event as a Change, given the stored bytes and revision of the object
    before it (None: there was none); None for a delete of a key with nothing before."""
    kv = getattr(ev, "kv")  # noqa: B009 - etcd Event
    rev = kv.mod_revision
    if getattr(ev, "type") == 1:  # noqa: B009 - DELETE
        if raw_prev is None:
            return None
        gone = decode_raw(key, raw_prev, rev)  # the last state, at the delete
        return Change(rev, DELETED, gone, key=key, prev_raw=raw_prev)
    obj = decode(KeyValue(key, kv.value, kv.create_revision, rev))
    kind = ADDED if kv.create_revision == rev or raw_prev is None else MODIFIED
    return Change(rev, kind, obj, key=key, prev_raw=raw_prev)


def _direct_change(ev: object) -> Change | None:
    """A store watch event with its prev_kv (an uncached kind's own watch) as a Change."""
    kv, before = getattr(ev, "kv"), getattr(ev, "prev_kv")  # noqa: B009 - etcd Event
    raw_prev = (before.value, before.mod_revision) if before.value else None
    return _change_of(ev, kv.key.decode(), raw_prev)


async def stream(cacher: Cacher, w: Watcher, *, bookmarks: bool,
                 bookmark_interval: float = 10.0) -> AsyncIterator[api_pb2.WatchEvent]:
    """The events of one client watch until it is closed; errors are raised."""
    try:
        while True:
            try:
                # What is already queued is taken at once: wait_for costs a timer and a
                # task per event, paid only when the stream has to wait.
                item = w.queue.get_nowait() if not w.queue.empty() else \
                    await asyncio.wait_for(w.queue.get(), timeout=bookmark_interval) \
                    if bookmarks else await w.queue.get()
            except TimeoutError:
                if w.queue.empty():
                    yield cacher.bookmark(w)
                continue
            if isinstance(item, APIError):
                raise item
            yield item
    finally:
        cacher.unregister(w)


def cache_metrics(caches: Iterable[Cacher]) -> list[Metric]:
    """kube-apiserver's watch and object counts, read from the caches at scrape time:
    `apiserver_registered_watchers{group,version,kind}` and
    `apiserver_storage_objects{resource}` (resource as `deployments.apps`; none for an
    uncached kind)."""
    watchers = GaugeMetricFamily("apiserver_registered_watchers",
                                 "Number of currently registered watchers for a given "
                                 "resources", labels=("group", "version", "kind"))
    stored = GaugeMetricFamily("apiserver_storage_objects",
                               "Number of stored objects at the time of last check split "
                               "by kind.", labels=("resource",))
    for cache in caches:
        group, _, version = cache.kind.api_version.rpartition("/")
        watchers.add_metric((group, version, cache.kind.kind), len(cache.watchers))
        if not cache.cached:
            continue  # nothing held to count (a 0 would read as "no Events")
        stored.add_metric((f"{cache.kind.plural}.{group}" if group else cache.kind.plural,),
                          len(cache.current))
    return [watchers, stored]
