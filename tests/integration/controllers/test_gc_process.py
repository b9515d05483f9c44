"""The garbage collector in-process against a real store + apiserver: background,
foreground (waiting for a terminating pod) and orphan propagation, owners that never
existed, a surviving second owner, and deletions that happened while it was down."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Protocol

import pytest

from kemu.api import manifest, objects
from kemu.api.v1 import api_pb2
from kemu.client.aio import AsyncClient
from kemu.client.errors import NotFound
from kemu.client.informer import Informer
from kemu.services.controllers import garbagecollector
from tests.conftest import Cluster

pytestmark = pytest.mark.integration


class Runnable(Protocol):
    async def run(self) -> None: ...


@contextlib.asynccontextmanager
async def running(server: str, resources: Iterable[str],
                  make: Callable[[AsyncClient, dict[str, Informer]], Runnable]
                  ) -> AsyncIterator[Runnable]:
    """A controller with its own client and informers as an asyncio task, as the
    controller manager runs it; fails if the controller died meanwhile. (Shared by the
    namespace and node lifecycle controller tests.)"""
    client = AsyncClient(server, timeout=10)
    informers = {r: Informer(client, r) for r in resources}
    ctrl = make(client, informers)
    for inf in informers.values():
        inf.start()
    task = asyncio.create_task(ctrl.run())
    try:
        yield ctrl
        assert not task.done(), task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for inf in informers.values():
            await inf.stop()
        await client.close()


def running_gc(server: str) -> contextlib.AbstractAsyncContextManager[Runnable]:
    return running(server, garbagecollector.INFORMERS,
                   lambda c, i: garbagecollector.GarbageCollector(c, i, workers=4,
                                                                  virtual_recheck=0.2))


async def until(what: str, fn: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(cluster.server, timeout=10) as c:
        yield c


@pytest.fixture
async def ns(api: AsyncClient) -> str:
    name = f"gc-{uuid.uuid4().hex[:8]}"
    await api.create(manifest.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": name}}))
    return name


def ref(owner: api_pb2.Object, *, block: bool = False) -> dict[str, Any]:
    m, k = objects.meta(owner), objects.kind_of(owner)
    out: dict[str, Any] = {"apiVersion": k.api_version, "kind": k.kind, "name": m.name,
                           "uid": m.uid}
    if block:
        out.update(controller=True, blockOwnerDeletion=True)
    return out


async def configmap(api: AsyncClient, ns: str, name: str, *owners: dict[str, Any]
                    ) -> api_pb2.Object:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if owners:
        meta["ownerReferences"] = list(owners)
    return await api.create(manifest.from_dict({"apiVersion": "v1", "kind": "ConfigMap",
                                                "metadata": meta}))


async def pod(api: AsyncClient, ns: str, name: str, owner: api_pb2.Object, *,
              node: str = "") -> api_pb2.Object:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "kemu/pause:1"}]}
    if node:
        spec["nodeName"] = node
    return await api.create(manifest.from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "ownerReferences": [ref(owner, block=True)]},
        "spec": spec}))


async def replicaset(api: AsyncClient, ns: str, name: str,
                     owner: api_pb2.Object | None = None) -> api_pb2.Object:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if owner is not None:
        meta["ownerReferences"] = [ref(owner, block=True)]
    return await api.create(manifest.from_dict({
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta,
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}}}}))


async def deployment(api: AsyncClient, ns: str, name: str) -> api_pb2.Object:
    return await api.create(manifest.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}}}}))


async def fetch(api: AsyncClient, resource: str, name: str, ns: str) -> api_pb2.Object | None:
    try:
        return await api.get(resource, name, ns)
    except NotFound:
        return None


def gone(api: AsyncClient, resource: str, name: str, ns: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await fetch(api, resource, name, ns) is None
    return check


async def test_background_deletes_the_chain(cluster: Cluster, api: AsyncClient,
                                            ns: str) -> None:
    async with running_gc(cluster.server):
        d = await deployment(api, ns, "web")
        rs = await replicaset(api, ns, "web-1", d)
        await pod(api, ns, "web-1-a", rs)
        await pod(api, ns, "web-1-b", rs)
        await api.delete("deployments", "web", ns, propagation_policy=api_pb2.BACKGROUND)
        await until("the ReplicaSet collected", gone(api, "replicasets", "web-1", ns))
        await until("pod a collected", gone(api, "pods", "web-1-a", ns))
        await until("pod b collected", gone(api, "pods", "web-1-b", ns))


async def test_foreground_waits_for_blocking_dependents(cluster: Cluster, api: AsyncClient,
                                                        ns: str) -> None:
    async with running_gc(cluster.server):
        d = await deployment(api, ns, "fg")
        rs = await replicaset(api, ns, "fg-1", d)
        # Bound to a node that has no agent: the pod stays Terminating until "its agent"
        # (the test) confirms, so the whole chain must wait for it.
        await pod(api, ns, "fg-1-a", rs, node="no-agent")
        await api.delete("deployments", "fg", ns, propagation_policy=api_pb2.FOREGROUND)

        async def pod_terminating() -> bool:
            p = await fetch(api, "pods", "fg-1-a", ns)
            return p is not None and p.pod.metadata.HasField("deletion_timestamp")
        await until("the pod terminating", pod_terminating)
        live_rs = await api.get("replicasets", "fg-1", ns)
        assert live_rs.replica_set.metadata.HasField("deletion_timestamp")
        assert "foregroundDeletion" in live_rs.replica_set.metadata.finalizers
        await asyncio.sleep(0.5)  # let the collector act on anything it would act on
        assert await fetch(api, "deployments", "fg", ns) is not None
        assert await fetch(api, "replicasets", "fg-1", ns) is not None

        await api.delete("pods", "fg-1-a", ns, grace_period_seconds=0)  # the agent's part
        await until("the ReplicaSet gone", gone(api, "replicasets", "fg-1", ns))
        await until("the Deployment gone", gone(api, "deployments", "fg", ns))


async def test_orphan_keeps_dependents_without_the_reference(cluster: Cluster,
                                                            api: AsyncClient, ns: str) -> None:
    async with running_gc(cluster.server):
        rs = await replicaset(api, ns, "orph")
        keep = await configmap(api, ns, "orph-other")
        await pod(api, ns, "orph-a", rs)
        await configmap(api, ns, "orph-cm", ref(rs), ref(keep))
        await api.delete("replicasets", "orph", ns, propagation_policy=api_pb2.ORPHAN)
        await until("the ReplicaSet gone", gone(api, "replicasets", "orph", ns))
        p = await api.get("pods", "orph-a", ns)
        assert not p.pod.metadata.owner_references
        cm = await api.get("configmaps", "orph-cm", ns)
        assert [r.name for r in cm.config_map.metadata.owner_references] == ["orph-other"]


async def test_absent_owners_and_a_surviving_owner(cluster: Cluster, api: AsyncClient,
                                                   ns: str) -> None:
    async with running_gc(cluster.server):
        alive = await configmap(api, ns, "alive")
        never = {"apiVersion": "v1", "kind": "ConfigMap", "name": "never",
                 "uid": str(uuid.uuid4())}
        await configmap(api, ns, "orphaned", never)
        await configmap(api, ns, "two-owners", never, ref(alive))
        # A reference by name to a live object, but with another uid: not its owner.
        await configmap(api, ns, "wrong-uid", {**ref(alive), "uid": str(uuid.uuid4())})
        await until("the dependent of a uid that never existed",
                    gone(api, "configmaps", "orphaned", ns))
        await until("the wrong-uid dependent", gone(api, "configmaps", "wrong-uid", ns))

        async def dangling_dropped() -> bool:
            cm = await api.get("configmaps", "two-owners", ns)
            return [r.name for r in cm.config_map.metadata.owner_references] == ["alive"]
        await until("the dangling reference dropped", dangling_dropped)
        assert await fetch(api, "configmaps", "alive", ns) is not None


async def test_deletions_while_down_are_finished_after_a_restart(
        cluster: Cluster, api: AsyncClient, ns: str) -> None:
    bg_owner = await configmap(api, ns, "bg-owner")
    await configmap(api, ns, "bg-dep", ref(bg_owner))
    fg_owner = await configmap(api, ns, "fg-owner")
    await configmap(api, ns, "fg-dep", ref(fg_owner, block=True))
    or_owner = await configmap(api, ns, "or-owner")
    await configmap(api, ns, "or-dep", ref(or_owner))
    kept_owner = await configmap(api, ns, "kept-owner")
    await configmap(api, ns, "kept-dep", ref(kept_owner))
    await api.delete("configmaps", "bg-owner", ns, propagation_policy=api_pb2.BACKGROUND)
    await api.delete("configmaps", "fg-owner", ns, propagation_policy=api_pb2.FOREGROUND)
    await api.delete("configmaps", "or-owner", ns, propagation_policy=api_pb2.ORPHAN)
    assert await fetch(api, "configmaps", "fg-owner", ns) is not None  # held by its finalizer

    async with running_gc(cluster.server):
        await until("bg-dep collected", gone(api, "configmaps", "bg-dep", ns))
        await until("fg-dep collected", gone(api, "configmaps", "fg-dep", ns))
        await until("fg-owner finalized", gone(api, "configmaps", "fg-owner", ns))
        await until("or-owner finalized", gone(api, "configmaps", "or-owner", ns))
        dep = await api.get("configmaps", "or-dep", ns)
        assert not dep.config_map.metadata.owner_references
        await asyncio.sleep(0.3)
        assert await fetch(api, "configmaps", "kept-dep", ns) is not None


@contextlib.asynccontextmanager
async def workload_controllers(server: str) -> AsyncIterator[None]:
    """The Deployment and ReplicaSet controllers beside the collector, as in the manager."""
    from kemu.services.controllers import deployment, replicaset

    rs = replicaset.REPLICA_SET
    async with running(server, rs.informers,
                       lambda c, i: replicaset.ReplicaSetController(c, i, rs)), \
            running(server, deployment.INFORMERS,
                    lambda c, i: deployment.DeploymentController(c, i)), \
            running_gc(server):
        yield


async def live_deployment(api: AsyncClient, ns: str, name: str, replicas: int
                          ) -> api_pb2.Object:
    return await api.create(manifest.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}}}}))


async def test_with_the_workload_controllers(cluster: Cluster, api: AsyncClient,
                                             ns: str) -> None:
    async with workload_controllers(cluster.server):
        await live_deployment(api, ns, "web", 2)

        async def pods(n: int) -> bool:
            return len((await api.list("pods", ns)).items) == n
        await until("the deployment's two pods", lambda: pods(2))
        rs = (await api.list("replicasets", ns)).items[0].replica_set.metadata
        before = {p.pod.metadata.uid for p in (await api.list("pods", ns)).items}

        # Orphan the ReplicaSet: it goes, its pods stay; the Deployment makes a new
        # ReplicaSet, which adopts them (same labels) instead of making new ones.
        await api.delete("replicasets", rs.name, ns, propagation_policy=api_pb2.ORPHAN)

        async def adopted() -> bool:
            items = (await api.list("pods", ns)).items
            owners = {r.uid for p in items for r in p.pod.metadata.owner_references}
            return {p.pod.metadata.uid for p in items} == before and len(owners) == 1 \
                and rs.uid not in owners
        await until("the orphans adopted by a new ReplicaSet", adopted)
        again = await fetch(api, "replicasets", rs.name, ns)  # the same name (its hash)
        assert again is None or again.replica_set.metadata.uid != rs.uid

        # Foreground deletion of the Deployment then takes everything.
        await api.delete("deployments", "web", ns, propagation_policy=api_pb2.FOREGROUND)
        await until("the Deployment gone", gone(api, "deployments", "web", ns))
        assert (await api.list("replicasets", ns)).items == []
        assert (await api.list("pods", ns)).items == []
