"""Informers: a local cache of one resource type kept current by list + watch.

Components are level-triggered: an informer lists once, then watches from the list's
resourceVersion, keeps every object in a dict keyed `namespace/name` (or `name` for
cluster-scoped kinds), and calls handlers that usually just enqueue a key. When the watch
ends it resumes from the last resourceVersion seen; when that is too old (Gone) it lists
again and reports the differences as events, so nothing is missed.

A transform (client-go's SetTransform) may slim each object before it is stored and handed
to handlers, e.g. dropping what the component never reads; it must keep the name,
namespace and resourceVersion the informer keys and resumes by.

Indices (client-go's Indexers): `add_index(name, fn)` files every object under the values
`fn` gives it, kept as objects change, so `by_index(name, value)` answers without a pass
over the cache (a controller looking for its own pods among 10,000).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kemu.api import objects
from kemu.api.v1 import api_pb2
from kemu.client.aio import AsyncClient
from kemu.client.errors import ClientError, Gone

log = logging.getLogger(__name__)
Handler = Callable[[api_pb2.Object | None, api_pb2.Object | None], None]
Transform = Callable[[api_pb2.Object], api_pb2.Object]
IndexFunc = Callable[[api_pb2.Object], Iterable[str]]
W = api_pb2.WatchEvent


def key_of(obj: api_pb2.Object) -> str:
    """`namespace/name`, or `name` for cluster-scoped objects."""
    m = objects.meta(obj)
    return f"{m.namespace}/{m.name}" if m.namespace else m.name


class IndexedStore(dict[str, api_pb2.Object]):
    """The cache, `key -> object`, with its indices kept on every set and removal (also when
    a test writes to it directly)."""

    def __init__(self, indexers: dict[str, IndexFunc] | None = None) -> None:
        super().__init__()
        self.indexers: dict[str, IndexFunc] = dict(indexers or {})
        # index name -> value -> keys (a dict, to keep the cache's order)
        self.indices: dict[str, dict[str, dict[str, None]]] = {n: {} for n in self.indexers}

    def add_indexer(self, name: str, fn: IndexFunc) -> None:
        if self.indexers.get(name) is fn:
            return
        if name in self.indexers:
            raise ValueError(f"index {name!r} exists with another function")
        self.indexers[name], self.indices[name] = fn, {}
        for key, obj in self.items():
            self._file(name, fn, key, obj)

    def by_index(self, name: str, value: str) -> list[api_pb2.Object]:
        return [self[k] for k in self.indices[name].get(value, ())]

    def _file(self, name: str, fn: IndexFunc, key: str, obj: api_pb2.Object) -> None:
        index = self.indices[name]
        for value in fn(obj):
            index.setdefault(value, {})[key] = None

    def _unfile(self, key: str, obj: api_pb2.Object) -> None:
        for name, fn in self.indexers.items():
            index = self.indices[name]
            for value in fn(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.pop(key, None)
                    if not keys:
                        del index[value]

    def __setitem__(self, key: str, obj: api_pb2.Object) -> None:
        if self.indexers:
            old = self.get(key)
            if old is not None:
                self._unfile(key, old)
            for name, fn in self.indexers.items():
                self._file(name, fn, key, obj)
        super().__setitem__(key, obj)

    def __delitem__(self, key: str) -> None:
        if self.indexers:
            self._unfile(key, self[key])
        super().__delitem__(key)

    def pop(self, key: str, *default: Any) -> Any:  # type: ignore[override]
        if key in self:
            obj = self[key]
            del self[key]
            return obj
        if default:
            return default[0]
        raise KeyError(key)


@dataclass
class Informer:
    """Cache of one resource type; handlers get (old, new): (None, obj) on add, (obj, None)
    on delete."""

    client: AsyncClient
    resource: str
    namespace: str = ""
    label_selector: str = ""
    field_selector: str = ""
    store: IndexedStore = field(default_factory=IndexedStore)
    handlers: list[Handler] = field(default_factory=list)
    resource_version: str = ""
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    transform: Transform | None = None
    _task: asyncio.Task[None] | None = None

    def add_handler(self, handler: Handler) -> None:
        self.handlers.append(handler)

    def get(self, key: str) -> api_pb2.Object | None:
        return self.store.get(key)

    def add_index(self, name: str, fn: IndexFunc) -> None:
        """File objects under `fn(obj)` from now on (and those cached already); adding the
        same index twice is a no-op, so controllers sharing an informer may each ask."""
        self.store.add_indexer(name, fn)

    def by_index(self, name: str, value: str) -> list[api_pb2.Object]:
        """The cached objects filed under `value` in index `name`, in cache order."""
        return self.store.by_index(name, value)

    def list(self) -> list[api_pb2.Object]:
        return list(self.store.values())

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"informer-{self.resource}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_synced(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.synced.wait(), timeout)

    def _emit(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        for handler in self.handlers:
            try:
                handler(old, new)
            except Exception:
                log.exception("informer %s: handler failed", self.resource)

    async def _relist(self) -> None:
        resp = await self.client.list(self.resource, self.namespace,
                                      label_selector=self.label_selector,
                                      field_selector=self.field_selector)
        items = resp.items if self.transform is None else map(self.transform, resp.items)
        fresh = IndexedStore(self.store.indexers)
        for o in items:
            fresh[key_of(o)] = o
        old_store, self.store = self.store, fresh
        for key, obj in fresh.items():
            before = old_store.get(key)
            if before is None or objects.meta(before).resource_version != \
                    objects.meta(obj).resource_version:
                self._emit(before, obj)
        for key, obj in old_store.items():
            if key not in fresh:
                self._emit(obj, None)
        self.resource_version = resp.resource_version
        self.synced.set()

    def _apply(self, event: api_pb2.WatchEvent) -> None:
        if event.type == W.BOOKMARK:
            self.resource_version = objects.meta(event.object).resource_version
            return
        obj = event.object if self.transform is None else self.transform(event.object)
        key = key_of(obj)
        old = self.store.get(key)
        if event.type == W.DELETED:
            self.store.pop(key, None)
            self._emit(old, None)
        else:
            self.store[key] = obj
            self._emit(old, obj)
        self.resource_version = objects.meta(obj).resource_version

    async def _run(self) -> None:
        backoff = 0.2
        need_list = True
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                async for event in self.client.watch(
                        self.resource, self.namespace, label_selector=self.label_selector,
                        field_selector=self.field_selector,
                        resource_version=self.resource_version):
                    self._apply(event)
                    backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Gone:
                need_list = True
            except ClientError as e:
                log.info("informer %s: %s; retrying in %.1fs", self.resource, e.message, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:
                log.exception("informer %s failed; relisting", self.resource)
                need_list = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
