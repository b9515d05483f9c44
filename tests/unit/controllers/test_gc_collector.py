"""The garbage collector's decisions against a small in-memory API: which policy a
dependent is deleted with, which references are dropped instead, when a foreground owner's
finalizer goes, owners that cannot be checked, and what a rebuilt graph looks at first."""

from __future__ import annotations

from dataclasses import dataclass, field

from kemu.api import manifest, objects
from kemu.api.v1 import api_pb2
from kemu.client.errors import Conflict, NotFound
from kemu.client.informer import Informer
from kemu.services.controllers import garbagecollector as gcm
from kemu.services.controllers.gc_graph import FOREGROUND

POLICY = {api_pb2.BACKGROUND: "Background", api_pb2.FOREGROUND: "Foreground",
          api_pb2.ORPHAN: "Orphan"}


@dataclass
class FakeAPI:
    """ConfigMaps by name (one namespace); deletes and updates recorded; an update that
    removes the last finalizer of a deleting object removes it, as the apiserver does."""

    objs: dict[str, api_pb2.Object] = field(default_factory=dict)
    deletes: list[tuple[str, str]] = field(default_factory=list)  # (name, policy)
    updates: list[str] = field(default_factory=list)

    async def get(self, resource: str, name: str, namespace: str = "") -> api_pb2.Object:
        if resource != "configmaps" or name not in self.objs:
            raise NotFound(name)
        out = api_pb2.Object()
        out.CopyFrom(self.objs[name])
        return out

    async def update(self, obj: api_pb2.Object) -> api_pb2.Object:
        meta = objects.meta(obj)
        self.updates.append(meta.name)
        self.objs[meta.name] = obj
        if meta.HasField("deletion_timestamp") and not meta.finalizers:
            del self.objs[meta.name]  # the apiserver deletes it once nothing holds it
        return obj

    async def delete(self, resource: str, name: str, namespace: str = "", *,
                     grace_period_seconds: int | None = None, uid: str = "",
                     propagation_policy: int = 0) -> api_pb2.DeleteResponse:
        if uid and objects.meta(self.objs[name]).uid != uid:
            raise Conflict(name)
        self.deletes.append((name, POLICY[propagation_policy]))
        return api_pb2.DeleteResponse()


def cm(name: str, *owners: tuple[str, bool], kind: str = "ConfigMap",
       deleting: str = "") -> api_pb2.Object:
    obj = manifest.from_dict({"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": name, "namespace": "ns"}})
    m = obj.config_map.metadata
    m.uid = f"uid-{name}"
    for owner, block in owners:
        m.owner_references.add(api_version="v1", kind=kind, name=owner, uid=f"uid-{owner}",
                               block_owner_deletion=block)
    if deleting:
        m.deletion_timestamp.FromSeconds(1)
        m.finalizers.append(deleting)
    return obj


def collector(*objs: api_pb2.Object) -> tuple[FakeAPI, gcm.GarbageCollector]:
    api = FakeAPI({objects.meta(o).name: o for o in objs})
    inf = Informer(None, "configmaps")  # type: ignore[arg-type]
    inf.store = {f"ns/{objects.meta(o).name}": o for o in objs}
    gc = gcm.GarbageCollector(api, {"configmaps": inf})
    gc.rebuild()
    return api, gc


async def test_dependent_of_a_waiting_owner_with_dependents_goes_in_the_foreground() -> None:
    api, gc = collector(cm("owner", deleting=FOREGROUND), cm("mid", ("owner", True)),
                        cm("leaf", ("mid", True)))
    await gc.reconcile("uid-owner")
    assert api.updates == []  # "mid" still blocks: the finalizer stays
    await gc.reconcile("uid-mid")
    assert api.deletes == [("mid", "Foreground")]


async def test_a_solid_owner_keeps_the_dependent_and_drops_the_others() -> None:
    api, gc = collector(cm("owner", deleting=FOREGROUND), cm("other"),
                        cm("dep", ("owner", True), ("other", False), ("ghost", False)))
    await gc.reconcile("uid-dep")
    assert api.deletes == []
    refs = [r.name for r in api.objs["dep"].config_map.metadata.owner_references]
    assert refs == ["other"]


async def test_foreground_finalizer_goes_when_only_non_blocking_dependents_remain() -> None:
    api, gc = collector(cm("owner", deleting=FOREGROUND), cm("dep", ("owner", False)))
    await gc.reconcile("uid-owner")
    assert api.updates == ["owner"] and "owner" not in api.objs  # finalizer removed: gone
    await gc.reconcile("uid-dep")
    assert api.deletes == [("dep", "Background")]


async def test_owners_that_cannot_be_checked_keep_their_dependents() -> None:
    api, gc = collector(cm("dep", ("thing", False), kind="Widget"))
    assert gc.graph.interesting() == {"uid-thing"}
    await gc.reconcile("uid-thing")
    await gc.reconcile("uid-dep")
    assert api.deletes == []


async def test_rebuild_looks_at_virtual_and_deleting_owners_only() -> None:
    _, gc = collector(cm("a"), cm("b", ("a", False)), cm("c", ("gone", False)),
                      cm("d", deleting="orphan"))
    assert gc.graph.interesting() == {"uid-gone", "uid-d"}
    queued = []
    while len(gc.queue):
        queued.append(await gc.queue.get())
    assert sorted(queued) == ["uid-d", "uid-gone"]


async def test_absent_owner_found_live_is_rechecked_not_collected() -> None:
    api, gc = collector(cm("dep", ("late", False)))
    api.objs["late"] = cm("late")  # created, not yet in the cache
    await gc.reconcile("uid-late")
    await gc.reconcile("uid-dep")
    assert api.deletes == []
    del api.objs["late"]
    await gc.reconcile("uid-late")
    assert gc.graph.get("uid-late") is None
    await gc.reconcile("uid-dep")
    assert api.deletes == [("dep", "Background")]
