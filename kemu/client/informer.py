"""Informers: a local cache of one resource type kept current by list + watch.

Components are level-triggered: an informer lists once, then watches from the list's
resourceVersion, keeps every object in a dict keyed `namespace/name` (or `name` for
cluster-scoped kinds), and calls handlers that usually just enqueue a key. When the watch
ends it resumes from the last resourceVersion seen; when that is too old (Gone) it lists
again and reports the differences as events, so nothing is missed.

A transform (client-go's SetTransform) may slim each object before it is stored and handed
to handlers, e.g. dropping what the component never reads; it must keep the name,
namespace and resourceVersion the informer keys and resumes by.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from kemu.api import objects
from kemu.api.v1 import api_pb2
from kemu.client.aio import AsyncClient
from kemu.client.errors import ClientError, Gone

log = logging.getLogger(__name__)
Handler = Callable[[api_pb2.Object | None, api_pb2.Object | None], None]
Transform = Callable[[api_pb2.Object], api_pb2.Object]
W = api_pb2.WatchEvent


def key_of(obj: api_pb2.Object) -> str:
    """`namespace/name`, or `name` for cluster-scoped objects."""
    m = objects.meta(obj)
    return f"{m.namespace}/{m.name}" if m.namespace else m.name


@dataclass
class Informer:
    """Cache of one resource type; handlers get (old, new): (None, obj) on add, (obj, None)
    on delete."""

    client: AsyncClient
    resource: str
    namespace: str = ""
    label_selector: str = ""
    field_selector: str = ""
    store: dict[str, api_pb2.Object] = field(default_factory=dict)
    handlers: list[Handler] = field(default_factory=list)
    resource_version: str = ""
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    transform: Transform | None = None
    _task: asyncio.Task[None] | None = None

    def add_handler(self, handler: Handler) -> None:
        self.handlers.append(handler)

    def get(self, key: str) -> api_pb2.Object | None:
        return self.store.get(key)

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
        fresh = {key_of(o): o for o in items}
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
