"""The DaemonSet sync against the in-memory API: one pinned pod per eligible node with the
daemon tolerations, hash label and controller reference; nodes joining, relabelled and
tainted; failed and duplicate pods; RollingUpdate within maxUnavailable and OnDelete;
status, the revision annotation and events."""

from __future__ import annotations

from typing import Any

from kemu.api import manifest
from kemu.api.v1 import api_pb2, core_pb2
from kemu.services.controllers import daemonset as dsc
from kemu.services.controllers import ds_nodes, ds_rolling
from tests.unit.controllers.test_replicaset_fakeapi import FakeAPI, informers

NS = "ns"
KEY = f"{NS}/agent"
NOW = 1_700_000_000.0


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str, str]] = []

    def emit(self, kind: str, obj: Any, type_: str, reason: str, message: str, *,
             field_path: str = "") -> None:
        self.events.append((kind, obj.metadata.name, type_, reason, message))

    def reasons(self) -> list[str]:
        return [e[3] for e in self.events]


def daemonset(*, image: str = "x", strategy: dict[str, Any] | None = None,
              spec: dict[str, Any] | None = None) -> api_pb2.Object:
    return manifest.from_dict({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": NS},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
                 "updateStrategy": strategy or {"type": "RollingUpdate",
                                                "rollingUpdate": {"maxUnavailable": 1}},
                 "template": {"metadata": {"labels": {"app": "agent"}},
                              "spec": {"containers": [{"name": "c", "image": image}],
                                       **(spec or {})}}}})


def node(name: str, labels: dict[str, str] | None = None,
         taints: list[dict[str, str]] | None = None) -> api_pb2.Object:
    return manifest.from_dict({"apiVersion": "v1", "kind": "Node",
                               "metadata": {"name": name, "labels": labels or {}},
                               "spec": {"taints": taints or []}})


def setup() -> tuple[dsc.DaemonSetController, FakeAPI, FakeRecorder]:
    api = FakeAPI(now=NOW)
    infs = informers(api, *dsc.INFORMERS)
    rec = FakeRecorder()
    ctrl = dsc.DaemonSetController(api, infs, recorder=rec, clock=lambda: NOW)
    return ctrl, api, rec


def pods(api: FakeAPI) -> dict[str, core_pb2.Pod]:
    """Daemon pods by the node they are for."""
    out = {}
    for o in api.list("pods", NS):
        target = ds_nodes.target_node(o.pod)
        assert target is not None and target not in out, "one pod per node"
        out[target] = o.pod
    return out


def status(api: FakeAPI) -> tuple[int, ...]:
    st = api.list("daemonsets", NS)[0].daemon_set.status
    return (st.desired_number_scheduled, st.current_number_scheduled, st.number_misscheduled,
            st.number_ready, st.updated_number_scheduled, st.number_available,
            st.number_unavailable)


def make_ready(api: FakeAPI, p: core_pb2.Pod, node_name: str = "") -> None:
    obj = api.objects[("pods", f"{NS}/{p.metadata.name}")]
    obj.pod.spec.node_name = node_name or ds_nodes.target_node(obj.pod) or ""
    obj.pod.status.phase = "Running"
    obj.pod.status.conditions.add(type="Ready", status="True")
    api.put(obj)


async def test_one_pinned_pod_per_eligible_node() -> None:
    ctrl, api, rec = setup()
    for n in (node("a", {"role": "edge"}), node("b", {"role": "edge"}), node("c"),
              node("d", {"role": "edge"}, [{"key": "k", "effect": "NoSchedule"}])):
        api.put(n)
    owner = api.put(daemonset(spec={"nodeSelector": {"role": "edge"}}))
    await ctrl.reconcile(KEY)
    got = pods(api)
    assert sorted(got) == ["a", "b"]
    revision = dsc.revision_of(owner.daemon_set)
    for name, p in got.items():
        [ref] = p.metadata.owner_references
        assert (ref.kind, ref.name, ref.uid, ref.controller) == \
            ("DaemonSet", "agent", owner.daemon_set.metadata.uid, True)
        assert dict(p.metadata.labels) == {"app": "agent", "controller-revision-hash": revision}
        assert p.metadata.generate_name == "agent-"
        assert not p.spec.node_name  # the scheduler binds it
        [term] = p.spec.affinity.node_affinity.\
            required_during_scheduling_ignored_during_execution.node_selector_terms
        assert list(term.match_fields[0].values) == [name]
        assert {t.key for t in p.spec.tolerations} >= {"node.kubernetes.io/not-ready",
                                                       "node.kubernetes.io/unschedulable"}
    stored = api.list("daemonsets", NS)[0].daemon_set
    assert stored.metadata.annotations[dsc.REVISION_ANNOTATION] == revision
    assert rec.reasons().count("SuccessfulCreate") == 2
    assert ("DaemonSet", "agent", "Normal", "SuccessfulCreate",
            f"Created pod: {got['a'].metadata.name}") in rec.events
    await ctrl.reconcile(KEY)
    assert api.count("create", "pods") == 2
    assert status(api) == (2, 2, 0, 0, 2, 0, 2)
    assert stored.status.observed_generation == stored.metadata.generation


async def test_nodes_joining_and_leaving_the_selection() -> None:
    ctrl, api, rec = setup()
    api.put(daemonset(spec={"nodeSelector": {"role": "edge"}}))
    api.put(node("a", {"role": "edge"}))
    await ctrl.reconcile(KEY)
    assert sorted(pods(api)) == ["a"]
    ctrl.queue._dirty.clear()
    api.put(node("b", {"role": "edge"}))  # a node joins: the DaemonSet is woken
    assert KEY in ctrl.queue._dirty
    await ctrl.reconcile(KEY)
    assert sorted(pods(api)) == ["a", "b"]
    make_ready(api, pods(api)["a"])
    api.put(node("a", {"role": "core"}))  # relabelled out of the selection
    await ctrl.reconcile(KEY)
    assert sorted(pods(api)) == ["b"]
    assert "SuccessfulDelete" in rec.reasons()
    api.put(node("b", {"role": "edge"}, [{"key": "drain", "effect": "NoExecute"}]))
    await ctrl.reconcile(KEY)
    assert pods(api) == {}
    api.put(node("b", {"role": "edge"}))
    await ctrl.reconcile(KEY)
    assert sorted(pods(api)) == ["b"]


async def test_heartbeat_only_node_updates_wake_nothing() -> None:
    ctrl, api, _ = setup()
    api.put(daemonset())
    n = api.put(node("a"))
    ctrl.queue._dirty.clear()
    n.node.status.conditions.add(type="Ready", status="True").last_heartbeat_time.FromSeconds(1)
    api.put(n)
    ctrl.queue._dirty.clear()
    n.node.status.conditions[0].last_heartbeat_time.FromSeconds(2)
    api.put(n)
    assert not ctrl.queue._dirty
    n.node.metadata.labels["x"] = "y"  # changes no verdict of a selector-less DaemonSet
    api.put(n)
    assert not ctrl.queue._dirty


async def test_failed_and_duplicate_pods_are_deleted() -> None:
    ctrl, api, rec = setup()
    api.put(node("a"))
    api.put(node("b"))
    owner = api.put(daemonset())
    rev = dsc.revision_of(owner.daemon_set)
    ref = dict(api_version="apps/v1", kind="DaemonSet", name="agent",
               uid=owner.daemon_set.metadata.uid, controller=True)
    for name, n, phase, t in (("old", "a", "Running", NOW - 100),
                              ("dup", "a", "Running", NOW - 10),
                              ("failed", "b", "Failed", NOW - 10)):
        p = core_pb2.Pod()
        p.metadata.name, p.metadata.namespace = name, NS
        p.metadata.labels.update({"app": "agent", ds_rolling.HASH_LABEL: rev})
        p.metadata.owner_references.add(**ref)
        p.metadata.creation_timestamp.FromSeconds(int(t))
        p.spec.node_name = n
        p.status.phase = phase
        api.put(api_pb2.Object(pod=p))
    await ctrl.reconcile(KEY)
    assert {o.pod.metadata.name for o in api.list("pods", NS)} == {"old"}
    assert "FailedDaemonPod" in rec.reasons()
    await ctrl.reconcile(KEY)  # the replacement for the failed pod
    assert sorted(pods(api)) == ["a", "b"]


async def test_rolling_update_one_node_at_a_time() -> None:
    ctrl, api, _ = setup()
    for n in "abc":
        api.put(node(n))
    owner = api.put(daemonset(image="v1"))
    await ctrl.reconcile(KEY)
    for p in pods(api).values():
        make_ready(api, p)
    owner.daemon_set.spec.template.spec.containers[0].image = "v2"
    owner = api.put(owner)
    new_rev = dsc.revision_of(owner.daemon_set)
    seen_unavailable = 0
    for _ in range(20):
        await ctrl.reconcile(KEY)
        current = pods(api)
        missing = 3 - len(current)
        not_ready = sum(1 for p in current.values() if p.status.phase != "Running")
        seen_unavailable = max(seen_unavailable, missing + not_ready)
        assert missing + not_ready <= 1, "maxUnavailable 1"
        for p in current.values():
            if p.status.phase != "Running":
                make_ready(api, p)
        if all(p.metadata.labels[ds_rolling.HASH_LABEL] == new_rev for p in current.values()) \
                and len(current) == 3:
            break
    else:
        raise AssertionError("the rolling update did not finish")
    assert seen_unavailable == 1
    assert {p.spec.containers[0].image for p in pods(api).values()} == {"v2"}
    await ctrl.reconcile(KEY)
    assert status(api) == (3, 3, 0, 3, 3, 3, 0)


async def test_on_delete_replaces_only_deleted_pods() -> None:
    ctrl, api, _ = setup()
    for n in "ab":
        api.put(node(n))
    owner = api.put(daemonset(image="v1", strategy={"type": "OnDelete"}))
    await ctrl.reconcile(KEY)
    owner.daemon_set.spec.template.spec.containers[0].image = "v2"
    api.put(owner)
    await ctrl.reconcile(KEY)
    assert api.count("delete", "pods") == 0
    await api.delete("pods", pods(api)["a"].metadata.name, NS)
    await ctrl.reconcile(KEY)
    images = {n: p.spec.containers[0].image for n, p in pods(api).items()}
    assert images == {"a": "v2", "b": "v1"}
    st = api.list("daemonsets", NS)[0].daemon_set.status
    assert st.updated_number_scheduled == 1


async def test_unscheduled_pod_of_a_deleted_node_is_deleted() -> None:
    ctrl, api, _ = setup()
    api.put(node("a"))
    api.put(daemonset())
    await ctrl.reconcile(KEY)
    gone = api.objects[("nodes", "a")]
    del api.objects[("nodes", "a")]
    api.cache(gone, deleted=True)
    assert KEY in ctrl.queue._dirty
    await ctrl.reconcile(KEY)
    assert api.list("pods", NS) == []
    assert status(api) == (0, 0, 0, 0, 0, 0, 0)


async def test_orphans_adopted_and_selecting_all_refused() -> None:
    ctrl, api, rec = setup()
    api.put(node("a"))
    owner = api.put(daemonset(strategy={"type": "OnDelete"}))  # keeps the unhashed orphan
    orphan = core_pb2.Pod()
    orphan.metadata.name, orphan.metadata.namespace = "orphan", NS
    orphan.metadata.labels["app"] = "agent"
    orphan.spec.node_name = "a"
    api.put(api_pb2.Object(pod=orphan))
    await ctrl.reconcile(KEY)
    [p] = api.list("pods", NS)
    assert p.pod.metadata.owner_references[0].uid == owner.daemon_set.metadata.uid
    owner.daemon_set.spec.selector.Clear()
    api.put(owner)
    await ctrl.reconcile(KEY)
    assert rec.reasons()[-1] == "SelectingAll"


async def test_missing_daemonset_forgets_expectations() -> None:
    ctrl, _, _ = setup()
    ctrl.expectations.expect(KEY, 2, [])
    await ctrl.reconcile(KEY)
    assert ctrl.expectations.pending(KEY) == (0, 0)


async def test_surge_update_keeps_every_node_available() -> None:
    ctrl, api, _ = setup()
    for n in "abc":
        api.put(node(n))
    owner = api.put(daemonset(image="v1", strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}))
    await ctrl.reconcile(KEY)
    for p in pods(api).values():
        make_ready(api, p)
    owner.daemon_set.spec.template.spec.containers[0].image = "v2"
    api.put(owner)
    most = 0
    for _ in range(30):
        await ctrl.reconcile(KEY)
        by_node: dict[str, list[core_pb2.Pod]] = {}
        for o in api.list("pods", NS):
            by_node.setdefault(ds_nodes.target_node(o.pod) or "", []).append(o.pod)
        assert all(any(p.status.phase == "Running" for p in ps) for ps in by_node.values())
        assert len(by_node) == 3, "every node keeps a ready pod"
        most = max(most, sum(len(ps) for ps in by_node.values()))
        assert most <= 4, "maxSurge 1"
        for ps in by_node.values():
            for p in ps:
                if p.status.phase != "Running":
                    make_ready(api, p)
        images = [p.spec.containers[0].image for ps in by_node.values() for p in ps]
        if images == ["v2"] * 3:
            break
    else:
        raise AssertionError("the surge update did not finish")
    assert most == 4
