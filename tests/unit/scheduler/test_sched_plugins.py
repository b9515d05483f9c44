"""Each filter and score plugin on its own, table-driven: pod + node -> status or score."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from kemu.api.v1 import core_pb2
from kemu.services.scheduler.framework import SUCCESS, CycleState, Status, Unschedulable
from kemu.services.scheduler.nodeinfo import NodeInfo, PodInfo
from kemu.services.scheduler.plugins import (
    node_affinity,
    node_name,
    node_ports,
    node_ready,
    node_resources_fit,
    node_unschedulable,
    selector_spread,
    taint_toleration,
)
from tests.unit.scheduler.sched_builders import container, node, node_info, pod


def run_filter(plugin: object, p: core_pb2.Pod, info: NodeInfo) -> Status:
    state: CycleState = {}
    pi = PodInfo.of(p)
    pre = getattr(plugin, "pre_filter", None)
    if pre is not None:
        assert pre(state, pi).ok
    result: Status = plugin.filter(state, pi, info)  # type: ignore[attr-defined]
    return result


def scores(plugin: object, p: core_pb2.Pod, infos: Sequence[NodeInfo]) -> list[int]:
    state: CycleState = {}
    pi = PodInfo.of(p)
    pre = getattr(plugin, "pre_score", None)
    if pre is not None:
        assert pre(state, pi, infos).ok
    raw = [plugin.score(state, pi, n) for n in infos]  # type: ignore[attr-defined]
    normalize = getattr(plugin, "normalize_scores", None)
    if normalize is not None:
        normalize(state, pi, raw)
    return raw


# ---- NodeUnschedulable --------------------------------------------------------------------

UNSCHEDULABLE_TOLERATION = {"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                            "effect": "NoSchedule"}


@pytest.mark.parametrize(("p", "n", "expected"), [
    pytest.param(pod(), node(), SUCCESS, id="schedulable"),
    pytest.param(pod(), node(unschedulable=True), Unschedulable("node(s) were unschedulable"),
                 id="cordoned"),
    pytest.param(pod(tolerations=[UNSCHEDULABLE_TOLERATION]), node(unschedulable=True),
                 SUCCESS, id="cordon-tolerated"),
    pytest.param(pod(tolerations=[{"operator": "Exists"}]), node(unschedulable=True), SUCCESS,
                 id="tolerate-everything"),
])
def test_node_unschedulable(p: core_pb2.Pod, n: core_pb2.Node, expected: Status) -> None:
    assert run_filter(node_unschedulable.NodeUnschedulable(), p, node_info(n)) == expected


# ---- NodeReady ----------------------------------------------------------------------------

NOT_READY = Unschedulable("node(s) were not ready")


@pytest.mark.parametrize(("p", "n", "expected"), [
    pytest.param(pod(), node(ready="True"), SUCCESS, id="ready"),
    pytest.param(pod(), node(ready="False"), NOT_READY, id="not-ready"),
    pytest.param(pod(), node(ready="Unknown"), NOT_READY, id="unknown"),
    pytest.param(pod(), node(ready=None), NOT_READY, id="no-condition"),
    pytest.param(pod(tolerations=[{"key": "node.kubernetes.io/not-ready",
                                   "operator": "Exists"}]),
                 node(ready="False"), SUCCESS, id="not-ready-tolerated"),
    pytest.param(pod(tolerations=[{"key": "node.kubernetes.io/not-ready",
                                   "operator": "Exists"}]),
                 node(ready="Unknown"), NOT_READY, id="unreachable-needs-its-own"),
    pytest.param(pod(tolerations=[{"key": "node.kubernetes.io/unreachable",
                                   "operator": "Exists", "effect": "NoSchedule"}]),
                 node(ready="Unknown"), SUCCESS, id="unreachable-tolerated"),
])
def test_node_ready(p: core_pb2.Pod, n: core_pb2.Node, expected: Status) -> None:
    assert run_filter(node_ready.NodeReady(), p, node_info(n)) == expected


# ---- NodeName -----------------------------------------------------------------------------

@pytest.mark.parametrize(("p", "expected"), [
    pytest.param(pod(), SUCCESS, id="unset"),
    pytest.param(pod(node_name="n1"), SUCCESS, id="this-node"),
    pytest.param(pod(node_name="n2"),
                 Unschedulable("node(s) didn't match the requested node name"),
                 id="other-node"),
])
def test_node_name(p: core_pb2.Pod, expected: Status) -> None:
    assert run_filter(node_name.NodeName(), p, node_info(node("n1"))) == expected
    assert node_name.is_assigned(p) is bool(p.spec.node_name)


# ---- TaintToleration ----------------------------------------------------------------------

def tol(key: str = "", value: str = "", effect: str = "", operator: str = "Equal"
        ) -> core_pb2.Toleration:
    return core_pb2.Toleration(key=key, value=value, effect=effect, operator=operator)


@pytest.mark.parametrize(("t", "taint", "expected"), [
    pytest.param(tol("k", "v", "NoSchedule"), ("k", "v", "NoSchedule"), True, id="exact"),
    pytest.param(tol("k", "v"), ("k", "v", "NoExecute"), True, id="empty-effect-matches-all"),
    pytest.param(tol("k", "w", "NoSchedule"), ("k", "v", "NoSchedule"), False,
                 id="value-differs"),
    pytest.param(tol("k", "", "NoSchedule", "Exists"), ("k", "v", "NoSchedule"), True,
                 id="exists-ignores-value"),
    pytest.param(tol("", "", "", "Exists"), ("any", "v", "NoExecute"), True,
                 id="empty-key-exists"),
    pytest.param(tol("k", "v", "NoExecute"), ("k", "v", "NoSchedule"), False,
                 id="effect-differs"),
    pytest.param(tol("other", "v", "NoSchedule"), ("k", "v", "NoSchedule"), False,
                 id="key-differs"),
    pytest.param(tol("k", "v", "", ""), ("k", "v", "NoSchedule"), True,
                 id="empty-operator-is-equal"),
])
def test_toleration_matching(t: core_pb2.Toleration, taint: tuple[str, str, str],
                             expected: bool) -> None:
    assert taint_toleration.tolerates(t, *taint) is expected


@pytest.mark.parametrize(("p", "n", "expected"), [
    pytest.param(pod(), node(), SUCCESS, id="no-taints"),
    pytest.param(pod(), node(taints=[("dedicated", "gpu", "NoSchedule")]),
                 Unschedulable("node(s) had untolerated taint {dedicated: gpu}"),
                 id="untolerated"),
    pytest.param(pod(), node(taints=[("node.kubernetes.io/disk-pressure", "", "NoSchedule")]),
                 Unschedulable("node(s) had untolerated taint "
                               "{node.kubernetes.io/disk-pressure: }"), id="empty-value"),
    pytest.param(pod(), node(taints=[("x", "y", "NoExecute")]),
                 Unschedulable("node(s) had untolerated taint {x: y}"), id="no-execute"),
    pytest.param(pod(), node(taints=[("x", "y", "PreferNoSchedule")]), SUCCESS,
                 id="prefer-is-not-a-filter"),
    pytest.param(pod(tolerations=[{"key": "dedicated", "value": "gpu",
                                   "effect": "NoSchedule"}]),
                 node(taints=[("dedicated", "gpu", "NoSchedule")]), SUCCESS, id="tolerated"),
    pytest.param(pod(tolerations=[{"key": "a", "operator": "Exists"}]),
                 node(taints=[("a", "1", "NoSchedule"), ("b", "2", "NoSchedule")]),
                 Unschedulable("node(s) had untolerated taint {b: 2}"),
                 id="first-untolerated-reported"),
])
def test_taint_filter(p: core_pb2.Pod, n: core_pb2.Node, expected: Status) -> None:
    assert run_filter(taint_toleration.TaintToleration(), p, node_info(n)) == expected


def test_taint_score_prefers_fewer_untolerated_prefer_no_schedule_taints() -> None:
    nodes = [node_info(node("clean")),
             node_info(node("one", taints=[("a", "", "PreferNoSchedule")])),
             node_info(node("two", taints=[("a", "", "PreferNoSchedule"),
                                           ("b", "", "PreferNoSchedule")]))]
    assert scores(taint_toleration.TaintToleration(), pod(), nodes) == [100, 50, 0]
    tolerant = pod(tolerations=[{"key": "a", "operator": "Exists",
                                 "effect": "PreferNoSchedule"}])
    assert scores(taint_toleration.TaintToleration(), tolerant, nodes) == [100, 100, 0]
    assert scores(taint_toleration.TaintToleration(), pod(), nodes[:1]) == [100]


# ---- NodeAffinity -------------------------------------------------------------------------

def req(key: str, op: str, *values: str) -> core_pb2.NodeSelectorRequirement:
    return core_pb2.NodeSelectorRequirement(key=key, operator=op, values=list(values))


def affinity_pod(*terms: tuple[Sequence[core_pb2.NodeSelectorRequirement],
                               Sequence[core_pb2.NodeSelectorRequirement]],
                 selector: Mapping[str, str] | None = None) -> core_pb2.Pod:
    p = pod(node_selector=selector)
    required = p.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    required.SetInParent()
    for exprs, fields in terms:
        required.node_selector_terms.add(match_expressions=list(exprs),
                                         match_fields=list(fields))
    return p


def expr(*reqs: core_pb2.NodeSelectorRequirement) -> tuple[
        Sequence[core_pb2.NodeSelectorRequirement], Sequence[core_pb2.NodeSelectorRequirement]]:
    return (reqs, ())


LABELS = {"zone": "a", "disk": "ssd", "cores": "8"}
MISMATCH = Unschedulable("node(s) didn't match Pod's node affinity/selector")


@pytest.mark.parametrize(("p", "expected"), [
    pytest.param(pod(), SUCCESS, id="nothing-asked"),
    pytest.param(pod(node_selector={"zone": "a"}), SUCCESS, id="selector-match"),
    pytest.param(pod(node_selector={"zone": "b"}), MISMATCH, id="selector-value"),
    pytest.param(pod(node_selector={"zone": "a", "gpu": "yes"}), MISMATCH,
                 id="selector-all-must-match"),
    pytest.param(affinity_pod(expr(req("zone", "In", "a", "b"))), SUCCESS, id="in"),
    pytest.param(affinity_pod(expr(req("zone", "In", "b"))), MISMATCH, id="in-miss"),
    pytest.param(affinity_pod(expr(req("zone", "NotIn", "b"))), SUCCESS, id="notin"),
    pytest.param(affinity_pod(expr(req("zone", "NotIn", "a"))), MISMATCH, id="notin-miss"),
    pytest.param(affinity_pod(expr(req("rack", "NotIn", "a"))), SUCCESS,
                 id="notin-absent-label"),
    pytest.param(affinity_pod(expr(req("disk", "Exists"))), SUCCESS, id="exists"),
    pytest.param(affinity_pod(expr(req("gpu", "Exists"))), MISMATCH, id="exists-miss"),
    pytest.param(affinity_pod(expr(req("gpu", "DoesNotExist"))), SUCCESS, id="doesnotexist"),
    pytest.param(affinity_pod(expr(req("disk", "DoesNotExist"))), MISMATCH,
                 id="doesnotexist-miss"),
    pytest.param(affinity_pod(expr(req("cores", "Gt", "4"))), SUCCESS, id="gt"),
    pytest.param(affinity_pod(expr(req("cores", "Gt", "8"))), MISMATCH, id="gt-equal"),
    pytest.param(affinity_pod(expr(req("cores", "Lt", "16"))), SUCCESS, id="lt"),
    pytest.param(affinity_pod(expr(req("zone", "Lt", "16"))), MISMATCH, id="lt-not-a-number"),
    pytest.param(affinity_pod(expr(req("rack", "Gt", "1"))), MISMATCH, id="gt-absent"),
    pytest.param(affinity_pod(expr(req("cores", "Gt", "x"))), MISMATCH, id="gt-bad-value"),
    pytest.param(affinity_pod(expr(req("zone", "In", "a"), req("disk", "In", "hdd"))),
                 MISMATCH, id="term-is-and"),
    pytest.param(affinity_pod(expr(req("zone", "In", "b")), expr(req("disk", "In", "ssd"))),
                 SUCCESS, id="terms-are-or"),
    pytest.param(affinity_pod(), MISMATCH, id="no-terms-matches-nothing"),
    pytest.param(affinity_pod(((), ())), MISMATCH, id="empty-term-matches-nothing"),
    pytest.param(affinity_pod(((), [req("metadata.name", "In", "n1")])), SUCCESS,
                 id="field-name"),
    pytest.param(affinity_pod(((), [req("metadata.name", "In", "n2")])), MISMATCH,
                 id="field-name-miss"),
    pytest.param(affinity_pod(((), [req("metadata.name", "NotIn", "n2")])), SUCCESS,
                 id="field-name-notin"),
    pytest.param(affinity_pod(((), [req("metadata.labels", "In", "n1")])), MISMATCH,
                 id="field-unsupported"),
    pytest.param(affinity_pod(expr(req("zone", "Near", "a"))), MISMATCH, id="bad-operator"),
    pytest.param(affinity_pod(expr(req("zone", "In", "a")), selector={"disk": "hdd"}),
                 MISMATCH, id="selector-and-affinity-both-needed"),
])
def test_node_affinity(p: core_pb2.Pod, expected: Status) -> None:
    n = node("n1", labels=LABELS)
    assert run_filter(node_affinity.NodeAffinity(), p, node_info(n)) == expected


def test_node_affinity_preferred_terms_score_by_weight() -> None:
    p = pod()
    prefs = p.spec.affinity.node_affinity.preferred_during_scheduling_ignored_during_execution
    prefs.add(weight=10, preference=core_pb2.NodeSelectorTerm(
        match_expressions=[req("disk", "In", "ssd")]))
    prefs.add(weight=30, preference=core_pb2.NodeSelectorTerm(
        match_expressions=[req("zone", "In", "a")]))
    nodes = [node_info(node("both", labels={"disk": "ssd", "zone": "a"})),
             node_info(node("zone", labels={"zone": "a"})),
             node_info(node("ssd", labels={"disk": "ssd"})),
             node_info(node("none"))]
    assert scores(node_affinity.NodeAffinity(), p, nodes) == [100, 75, 25, 0]
    assert scores(node_affinity.NodeAffinity(), pod(), nodes) == [0, 0, 0, 0]


# ---- NodePorts ----------------------------------------------------------------------------

PORTS_TAKEN = Unschedulable("node(s) didn't have free ports for the requested pod ports")


@pytest.mark.parametrize(("wanted", "used", "expected"), [
    pytest.param([], [8080], SUCCESS, id="no-ports"),
    pytest.param([8080], [], SUCCESS, id="free-node"),
    pytest.param([8080], [8081], SUCCESS, id="other-port"),
    pytest.param([8080], [8080], PORTS_TAKEN, id="same-port"),
    pytest.param([(53, "UDP", "")], [53], SUCCESS, id="other-protocol"),
    pytest.param([(80, "TCP", "10.0.0.1")], [(80, "TCP", "10.0.0.2")], SUCCESS,
                 id="different-ips"),
    pytest.param([(80, "TCP", "10.0.0.1")], [(80, "TCP", "10.0.0.1")], PORTS_TAKEN,
                 id="same-ip"),
    pytest.param([(80, "TCP", "10.0.0.1")], [80], PORTS_TAKEN, id="wildcard-used"),
    pytest.param([80], [(80, "TCP", "10.0.0.1")], PORTS_TAKEN, id="wildcard-wanted"),
])
def test_node_ports(wanted: list[int | tuple[int, str, str]],
                    used: list[int | tuple[int, str, str]], expected: Status) -> None:
    existing = pod("existing", host_ports=used)
    info = node_info(node(), [existing])
    assert run_filter(node_ports.NodePorts(), pod(host_ports=wanted), info) == expected


def test_node_ports_freed_when_pod_removed() -> None:
    info = node_info(node(), [pod("existing", host_ports=[80])])
    info.remove_pod("default/existing")
    assert run_filter(node_ports.NodePorts(), pod(host_ports=[80]), info) == SUCCESS
    assert not info.used_ports


# ---- NodeResourcesFit ---------------------------------------------------------------------

@pytest.mark.parametrize(("p", "existing", "n", "expected"), [
    pytest.param(pod(cpu="1"), [], node(cpu="1"), SUCCESS, id="fits-exactly"),
    pytest.param(pod(cpu="1001m"), [], node(cpu="1"), Unschedulable("Insufficient cpu"),
                 id="cpu"),
    pytest.param(pod(cpu="500m"), [pod("a", cpu="600m")], node(cpu="1"),
                 Unschedulable("Insufficient cpu"), id="counts-existing-pods"),
    pytest.param(pod(memory="129Mi"), [], node(memory="128Mi"),
                 Unschedulable("Insufficient memory"), id="memory"),
    pytest.param(pod(cpu="2", memory="1Gi"), [], node(cpu="1", memory="512Mi"),
                 Unschedulable("Insufficient cpu", "Insufficient memory"), id="both"),
    pytest.param(pod(), [pod("a"), pod("b")], node(pods="2"), Unschedulable("Too many pods"),
                 id="pods"),
    pytest.param(pod(containers=[container(cpu="100m")], init=[container("i", cpu="2")]), [],
                 node(cpu="1"), Unschedulable("Insufficient cpu"), id="init-container-max"),
    pytest.param(pod(cpu="100m"), [], node(allocatable={"cpu": "1"}),
                 Unschedulable("Too many pods"), id="no-pods-allocatable"),
    pytest.param(pod(containers=[container(extra={"example.com/gpu": "1"})]), [],
                 node(allocatable={"pods": "10", "example.com/gpu": "1"}), SUCCESS,
                 id="extended-fits"),
])
def test_node_resources_fit(p: core_pb2.Pod, existing: list[core_pb2.Pod], n: core_pb2.Node,
                            expected: Status) -> None:
    info = node_info(n, existing)
    assert run_filter(node_resources_fit.NodeResourcesFit(), p, info) == expected


def test_least_allocated_prefers_emptier_node() -> None:
    busy = node_info(node("busy", cpu="4", memory="8Gi"), [pod("a", cpu="3", memory="4Gi")])
    idle = node_info(node("idle", cpu="4", memory="8Gi"))
    got = scores(node_resources_fit.NodeResourcesFit(), pod(cpu="1", memory="2Gi"),
                 [busy, idle])
    assert got[1] > got[0]
    assert got == [(0 + 25) // 2, (75 + 75) // 2]


# ---- SelectorSpread -----------------------------------------------------------------------

@pytest.mark.parametrize(("counts", "expected"), [
    pytest.param([0, 0, 0], [100, 100, 100], id="none-yet"),
    pytest.param([1, 0, 0], [0, 100, 100], id="one"),
    pytest.param([2, 1, 0], [0, 50, 100], id="graded"),
    pytest.param([3, 3, 3], [0, 0, 0], id="even"),
    pytest.param([], [], id="empty"),
])
def test_spread_scores(counts: list[int], expected: list[int]) -> None:
    assert selector_spread.spread_scores(counts) == expected


def test_spread_counts_same_owner_or_same_labels() -> None:
    a = node_info(node("a"), [pod("r1", owner="web"), pod("r2", owner="web"),
                              pod("x", labels={"app": "db"})])
    b = node_info(node("b"), [pod("r3", owner="web"), pod("other", owner="api")])
    c = node_info(node("c"), [pod("y", labels={"app": "db"}),
                              pod("z", labels={"app": "db"}, namespace="prod")])
    plugin = selector_spread.SelectorSpread()
    assert scores(plugin, pod("new", owner="web", labels={"app": "db"}), [a, b, c]) == \
        [0, 50, 100]
    assert scores(plugin, pod("new", labels={"app": "db"}), [a, b, c]) == [0, 100, 0]
    assert scores(plugin, pod("bare"), [a, b, c]) == [100, 100, 100]
