"""The Deployment sync against the in-memory API (ReplicaSet status is set by hand, as
the ReplicaSet controller would): the new ReplicaSet, rolling and Recreate steps,
revisions, history cleanup, adoption, hash collisions, scaling, pause and deletion."""

from __future__ import annotations

from typing import Any

import pytest

from kemu.api import manifest
from kemu.api.v1 import api_pb2, apps_pb2, meta_pb2
from kemu.client.errors import ClientError
from kemu.services.controllers import deployment as dc
from kemu.services.controllers import deploymentutil as du
from kemu.services.controllers import progress
from kemu.services.controllers.hashing import compute_hash
from tests.unit.controllers.test_replicaset_fakeapi import FakeAPI, informers

NS = "ns"
KEY = f"{NS}/web"
NOW = 1_700_000_000.0


def cond_of(status: apps_pb2.DeploymentStatus, type_: str) -> meta_pb2.Condition:
    got = progress.get_condition(status, type_)
    assert got is not None, f"no {type_} condition"
    return got


def deploy(replicas: int = 3, image: str = "v1", *, surge: Any = 1, unavailable: Any = 0,
           strategy: str = "RollingUpdate", **spec: Any) -> api_pb2.Object:
    strat: dict[str, Any] = {"type": strategy}
    if strategy == "RollingUpdate":
        strat["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return manifest.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "strategy": strat, "revisionHistoryLimit": 10,
                 "progressDeadlineSeconds": 600,
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": image}]}},
                 **spec}})


def setup() -> tuple[dc.DeploymentController, FakeAPI]:
    api = FakeAPI(now=NOW)
    ctrl = dc.DeploymentController(api, informers(api, *dc.INFORMERS), clock=lambda: NOW)
    return ctrl, api


def rss(api: FakeAPI) -> list[apps_pb2.ReplicaSet]:
    return sorted((o.replica_set for o in api.list("replicasets", NS)),
                  key=lambda r: du.revision(r))


def the_deploy(api: FakeAPI) -> apps_pb2.Deployment:
    return api.objects[("deployments", KEY)].deployment


def mark(api: FakeAPI, rs: apps_pb2.ReplicaSet, *, available: int | None = None,
         actual: int | None = None) -> None:
    """Play the ReplicaSet controller: status follows spec (or what is given)."""
    obj = api.objects[("replicasets", f"{NS}/{rs.metadata.name}")]
    st = obj.replica_set.status
    st.replicas = obj.replica_set.spec.replicas if actual is None else actual
    st.available_replicas = st.ready_replicas = st.replicas if available is None else available
    st.fully_labeled_replicas = st.replicas
    st.observed_generation = obj.replica_set.metadata.generation
    api.put(obj)


def change_image(api: FakeAPI, image: str) -> None:
    obj = api.objects[("deployments", KEY)]
    obj.deployment.spec.template.spec.containers[0].image = image
    obj.deployment.metadata.generation += 1
    api.put(obj)


async def settle(ctrl: dc.DeploymentController, api: FakeAPI, rounds: int = 20) -> None:
    """Alternate deployment syncs and ReplicaSet status catching up, until quiet."""
    for _ in range(rounds):
        before = len(api.calls)
        await ctrl.reconcile(KEY)
        lagging = [rs for rs in rss(api) if rs.status.replicas != rs.spec.replicas
                   or rs.status.available_replicas != rs.spec.replicas]
        for rs in lagging:
            mark(api, rs)
        if len(api.calls) == before and not lagging:
            return
    raise AssertionError("did not settle")


async def test_creates_the_new_replica_set() -> None:
    ctrl, api = setup()
    api.put(deploy(3))
    await ctrl.reconcile(KEY)
    [rs] = rss(api)
    d = the_deploy(api)
    h = compute_hash(d.spec.template)
    assert rs.metadata.name == f"web-{h}" and rs.spec.replicas == 3
    assert dict(rs.spec.selector.match_labels) == {"app": "web", du.HASH_LABEL: h}
    assert dict(rs.spec.template.metadata.labels) == {"app": "web", du.HASH_LABEL: h}
    assert dict(rs.metadata.labels) == {"app": "web", du.HASH_LABEL: h}
    ref = rs.metadata.owner_references[0]
    assert (ref.kind, ref.api_version, ref.uid, ref.controller, ref.block_owner_deletion) \
        == ("Deployment", "apps/v1", d.metadata.uid, True, True)
    assert {k: rs.metadata.annotations[k] for k in (du.REVISION, du.DESIRED_REPLICAS,
                                                    du.MAX_REPLICAS)} == \
        {du.REVISION: "1", du.DESIRED_REPLICAS: "3", du.MAX_REPLICAS: "4"}
    assert d.metadata.annotations[du.REVISION] == "1"
    cond = cond_of(d.status, "Progressing")
    assert cond is not None and cond.reason == "NewReplicaSetCreated"
    await settle(ctrl, api)
    d = the_deploy(api)
    assert (d.status.replicas, d.status.updated_replicas, d.status.available_replicas,
            d.status.unavailable_replicas, d.status.observed_generation) == (3, 3, 3, 0, 1)
    assert cond_of(d.status, "Progressing").reason == "NewReplicaSetAvailable"
    assert cond_of(d.status, "Available").status == "True"
    writes = len(api.calls)
    await ctrl.reconcile(KEY)
    assert len(api.calls) == writes, "a settled Deployment writes nothing"


async def test_rolling_update_steps_within_fenceposts() -> None:
    ctrl, api = setup()
    api.put(deploy(3, surge=1, unavailable=0))
    await settle(ctrl, api)
    change_image(api, "v2")
    await ctrl.reconcile(KEY)
    old, new = rss(api)
    assert (old.spec.replicas, new.spec.replicas) == (3, 1)
    await ctrl.reconcile(KEY)
    assert rss(api)[0].spec.replicas == 3, "old pods stay until a new one is available"
    mark(api, new)
    await ctrl.reconcile(KEY)
    assert rss(api)[0].spec.replicas == 2
    await settle(ctrl, api)
    old, new = rss(api)
    assert (old.spec.replicas, new.spec.replicas, du.revision(new)) == (0, 3, 2)
    assert the_deploy(api).metadata.annotations[du.REVISION] == "2"


async def test_template_changed_back_reuses_the_old_replica_set() -> None:
    ctrl, api = setup()
    api.put(deploy(2))
    await settle(ctrl, api)
    first = rss(api)[0].metadata.name
    change_image(api, "v2")
    await settle(ctrl, api)
    change_image(api, "v1")
    await settle(ctrl, api)
    assert len(rss(api)) == 2
    reused = rss(api)[-1]
    assert reused.metadata.name == first and reused.spec.replicas == 2
    assert (reused.metadata.annotations[du.REVISION],
            reused.metadata.annotations[du.REVISION_HISTORY]) == ("3", "1")
    assert the_deploy(api).metadata.annotations[du.REVISION] == "3"


async def test_recreate_waits_for_old_pods() -> None:
    ctrl, api = setup()
    api.put(deploy(2, strategy="Recreate"))
    await settle(ctrl, api)
    change_image(api, "v2")
    await ctrl.reconcile(KEY)
    [old] = rss(api)
    assert old.spec.replicas == 0, "old scaled down, no new ReplicaSet yet"
    mark(api, old, actual=1, available=0)  # a pod is still terminating
    await ctrl.reconcile(KEY)
    assert len(rss(api)) == 1
    mark(api, old, actual=0)
    await ctrl.reconcile(KEY)
    old, new = rss(api)
    assert (old.spec.replicas, new.spec.replicas) == (0, 2)


async def test_history_limit_deletes_oldest_idle_replica_sets() -> None:
    ctrl, api = setup()
    api.put(deploy(1, revisionHistoryLimit=1))
    for image in ("v1", "v2", "v3", "v4"):
        change_image(api, image)
        await settle(ctrl, api)
    assert [du.revision(r) for r in rss(api)] == [3, 4]


async def test_adopts_orphans_and_releases_mismatches() -> None:
    ctrl, api = setup()
    d = api.put(deploy(1))
    template = d.deployment.spec.template
    h = compute_hash(template)
    orphan = apps_pb2.ReplicaSet()
    orphan.metadata.name, orphan.metadata.namespace = f"web-{h}", NS
    orphan.metadata.labels.update({"app": "web", du.HASH_LABEL: h})
    orphan.spec.replicas = 1
    orphan.spec.selector.match_labels.update({"app": "web", du.HASH_LABEL: h})
    orphan.spec.template.CopyFrom(template)
    orphan.spec.template.metadata.labels[du.HASH_LABEL] = h
    api.put(api_pb2.Object(replica_set=orphan))
    stray = apps_pb2.ReplicaSet()
    stray.metadata.name, stray.metadata.namespace = "stray", NS
    stray.metadata.labels["app"] = "other"
    stray.metadata.owner_references.add(kind="Deployment", api_version="apps/v1", name="web",
                                        uid=d.deployment.metadata.uid, controller=True)
    api.put(api_pb2.Object(replica_set=stray))
    await ctrl.reconcile(KEY)
    by_name = {r.metadata.name: r for r in rss(api)}
    assert len(by_name) == 2, "the adopted ReplicaSet is the new one: nothing created"
    assert by_name[f"web-{h}"].metadata.owner_references[0].uid == d.deployment.metadata.uid
    assert not by_name["stray"].metadata.owner_references
    await ctrl.reconcile(KEY)  # the adopted one is found as the new ReplicaSet
    cond = cond_of(the_deploy(api).status, "Progressing")
    assert (cond.reason, cond.message) == ("FoundNewReplicaSet",
                                           f'Found new replica set "web-{h}"')


async def test_hash_collision_bumps_collision_count() -> None:
    ctrl, api = setup()
    d = api.put(deploy(1))
    h = compute_hash(d.deployment.spec.template)
    squatter = apps_pb2.ReplicaSet()
    squatter.metadata.name, squatter.metadata.namespace = f"web-{h}", NS
    squatter.metadata.labels["app"] = "else"
    api.put(api_pb2.Object(replica_set=squatter), cache=False)
    with pytest.raises(ClientError, match="collision"):
        await ctrl.reconcile(KEY)
    assert the_deploy(api).status.collision_count == 1
    await ctrl.reconcile(KEY)
    names = {r.metadata.name for r in rss(api)}
    assert names == {f"web-{h}", f"web-{compute_hash(d.deployment.spec.template, 1)}"}


async def test_scaling_a_settled_deployment() -> None:
    ctrl, api = setup()
    api.put(deploy(2))
    await settle(ctrl, api)
    obj = api.objects[("deployments", KEY)]
    obj.deployment.spec.replicas = 5
    api.put(obj)
    await ctrl.reconcile(KEY)
    [rs] = rss(api)
    assert (rs.spec.replicas, rs.metadata.annotations[du.DESIRED_REPLICAS]) == (5, "5")


async def test_proportional_scaling_mid_rollout() -> None:
    ctrl, api = setup()
    api.put(deploy(10, surge=3, unavailable=0))
    await settle(ctrl, api)
    change_image(api, "v2")
    await ctrl.reconcile(KEY)  # new RS at 3 (surge), old at 10
    old, new = rss(api)
    assert (old.spec.replicas, new.spec.replicas) == (10, 3)
    obj = api.objects[("deployments", KEY)]
    obj.deployment.spec.replicas = 20
    api.put(obj)
    await ctrl.reconcile(KEY)
    old, new = rss(api)
    assert old.spec.replicas + new.spec.replicas == 23
    assert (old.spec.replicas, new.spec.replicas) == (18, 5)


async def test_paused_no_rollout_but_scaling() -> None:
    ctrl, api = setup()
    api.put(deploy(2))
    await settle(ctrl, api)
    obj = api.objects[("deployments", KEY)]
    obj.deployment.spec.paused = True
    obj.deployment.spec.replicas = 4
    obj.deployment.spec.template.spec.containers[0].image = "v2"
    api.put(obj)
    await ctrl.reconcile(KEY)
    [rs] = rss(api)
    assert rs.spec.replicas == 4
    cond = cond_of(the_deploy(api).status, "Progressing")
    assert (cond.status, cond.reason) == ("Unknown", "DeploymentPaused")


async def test_deleting_deployment_only_updates_status() -> None:
    ctrl, api = setup()
    obj = deploy(2)
    obj.deployment.metadata.deletion_timestamp.FromSeconds(int(NOW))
    obj.deployment.metadata.finalizers.append("foregroundDeletion")
    api.put(obj)
    await ctrl.reconcile(KEY)
    assert not rss(api) and the_deploy(api).status.observed_generation == 1


async def test_replica_set_events_map_to_the_owner() -> None:
    ctrl, api = setup()
    api.put(deploy(1))
    await ctrl.reconcile(KEY)
    ctrl.queue._queue.clear()
    ctrl.queue._dirty.clear()
    [rs] = rss(api)
    ctrl.on_replica_set(None, api_pb2.Object(replica_set=rs))
    assert ctrl.queue._queue == [KEY]
    ctrl.queue._queue.clear()
    ctrl.queue._dirty.clear()
    orphan = apps_pb2.ReplicaSet()
    orphan.metadata.name, orphan.metadata.namespace = "o", NS
    orphan.metadata.labels["app"] = "web"
    ctrl.on_replica_set(None, api_pb2.Object(replica_set=orphan))
    assert ctrl.queue._queue == [KEY]
