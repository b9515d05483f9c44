"""An informer's transform slims every object, listed or watched, before it is stored and
before handlers see it (client-go's SetTransform, as kube-scheduler's TrimManagedFields)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from kemu.api import manifest, objects
from kemu.api.v1 import api_pb2
from kemu.client.informer import Informer

W = api_pb2.WatchEvent
BIG = "kubectl.kubernetes.io/last-applied-configuration"


def pod(name: str, rv: int) -> api_pb2.Object:
    return manifest.from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "namespace": "ns", "resourceVersion": str(rv),
        "annotations": {BIG: "{...}" * 100, "keep": "me"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})


class FakeClient:
    """list answers the given pods; watch streams what the test puts in `events`."""

    def __init__(self, items: list[api_pb2.Object]) -> None:
        self.items = items
        self.events: asyncio.Queue[api_pb2.WatchEvent] = asyncio.Queue()

    async def list(self, resource: str, namespace: str = "", **_: Any) -> api_pb2.ListResponse:
        return api_pb2.ListResponse(items=self.items, resource_version="10")

    async def watch(self, resource: str, namespace: str = "", **_: Any
                    ) -> AsyncIterator[api_pb2.WatchEvent]:
        while True:
            yield await self.events.get()


def drop_last_applied(obj: api_pb2.Object) -> api_pb2.Object:
    objects.meta(obj).annotations.pop(BIG, None)
    return obj


async def test_transform_applies_to_listed_and_watched_objects_and_handlers() -> None:
    client = FakeClient([pod("a", 5)])
    seen: list[api_pb2.Object] = []
    informer = Informer(client, "pods", transform=drop_last_applied)  # type: ignore[arg-type]
    informer.add_handler(lambda old, new: seen.append(new) if new is not None else None)
    informer.start()
    try:
        await informer.wait_synced(5)
        client.events.put_nowait(W(type=W.ADDED, object=pod("b", 11)))
        async with asyncio.timeout(5):
            while informer.resource_version != "11":
                await asyncio.sleep(0.01)
        for key in ("ns/a", "ns/b"):
            stored = informer.get(key)
            assert stored is not None
            assert dict(objects.meta(stored).annotations) == {"keep": "me"}
        assert [objects.meta(o).name for o in seen] == ["a", "b"]
        assert all(BIG not in objects.meta(o).annotations for o in seen)
    finally:
        await informer.stop()


async def test_without_a_transform_objects_are_kept_whole() -> None:
    client = FakeClient([pod("a", 5)])
    informer = Informer(client, "pods")  # type: ignore[arg-type]
    informer.start()
    try:
        await informer.wait_synced(5)
        stored = informer.get("ns/a")
        assert stored is not None and BIG in objects.meta(stored).annotations
    finally:
        await informer.stop()
