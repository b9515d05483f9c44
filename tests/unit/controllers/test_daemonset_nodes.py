"""Which nodes run a daemon pod (nodeName, nodeSelector, required affinity, taints against
the template's and the default daemon tolerations), the pod's node pin, and the rolling
update and status arithmetic, as pure functions."""

from __future__ import annotations

from typing import Any

import pytest

from kemu.api import manifest
from kemu.api.v1 import apps_pb2, core_pb2
from kemu.services.controllers import ds_nodes, ds_rolling
from kemu.services.controllers.ds_nodes import Placement

NOW = 1_700_000_000.0


def node(name: str = "n1", *, labels: dict[str, str] | None = None,
         taints: list[dict[str, str]] | None = None, unschedulable: bool = False
         ) -> core_pb2.Node:
    return manifest.from_dict({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"taints": taints or [], "unschedulable": unschedulable}}).node


def template(spec: dict[str, Any] | None = None) -> core_pb2.PodTemplateSpec:
    obj = manifest.from_dict({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"app": "d"}},
                 "template": {"metadata": {"labels": {"app": "d"}},
                              "spec": {"containers": [{"name": "c", "image": "x"}],
                                       **(spec or {})}}}})
    return obj.daemon_set.spec.template


def judge(spec: dict[str, Any] | None, n: core_pb2.Node) -> Placement:
    return ds_nodes.placement(ds_nodes.daemon_pod_spec(template(spec)), n)


def _affinity(*exprs: dict[str, Any], fields: list[dict[str, Any]] | None = None
              ) -> dict[str, Any]:
    term: dict[str, Any] = {"matchExpressions": list(exprs)}
    if fields:
        term["matchFields"] = fields
    return {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [term]}}}}


YES, NO, STAY = Placement(True, True), Placement(False, False), Placement(False, True)


@pytest.mark.parametrize(("spec", "n", "want"), [
    pytest.param(None, node(), YES, id="plain"),
    pytest.param({"nodeSelector": {"disk": "ssd"}}, node(labels={"disk": "ssd"}), YES,
                 id="selector-match"),
    pytest.param({"nodeSelector": {"disk": "ssd"}}, node(labels={"disk": "hdd"}), NO,
                 id="selector-mismatch"),
    pytest.param(_affinity({"key": "zone", "operator": "In", "values": ["a", "b"]}),
                 node(labels={"zone": "b"}), YES, id="affinity-in"),
    pytest.param(_affinity({"key": "zone", "operator": "NotIn", "values": ["a"]}),
                 node(), YES, id="affinity-notin-missing-label"),
    pytest.param(_affinity({"key": "cpus", "operator": "Gt", "values": ["4"]}),
                 node(labels={"cpus": "2"}), NO, id="affinity-gt"),
    pytest.param(_affinity(fields=[{"key": "metadata.name", "operator": "In",
                                    "values": ["n2"]}]), node(), NO, id="affinity-field"),
    pytest.param({"nodeName": "n2"}, node(), NO, id="node-name"),
    pytest.param(None, node(unschedulable=True), YES, id="cordoned"),
    pytest.param(None, node(taints=[{"key": "node.kubernetes.io/unschedulable",
                                     "effect": "NoSchedule"}]), YES, id="unschedulable-taint"),
    pytest.param(None, node(taints=[{"key": "node.kubernetes.io/not-ready",
                                     "effect": "NoExecute"}]), YES, id="not-ready"),
    pytest.param(None, node(taints=[{"key": "node.kubernetes.io/not-ready",
                                     "effect": "NoSchedule"}]), STAY,
                 id="not-ready-noschedule-not-defaulted"),
    pytest.param(None, node(taints=[{"key": "node.kubernetes.io/memory-pressure",
                                     "effect": "NoSchedule"}]), YES, id="memory-pressure"),
    pytest.param(None, node(taints=[{"key": "dedicated", "value": "gpu",
                                     "effect": "NoSchedule"}]), STAY, id="noschedule-stays"),
    pytest.param(None, node(taints=[{"key": "dedicated", "value": "gpu",
                                     "effect": "NoExecute"}]), NO, id="noexecute-evicts"),
    pytest.param({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu",
                                   "effect": "NoExecute"}]},
                 node(taints=[{"key": "dedicated", "value": "gpu", "effect": "NoExecute"}]),
                 YES, id="tolerated"),
    pytest.param(None, node(taints=[{"key": "x", "effect": "PreferNoSchedule"}]), YES,
                 id="prefer-no-schedule"),
    pytest.param({"hostNetwork": True},
                 node(taints=[{"key": "node.kubernetes.io/network-unavailable",
                               "effect": "NoSchedule"}]), YES, id="host-network"),
])
def test_placement(spec: dict[str, Any] | None, n: core_pb2.Node, want: Placement) -> None:
    assert judge(spec, n) == want


def test_default_tolerations_added_once() -> None:
    t = template({"tolerations": [{"key": "node.kubernetes.io/unschedulable",
                                   "operator": "Exists", "effect": "NoSchedule"}]})
    spec = ds_nodes.daemon_pod_spec(t)
    got = [(x.key, x.operator, x.effect) for x in spec.tolerations]
    assert got == [("node.kubernetes.io/unschedulable", "Exists", "NoSchedule"),
                   ("node.kubernetes.io/not-ready", "Exists", "NoExecute"),
                   ("node.kubernetes.io/unreachable", "Exists", "NoExecute"),
                   ("node.kubernetes.io/disk-pressure", "Exists", "NoSchedule"),
                   ("node.kubernetes.io/memory-pressure", "Exists", "NoSchedule"),
                   ("node.kubernetes.io/pid-pressure", "Exists", "NoSchedule")]
    assert len(t.spec.tolerations) == 1  # the template is not changed


def test_pin_replaces_required_terms_and_is_read_back() -> None:
    t = template({**_affinity({"key": "zone", "operator": "In", "values": ["a"]}),
                  "nodeSelector": {"zone": "a"}})
    ds_nodes.pin_to_node(t.spec, "n7")
    [term] = t.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution\
        .node_selector_terms
    assert not term.match_expressions
    assert [(f.key, f.operator, list(f.values)) for f in term.match_fields] == \
        [("metadata.name", "In", ["n7"])]
    assert dict(t.spec.node_selector) == {"zone": "a"}
    pod = core_pb2.Pod(spec=t.spec)
    assert ds_nodes.target_node(pod) == "n7"
    pod.spec.node_name = "n8"
    assert ds_nodes.target_node(pod) == "n8"
    assert ds_nodes.target_node(core_pb2.Pod()) is None


# ---- rolling update and status ----------------------------------------------------------


def pod(name: str, node_name: str, rev: str, *, ready: bool = True, phase: str = "Running",
        created: float = NOW - 100, bound: bool = True) -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name = name
    p.metadata.labels[ds_rolling.HASH_LABEL] = rev
    p.metadata.creation_timestamp.FromSeconds(int(created))
    if bound:
        p.spec.node_name = node_name
    else:
        ds_nodes.pin_to_node(p.spec, node_name)
    p.status.phase = phase
    if ready:
        c = p.status.conditions.add(type="Ready", status="True")
        c.last_transition_time.FromSeconds(int(NOW - 50))
    return p


def _intstr(value: Any, field: Any) -> None:
    if isinstance(value, str):
        field.string_value = value
    elif value is not None:
        field.number_value = value


def ds(max_unavailable: Any = None, min_ready: int = 0, max_surge: Any = None
       ) -> apps_pb2.DaemonSet:
    d = apps_pb2.DaemonSet()
    d.metadata.generation = 3
    d.spec.min_ready_seconds = min_ready
    _intstr(max_unavailable, d.spec.update_strategy.rolling_update.max_unavailable)
    _intstr(max_surge, d.spec.update_strategy.rolling_update.max_surge)
    return d


@pytest.mark.parametrize(("unavailable", "surge", "desired", "want"), [
    pytest.param(None, None, 10, (0, 1), id="default"),
    pytest.param(3, 0, 10, (0, 3), id="int"),
    pytest.param("25%", None, 10, (0, 3), id="percent-rounds-up"),
    pytest.param("0%", "0%", 10, (0, 1), id="never-both-zero"),
    pytest.param(0, "10%", 10, (1, 0), id="surge"),
])
def test_fenceposts(unavailable: Any, surge: Any, desired: int, want: tuple[int, int]) -> None:
    d = ds(unavailable, max_surge=surge)
    assert ds_rolling.fenceposts(d, desired) == want
    assert ds_rolling.allows_surge(d) == (want[0] > 0)


def test_rolling_deletions_respect_max_unavailable() -> None:
    by_node = ds_rolling.pods_by_node([pod(f"p{i}", f"n{i}", "old") for i in range(4)])
    wanted = [f"n{i}" for i in range(4)]
    got = ds_rolling.rolling_deletions(by_node, wanted, "new", 2, 0, NOW)
    assert [p.metadata.name for p in got] == ["p0", "p1"]
    # n0 has a new pod that is not ready yet: one unavailable, so one more goes.
    by_node["n0"] = [pod("q0", "n0", "new", ready=False)]
    got = ds_rolling.rolling_deletions(by_node, wanted, "new", 2, 0, NOW)
    assert [p.metadata.name for p in got] == ["p1"]
    # An old pod that is not available is replaced whatever the budget.
    by_node["n3"] = [pod("p3", "n3", "old", ready=False)]
    got = ds_rolling.rolling_deletions(by_node, wanted, "new", 1, 0, NOW)
    assert [p.metadata.name for p in got] == ["p3"]
    # A node that wants a pod and has none counts as unavailable.
    got = ds_rolling.rolling_deletions({"n1": [pod("p1", "n1", "old")]}, ["n0", "n1"],
                                       "new", 1, 0, NOW)
    assert got == []


def test_node_plan() -> None:
    plan = ds_rolling.Plan()
    ds_rolling.node_plan(plan, "n0", YES, [])
    ds_rolling.node_plan(plan, "n1", YES, [pod("old", "n1", "r", created=NOW - 10),
                                           pod("new", "n1", "r", created=NOW - 5)])
    ds_rolling.node_plan(plan, "n2", YES, [pod("f", "n2", "r", phase="Failed")])
    ds_rolling.node_plan(plan, "n3", NO, [pod("gone", "n3", "r")])
    ds_rolling.node_plan(plan, "n4", STAY, [pod("stays", "n4", "r")])
    assert plan.create_on == ["n0"]
    assert [p.metadata.name for p in plan.delete] == ["new", "f", "gone"]
    assert [p.metadata.name for p in plan.failed] == ["f"]


def test_unscheduled_pods_of_deleted_nodes() -> None:
    by_node = ds_rolling.pods_by_node([pod("a", "gone", "r", bound=False),
                                       pod("b", "gone2", "r"), pod("c", "n1", "r", bound=False)])
    got = ds_rolling.unscheduled_without_node(by_node, ["n1"])
    assert [p.metadata.name for p in got] == ["a"]


def test_status_counts() -> None:
    d = ds(min_ready=30)
    placements = {"n0": YES, "n1": YES, "n2": YES, "n3": NO, "n4": YES}
    by_node = ds_rolling.pods_by_node([
        pod("a", "n0", "new"),  # ready 50 s: available
        pod("b", "n1", "old", ready=False),
        pod("c", "n2", "new", ready=True, created=NOW - 10),
        pod("x", "n3", "new")])
    by_node["n2"][0].status.conditions[0].last_transition_time.FromSeconds(int(NOW - 5))
    st = ds_rolling.status(d, placements, by_node, "new", NOW)
    assert (st.desired_number_scheduled, st.current_number_scheduled, st.number_misscheduled,
            st.number_ready, st.number_available, st.updated_number_scheduled,
            st.number_unavailable, st.observed_generation) == (4, 3, 1, 2, 1, 2, 3, 3)



def test_surge_plan_creates_beside_old_pods_then_deletes_them() -> None:
    surge = ds_rolling.Surge("new", 0, NOW)
    by_node: dict[str, list[core_pb2.Pod]] = {
        "n0": [pod("a0", "n0", "old")], "n1": [pod("a1", "n1", "old")],
        "n2": [pod("a2", "n2", "old", ready=False)]}
    placements = {"n0": YES, "n1": YES, "n2": YES}
    delete, create = ds_rolling.surge_plan(by_node, placements, 1, surge)
    assert (delete, create) == ([], ["n2", "n0"])  # the unavailable one, plus one surge
    by_node["n0"].append(pod("b0", "n0", "new", ready=False))
    delete, create = ds_rolling.surge_plan(by_node, placements, 1, surge)
    assert (delete, create) == ([], ["n2"])  # n0 is surging: no other candidate
    by_node["n0"][1] = pod("b0", "n0", "new")
    delete, create = ds_rolling.surge_plan(by_node, placements, 1, surge)
    assert [p.metadata.name for p in delete] == ["a0"] and create == ["n2", "n1"]


def test_node_plan_with_surge_keeps_old_until_new_is_available() -> None:
    surge = ds_rolling.Surge("new", 0, NOW)
    plan = ds_rolling.Plan()
    ds_rolling.node_plan(plan, "n0", YES, [pod("old", "n0", "old"),
                                           pod("new", "n0", "new", ready=False)], surge)
    assert plan.delete == []
    ds_rolling.node_plan(plan, "n1", YES, [pod("old", "n1", "old"),
                                           pod("new", "n1", "new")], surge)
    assert [p.metadata.name for p in plan.delete] == ["old"]
