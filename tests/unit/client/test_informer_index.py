"""Informer indices (client-go's Indexers) and the controller index the workload
controllers claim pods through: after any sequence of adds, updates (an owner adopting or
releasing a pod) and deletes, listed or watched, `by_index` answers what a pass over the
whole cache would."""

from __future__ import annotations

import asyncio
import random

from kemu.api import manifest, objects
from kemu.api.v1 import api_pb2, meta_pb2
from kemu.client.informer import IndexedStore, Informer, key_of
from kemu.services.controllers.controllerref import (
    CONTROLLER_INDEX,
    Owner,
    by_controller,
    claim_candidates,
)
from tests.unit.client.test_informer_transform import FakeClient

W = api_pb2.WatchEvent


def pod(name: str, namespace: str = "ns", owner: str = "", rv: int = 1) -> api_pb2.Object:
    obj = manifest.from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "namespace": namespace, "resourceVersion": str(rv)},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    if owner:
        obj.pod.metadata.owner_references.add(kind="ReplicaSet", name=owner, uid=owner,
                                              controller=True)
    return obj


def recount(store: dict[str, api_pb2.Object], value: str) -> list[str]:
    return sorted(k for k, o in store.items() if value in by_controller(o))


def test_the_index_follows_every_change_as_a_recount_would() -> None:
    rng = random.Random(3)
    store = IndexedStore()
    store.add_indexer(CONTROLLER_INDEX, by_controller)
    for _ in range(3000):
        name, ns = f"p{rng.randrange(30)}", rng.choice(["a", "b"])
        key = f"{ns}/{name}"
        if rng.random() < 0.2:
            store.pop(key, None)
        elif rng.random() < 0.1 and key in store:
            del store[key]
        else:
            store[key] = pod(name, ns, owner=rng.choice(["", "rs1", "rs2"]))
        for value in ("rs1", "rs2", "orphan/a", "orphan/b"):
            assert sorted(key_of(o) for o in store.by_index(CONTROLLER_INDEX, value)) \
                == recount(store, value)


def test_an_index_added_late_files_what_is_cached_and_adding_it_again_is_a_no_op() -> None:
    store = IndexedStore()
    store["ns/a"], store["ns/b"] = pod("a", owner="rs1"), pod("b")
    store.add_indexer(CONTROLLER_INDEX, by_controller)
    store.add_indexer(CONTROLLER_INDEX, by_controller)
    assert [key_of(o) for o in store.by_index(CONTROLLER_INDEX, "rs1")] == ["ns/a"]
    assert [key_of(o) for o in store.by_index(CONTROLLER_INDEX, "orphan/ns")] == ["ns/b"]


def test_claim_candidates_are_the_owners_pods_and_its_namespaces_orphans() -> None:
    informer = Informer(FakeClient([]), "pods")  # type: ignore[arg-type]
    for obj in (pod("mine", owner="rs1"), pod("theirs", owner="rs2"), pod("orphan"),
                pod("elsewhere", namespace="other")):
        informer.store[key_of(obj)] = obj
    owner = Owner("ReplicaSet", "apps/v1", meta_pb2.ObjectMeta(name="rs1", namespace="ns",
                                                               uid="rs1"))
    assert [objects.meta(o).name for o in claim_candidates(informer, owner)] == [
        "mine", "orphan"]


async def test_a_relist_and_watch_keep_the_index() -> None:
    client = FakeClient([pod("a", owner="rs1", rv=5), pod("b", rv=6)])
    informer = Informer(client, "pods")  # type: ignore[arg-type]
    informer.add_index(CONTROLLER_INDEX, by_controller)
    informer.start()
    try:
        await informer.wait_synced(5)
        adopted = pod("b", owner="rs1", rv=11)
        client.events.put_nowait(W(type=W.MODIFIED, object=adopted))
        client.events.put_nowait(W(type=W.DELETED, object=pod("a", owner="rs1", rv=12)))
        async with asyncio.timeout(5):
            while informer.resource_version != "12":
                await asyncio.sleep(0.01)
        assert [key_of(o) for o in informer.by_index(CONTROLLER_INDEX, "rs1")] == ["ns/b"]
        assert informer.by_index(CONTROLLER_INDEX, "orphan/ns") == []
    finally:
        await informer.stop()
