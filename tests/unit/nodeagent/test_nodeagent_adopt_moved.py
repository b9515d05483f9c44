"""The agent back after an absence (issue 5: taint-based eviction moved its pods away):
the start-up sweep finds containers of pods that were deleted from the API meanwhile, or
whose name is now a pod bound to another node, and the worker removes them; the pod still
bound here keeps running untouched, and one evicted while away (deletionTimestamp set)
is stopped and its deletion confirmed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from kemu.api import manifest
from kemu.api.v1 import api_pb2
from kemu.nodeagent import adopt, naming
from tests.unit.nodeagent.test_nodeagent_podworker import Rig


def pod(name: str, uid: str) -> api_pb2.Object:
    return manifest.from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "uid": uid, "resourceVersion": "5"},
        "spec": {"nodeName": "n1", "restartPolicy": "Always",
                 "terminationGracePeriodSeconds": 30,
                 "containers": [{"name": "app", "image": "app:1",
                                 "imagePullPolicy": "IfNotPresent"}]}})


def uids(rig: Rig) -> set[str]:
    return {c.labels.get(naming.UID, "") for c in rig.runtime.containers.values()}


async def drain(rig: Rig) -> None:
    while len(rig.queue):
        key = await rig.queue.get()
        await rig.worker.sync(key)
        rig.queue.done(key)
    await asyncio.gather(*rig.worker._terminating.values())


async def test_containers_of_pods_moved_away_are_removed(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    for name, uid in (("deleted", "u1"), ("moved", "u2"), ("kept", "u3"), ("evicted", "u4")):
        rig.pods.store[f"shop/{name}"] = pod(name, uid)
        await rig.worker.sync(f"shop/{name}")
    assert uids(rig) == {"u1", "u2", "u3", "u4"}

    # The agent comes back (a fresh process, same Docker). Meanwhile "deleted" was
    # force-deleted, "moved" is a new pod of that name on another node (so absent from
    # this node's informer), and "evicted" was marked for deletion by the taint manager.
    back = Rig(tmp_path)
    back.runtime = back.worker.runtime = rig.runtime
    back.pods.store["shop/kept"] = rig.pods.store["shop/kept"]
    evicted = pod("evicted", "u4")
    evicted.pod.metadata.deletion_timestamp.GetCurrentTime()
    evicted.pod.metadata.deletion_grace_period_seconds = 30
    back.pods.store["shop/evicted"] = evicted
    kept_containers = {cid for cid, c in rig.runtime.containers.items()
                       if c.labels.get(naming.UID) == "u3"}

    orphans = await adopt.sweep(back.runtime, "n1", back.pods, back.queue,  # type: ignore[arg-type]
                                tmp_path, initial=True)
    assert orphans == 2
    calls = len(rig.runtime.calls)
    await drain(back)

    assert uids(rig) == {"u3"}
    assert set(rig.runtime.containers) == kept_containers
    assert not [c for c in rig.runtime.calls[calls:] if c[0] in ("create", "start")]
    assert back.client.deletes == [("pods", "shop", "evicted", 0, "u4")]
