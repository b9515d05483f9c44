"""Updates that start from the watch cache's copy (as Kubernetes' GuaranteedUpdate) decide
exactly as if they had read the store, even when that copy is stale: the registry runs
against a real kemu store and a cache that hands out an older version of the object."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kemu.api import kinds, manifest, objects
from kemu.api.kinds import Kind
from kemu.api.v1 import api_pb2
from kemu.services.apiserver.errors import AlreadyExists, Conflict, NotFound
from kemu.services.apiserver.registry import Registry
from kemu.services.apiserver.storage import Storage
from tests.support import processes

PODS = kinds.resolve("pods")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc = processes.kemu_store(Path(tmp_path_factory.mktemp("store")))
    with processes.running(proc):
        yield proc.address


def pod(name: str, **labels: str) -> api_pb2.Object:
    return manifest.from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "kemu/bootcamp:v1"}]}})


def run(store: str, body: Callable[[Registry, dict[str, api_pb2.Object]], Awaitable[Any]]
        ) -> Any:
    """`body` with a registry whose cache holds whatever `stale` maps a store key to."""
    async def main() -> Any:
        storage = Storage([store])
        stale: dict[str, api_pb2.Object] = {}

        def cached(kind: Kind, key: str) -> api_pb2.Object | None:
            hit = stale.get(key)  # a fresh object per read, as the watch cache's
            if hit is None:
                return None
            copy = api_pb2.Object()
            copy.CopyFrom(hit)
            return copy
        registry = Registry(storage, cached_object=cached)
        ns = api_pb2.Object()
        ns.namespace.metadata.name = "default"
        with contextlib.suppress(AlreadyExists):  # made by an earlier test
            await registry.create(ns)
        try:
            return await body(registry, stale)
        finally:
            await storage.close()
    return asyncio.run(main())


def test_update_to_the_stale_copy_still_writes(store: str) -> None:
    """The request equals the cache's (old) copy but not the store's: not a no-op."""
    async def body(registry: Registry, stale: dict[str, api_pb2.Object]) -> None:
        v1 = await registry.create(pod("p1", v="1"))
        stale[Registry.key_of(v1)] = v1
        v2 = api_pb2.Object()
        v2.CopyFrom(v1)
        v2.pod.metadata.labels["v"] = "2"
        v2.pod.metadata.resource_version = ""
        await registry.update(v2)
        back = api_pb2.Object()
        back.CopyFrom(v1)
        back.pod.metadata.resource_version = ""
        written = await registry.update(back)
        assert written.pod.metadata.labels["v"] == "1"
        assert int(written.pod.metadata.resource_version) > \
            int(v1.pod.metadata.resource_version)
        assert (await registry.get(PODS, "default", "p1")).pod.metadata.labels["v"] == "1"
    run(store, body)


def test_bind_on_a_stale_copy_sees_the_store(store: str) -> None:
    """The cache still shows the pod unbound; the store's copy is bound: Conflict."""
    async def body(registry: Registry, stale: dict[str, api_pb2.Object]) -> None:
        v1 = await registry.create(pod("p2"))
        stale[Registry.key_of(v1)] = v1

        def bind(node: str) -> Callable[[api_pb2.Object], None]:
            def change(obj: api_pb2.Object) -> None:
                if obj.pod.spec.node_name:
                    raise Conflict(PODS, obj.pod.metadata.name, "already assigned")
                obj.pod.spec.node_name = node
            return change
        await registry.mutate(PODS, "default", "p2", bind("n1"), validate=False)
        with pytest.raises(Conflict, match="already assigned"):
            await registry.mutate(PODS, "default", "p2", bind("n2"), validate=False)
        assert (await registry.get(PODS, "default", "p2")).pod.spec.node_name == "n1"
    run(store, body)


def test_preconditions_are_checked_against_the_store(store: str) -> None:
    """uid and resourceVersion preconditions that the stale copy fails but the store's copy
    meets succeed; a resourceVersion the stale copy meets but the store's does not fails."""
    async def body(registry: Registry, stale: dict[str, api_pb2.Object]) -> None:
        old = await registry.create(pod("p3"))
        await registry.delete(PODS, "default", "p3", grace_period_seconds=0)
        while True:  # a pod without a node goes at once; wait until the key is gone
            try:
                await registry.get(PODS, "default", "p3")
            except NotFound:
                break
            await asyncio.sleep(0.05)
        new = await registry.create(pod("p3"))
        stale[Registry.key_of(new)] = old  # the cache still has the pod of the old uid

        def label(obj: api_pb2.Object) -> None:
            objects.meta(obj).labels["x"] = "y"
        done = await registry.mutate(PODS, "default", "p3", label, uid=new.pod.metadata.uid)
        assert done.pod.metadata.labels["x"] == "y"
        stale[Registry.key_of(new)] = done
        later = await registry.mutate(PODS, "default", "p3", label,
                                      resource_version=done.pod.metadata.resource_version)
        assert later.pod.metadata.resource_version == done.pod.metadata.resource_version
        objects.meta(done).labels["x"] = "z"
        await registry.update(done)
        with pytest.raises(Conflict):
            await registry.mutate(PODS, "default", "p3", label,
                                  resource_version=done.pod.metadata.resource_version)
    run(store, body)
