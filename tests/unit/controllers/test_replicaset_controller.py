"""The ReplicaSet/ReplicationController sync against the in-memory API: creates with owner
references, no duplicates while creates are unseen, scale-down order, adoption and
release, status (and no write when unchanged), failures and terminating owners."""

from __future__ import annotations

from typing import Any

from kemu.api import manifest
from kemu.api.v1 import api_pb2
from kemu.client.errors import Forbidden, Invalid
from kemu.services.controllers import replicaset as rsc
from kemu.services.controllers.expectations import Expectations
from tests.unit.controllers.test_replicaset_fakeapi import Failure, FakeAPI, informers

NS = "ns"
NOW = 1_700_000_000.0


def rs(name: str = "web", replicas: int = 3, *, labels: dict[str, str] | None = None,
       selector: dict[str, Any] | None = None, min_ready: int = 0,
       deleting: bool = False) -> api_pb2.Object:
    labels = labels or {"app": name}
    meta: dict[str, Any] = {"name": name, "namespace": NS}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        meta["finalizers"] = ["foregroundDeletion"]
    return manifest.from_dict({
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta,
        "spec": {"replicas": replicas, "minReadySeconds": min_ready,
                 "selector": selector or {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}}}})


def pod(name: str, labels: dict[str, str] | None = None, *, owner: api_pb2.Object | None = None,
        ready: bool = False, ready_at: float = NOW - 100, node: str = "",
        phase: str = "Running") -> api_pb2.Object:
    obj = manifest.from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": labels or {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "x"}], "nodeName": node},
        "status": {"phase": phase}})
    if ready:
        c = obj.pod.status.conditions.add(type="Ready", status="True")
        c.last_transition_time.FromSeconds(int(ready_at))
    if owner is not None:
        m = owner.replica_set.metadata
        obj.pod.metadata.owner_references.add(api_version="apps/v1", kind="ReplicaSet",
                                              name=m.name, uid=m.uid, controller=True)
    return obj


def setup(workload: rsc.Workload = rsc.REPLICA_SET, *, mirror: bool = True,
          expectations: Expectations | None = None
          ) -> tuple[rsc.ReplicaSetController, FakeAPI]:
    api = FakeAPI(mirror=mirror, now=NOW)
    infs = informers(api, *workload.informers)
    ctrl = rsc.ReplicaSetController(api, infs, workload, expectations=expectations,
                                    clock=lambda: NOW)
    return ctrl, api


def owned(api: FakeAPI, uid: str) -> list[api_pb2.Object]:
    return [o for o in api.list("pods", NS)
            if any(r.uid == uid and r.controller for r in o.pod.metadata.owner_references)]


async def test_creates_missing_pods_with_controller_ref() -> None:
    ctrl, api = setup()
    owner = api.put(rs(replicas=3))
    await ctrl.reconcile(f"{NS}/web")
    pods = owned(api, owner.replica_set.metadata.uid)
    assert len(pods) == 3
    for p in pods:
        ref = p.pod.metadata.owner_references[0]
        assert (ref.kind, ref.api_version, ref.name, ref.controller,
                ref.block_owner_deletion) == ("ReplicaSet", "apps/v1", "web", True, True)
        assert p.pod.metadata.generate_name == "web-"
    status = api.list("replicasets", NS)[0].replica_set.status
    assert (status.replicas, status.observed_generation) == (0, 1)  # the sync's view
    await ctrl.reconcile(f"{NS}/web")
    assert api.count("create", "pods") == 3
    assert api.list("replicasets", NS)[0].replica_set.status.replicas == 3


async def test_no_duplicates_while_creates_are_unseen() -> None:
    clock = [0.0]
    ctrl, api = setup(mirror=False, expectations=Expectations(timeout=300,
                                                              clock=lambda: clock[0]))
    api.put(rs(replicas=2))
    await ctrl.reconcile(f"{NS}/web")
    assert api.count("create", "pods") == 2
    assert ctrl.expectations.pending(f"{NS}/web") == (2, 0)
    api.cache(api.objects[("replicasets", f"{NS}/web")])  # only the status write is seen
    await ctrl.reconcile(f"{NS}/web")  # the cache still shows no pods
    assert api.count("create", "pods") == 2
    first = api.list("pods", NS)[0]
    api.cache(first)  # the watch delivers one
    assert ctrl.expectations.pending(f"{NS}/web") == (1, 0)
    clock[0] = 301  # the other never shows up: expectations expire
    await ctrl.reconcile(f"{NS}/web")
    assert api.count("create", "pods") == 3


async def test_replaces_deleted_and_scales_down_in_activepods_order() -> None:
    ctrl, api = setup()
    owner = api.put(rs(replicas=4))
    for p in (pod("ready-old", owner=owner, ready=True, node="n1", ready_at=NOW - 500),
              pod("ready-new", owner=owner, ready=True, node="n1", ready_at=NOW - 50),
              pod("not-ready", owner=owner, node="n1"),
              pod("unscheduled", owner=owner)):
        api.put(p)
    owner.replica_set.spec.replicas = 1
    owner = api.put(owner)
    await ctrl.reconcile(f"{NS}/web")
    assert [n for v, r, n in api.calls if v == "delete"] and \
        {n for v, r, n in api.calls if v == "delete"} == {"unscheduled", "not-ready",
                                                           "ready-new"}
    assert [o.pod.metadata.name for o in api.list("pods", NS)] == ["ready-old"]


async def test_adopts_orphans_releases_mismatches_ignores_others() -> None:
    ctrl, api = setup()
    owner = api.put(rs(replicas=2))
    other = api.put(rs("other", labels={"app": "web", "x": "y"}))
    api.put(pod("orphan"))
    api.put(pod("theirs", owner=other))
    api.put(pod("relabelled", {"app": "debug"}, owner=owner))
    api.put(pod("terminating-orphan"))
    term = api.objects[("pods", f"{NS}/terminating-orphan")]
    term.pod.metadata.deletion_timestamp.FromSeconds(int(NOW))
    api.put(term)
    await ctrl.reconcile(f"{NS}/web")
    by_name = {o.pod.metadata.name: o.pod for o in api.list("pods", NS)}
    assert by_name["orphan"].metadata.owner_references[0].uid == owner.replica_set.metadata.uid
    assert not by_name["relabelled"].metadata.owner_references
    assert by_name["theirs"].metadata.owner_references[0].uid == other.replica_set.metadata.uid
    assert not by_name["terminating-orphan"].metadata.owner_references
    assert len(owned(api, owner.replica_set.metadata.uid)) == 2  # orphan + one created


async def test_no_adoption_for_a_deleted_owner() -> None:
    ctrl, api = setup()
    api.put(rs(replicas=1))
    api.put(pod("orphan"))
    del api.objects[("replicasets", f"{NS}/web")]  # gone on the server, still cached
    await ctrl.reconcile(f"{NS}/web")
    assert not api.list("pods", NS)[0].pod.metadata.owner_references


async def test_status_counts_and_no_write_when_unchanged() -> None:
    ctrl, api = setup()
    owner = api.put(rs(replicas=3, labels={"app": "web", "tier": "fe"},
                       selector={"matchLabels": {"app": "web"}}, min_ready=60))
    api.put(pod("a", {"app": "web", "tier": "fe"}, owner=owner, ready=True,
                ready_at=NOW - 100))
    api.put(pod("b", {"app": "web", "tier": "fe"}, owner=owner, ready=True, ready_at=NOW - 10))
    api.put(pod("c", {"app": "web"}, owner=owner))
    await ctrl.reconcile(f"{NS}/web")
    st = api.list("replicasets", NS)[0].replica_set.status
    assert (st.replicas, st.fully_labeled_replicas, st.ready_replicas,
            st.available_replicas, st.observed_generation) == (3, 2, 2, 1, 1)
    writes = api.count("update_status")
    await ctrl.reconcile(f"{NS}/web")
    assert api.count("update_status") == writes
    assert api.count("create") == 0


async def test_finished_pods_are_not_replicas() -> None:
    ctrl, api = setup()
    owner = api.put(rs(replicas=1))
    api.put(pod("done", owner=owner, phase="Succeeded"))
    await ctrl.reconcile(f"{NS}/web")
    assert api.count("create", "pods") == 1


async def test_create_failure_sets_replica_failure_and_stops_batch() -> None:
    ctrl, api = setup()
    api.fail[("create", "pods")] = Failure(Invalid("pods is forbidden: quota"), after=3)
    api.put(rs(replicas=10))
    try:
        await ctrl.reconcile(f"{NS}/web")
    except Invalid:
        pass
    else:
        raise AssertionError("the create error must propagate for a retry")
    assert api.count("create", "pods") == 4 + 3  # batches 1, 2, 4: the third fails
    assert ctrl.expectations.pending(f"{NS}/web") == (0, 0)
    st = api.list("replicasets", NS)[0].replica_set.status
    [cond] = st.conditions
    assert (cond.type, cond.status, cond.reason) == ("ReplicaFailure", "True", "FailedCreate")
    del api.fail[("create", "pods")]
    await ctrl.reconcile(f"{NS}/web")
    assert len(api.list("pods", NS)) == 10
    await ctrl.reconcile(f"{NS}/web")
    assert not api.list("replicasets", NS)[0].replica_set.status.conditions


async def test_terminating_namespace_is_not_an_error() -> None:
    ctrl, api = setup()
    api.fail[("create", "pods")] = Failure(Forbidden(
        "unable to create new content in namespace ns because it is being terminated"))
    api.put(rs(replicas=1))
    await ctrl.reconcile(f"{NS}/web")


async def test_deleting_owner_creates_nothing_but_keeps_status() -> None:
    ctrl, api = setup()
    owner = api.put(rs(replicas=2, deleting=True))
    api.put(pod("a", owner=owner))
    await ctrl.reconcile(f"{NS}/web")
    assert api.count("create", "pods") == 0
    assert api.list("replicasets", NS)[0].replica_set.status.replicas == 1


async def test_replication_controller_map_selector_and_ref() -> None:
    ctrl, api = setup(rsc.REPLICATION_CONTROLLER)
    api.put(manifest.from_dict({
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "rc", "namespace": NS},
        "spec": {"replicas": 2, "selector": {"app": "rc"},
                 "template": {"metadata": {"labels": {"app": "rc"}},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}}}}))
    api.put(pod("orphan", {"app": "rc"}))
    await ctrl.reconcile(f"{NS}/rc")
    pods = api.list("pods", NS)
    assert len(pods) == 2
    refs = {(r.kind, r.api_version) for p in pods for r in p.pod.metadata.owner_references}
    assert refs == {("ReplicationController", "v1")}
    st = api.list("replicationcontrollers", NS)[0].replication_controller.status
    assert (st.replicas, st.observed_generation) == (1, 1)


async def test_pod_events_map_to_owners_and_count_expectations() -> None:
    ctrl, api = setup(mirror=False)
    owner = api.put(rs(replicas=1))
    key = f"{NS}/web"
    ctrl.expectations.expect_creations(key, 1)
    mine = pod("mine", owner=owner)
    ctrl.on_pod(None, mine)
    assert ctrl.expectations.satisfied(key) and key in ctrl.queue._queue
    ctrl.queue._queue.clear()
    ctrl.queue._dirty.clear()
    ctrl.on_pod(None, pod("orphan"))  # an orphan that matches: the owner may adopt it
    assert key in ctrl.queue._queue
    ctrl.expectations.expect_deletions(key, [mine.pod.metadata.uid])
    dying = api_pb2.Object()
    dying.CopyFrom(mine)
    dying.pod.metadata.deletion_timestamp.FromSeconds(int(NOW))
    ctrl.on_pod(mine, dying)
    assert ctrl.expectations.satisfied(key)
    ctrl.on_owner(owner, None)
    assert ctrl.expectations.pending(key) == (0, 0)


async def test_requeues_when_a_pod_will_become_available() -> None:
    ctrl, api = setup()
    owner = api.put(rs(replicas=1, min_ready=30))
    api.put(pod("a", owner=owner, ready=True, ready_at=NOW - 10))
    await ctrl.reconcile(f"{NS}/web")
    await ctrl.reconcile(f"{NS}/web")
    assert len(ctrl.queue._timers) == 1, "one wake-up, however often it is asked for"
    for handle in ctrl.queue._timers:
        handle.cancel()
