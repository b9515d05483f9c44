"""The framework: FailedScheduling message format, how many nodes a cycle looks at,
normalization, tie-breaking, and a whole cycle over the default plugins."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from kemu.services.scheduler.framework import (
    SUCCESS,
    CycleState,
    Error,
    FitError,
    Framework,
    Profile,
    SchedulingError,
    Status,
    Unschedulable,
    default_normalize_score,
    fit_error_message,
    num_feasible_nodes_to_find,
    select_host,
)
from kemu.services.scheduler.nodeinfo import NodeInfo, PodInfo
from kemu.services.scheduler.plugins import DEFAULT_PROFILE, REGISTRY
from tests.unit.scheduler.sched_builders import node, node_info, pod

AFFINITY = "node(s) didn't match Pod's node affinity/selector"


@pytest.mark.parametrize(("total", "reasons", "expected"), [
    pytest.param(3, [["Insufficient cpu"], ["Insufficient cpu"], [AFFINITY]],
                 f"0/3 nodes are available: 1 {AFFINITY}, 2 Insufficient cpu.",
                 id="sorted-as-go-strings"),
    pytest.param(1, [["Insufficient cpu", "Insufficient memory"]],
                 "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory.",
                 id="several-reasons-one-node"),
    pytest.param(2, [["node(s) were unschedulable"], ["node(s) had untolerated taint {a: b}"]],
                 "0/2 nodes are available: 1 node(s) had untolerated taint {a: b}, "
                 "1 node(s) were unschedulable.", id="taint-and-cordon"),
    pytest.param(12, [["Too many pods"]] * 10 + [["Insufficient cpu"]] * 2,
                 "0/12 nodes are available: 10 Too many pods, 2 Insufficient cpu.",
                 id="byte-order-like-kube"),
    pytest.param(4, [], "0/4 nodes are available:", id="no-reasons"),
])
def test_fit_error_message(total: int, reasons: list[list[str]], expected: str) -> None:
    assert fit_error_message(total, reasons) == expected


def test_fit_error_without_nodes_uses_kube_wording() -> None:
    assert FitError(0, {}).message == "no nodes available to schedule pods"


def test_fit_error_with_pre_filter_message() -> None:
    err = FitError(3, {}, pre_filter_message="pod has unbound immediate claims")
    assert err.message == "0/3 nodes are available: pod has unbound immediate claims."


@pytest.mark.parametrize(("total", "percentage", "expected"), [
    pytest.param(0, None, 0, id="none"),
    pytest.param(50, None, 50, id="small-cluster-all"),
    pytest.param(99, 10, 99, id="below-100-ignores-percentage"),
    pytest.param(1000, None, 420, id="adaptive-42pct"),
    pytest.param(5000, None, 500, id="adaptive-10pct"),
    pytest.param(10000, None, 500, id="adaptive-floor-5pct"),
    pytest.param(1000, 30, 300, id="configured"),
    pytest.param(200, 10, 100, id="at-least-100"),
    pytest.param(1000, 100, 1000, id="all"),
])
def test_num_feasible_nodes_to_find(total: int, percentage: int | None, expected: int) -> None:
    assert num_feasible_nodes_to_find(total, percentage) == expected


@pytest.mark.parametrize(("raw", "reverse", "expected"), [
    pytest.param([0, 5, 10], False, [0, 50, 100], id="scale"),
    pytest.param([0, 5, 10], True, [100, 50, 0], id="reverse"),
    pytest.param([0, 0], False, [0, 0], id="zeros"),
    pytest.param([0, 0], True, [100, 100], id="zeros-reverse"),
    pytest.param([1, 3], False, [33, 100], id="integer"),
])
def test_default_normalize_score(raw: list[int], reverse: bool, expected: list[int]) -> None:
    default_normalize_score(raw, reverse=reverse)
    assert raw == expected


def test_select_host_breaks_ties_at_random() -> None:
    rng = random.Random(1)
    picks = Counter(select_host(["a", "b", "c"], [5, 9, 9], rng) for _ in range(400))
    assert set(picks) == {"b", "c"}
    assert min(picks.values()) > 120


def default_framework(seed: int = 0, percentage: int | None = None) -> Framework:
    return Framework.from_profile(REGISTRY, DEFAULT_PROFILE, rng=random.Random(seed),
                                  percentage_of_nodes_to_score=percentage)


def test_cycle_reports_first_failing_filter_per_node() -> None:
    nodes = [node_info(node("cordoned", unschedulable=True, cpu="1")),
             node_info(node("small", cpu="1")),
             node_info(node("small2", cpu="1")),
             node_info(node("wrong-zone", labels={"zone": "c"})),
             node_info(node("right-zone-small", cpu="1", labels={"zone": "b"}))]
    p = PodInfo.of(pod(cpu="2", node_selector={"zone": "b"}))
    with pytest.raises(FitError) as exc:
        default_framework().schedule(p, nodes)
    # The cordoned node is reported as cordoned only; the others by their first failure.
    assert exc.value.message == (
        "0/5 nodes are available: 1 Insufficient cpu, 1 node(s) were unschedulable, "
        f"3 {AFFINITY}.")
    assert exc.value.statuses["cordoned"] == Unschedulable("node(s) were unschedulable")
    assert exc.value.statuses["small"] == Unschedulable(AFFINITY)
    assert exc.value.statuses["right-zone-small"] == Unschedulable("Insufficient cpu")


def test_cycle_picks_least_allocated_and_spreads() -> None:
    fw = default_framework()
    busy = node_info(node("busy"), [pod("x", cpu="3")])
    idle = node_info(node("idle"))
    assert fw.schedule(PodInfo.of(pod(cpu="500m")), [busy, idle]).node == "idle"
    # Same owner: the node without a replica wins even if a bit fuller.
    a = node_info(node("a"), [pod("r1", owner="web", cpu="100m")])
    b = node_info(node("b"), [pod("other", cpu="200m")])
    result = fw.schedule(PodInfo.of(pod("r2", owner="web", cpu="100m")), [a, b])
    assert (result.node, result.evaluated, result.feasible) == ("b", 2, 2)


def test_cycle_with_one_feasible_node_skips_scoring() -> None:
    fw = default_framework()
    nodes = [node_info(node("a", cpu="1")), node_info(node("b", cpu="8"))]
    assert fw.schedule(PodInfo.of(pod(cpu="4")), nodes).node == "b"


def test_cycle_stops_after_enough_feasible_nodes_and_rotates() -> None:
    fw = default_framework(percentage=10)
    nodes = [node_info(node(f"n{i:03}")) for i in range(200)]
    first = fw.schedule(PodInfo.of(pod()), nodes)
    assert (first.evaluated, first.feasible) == (100, 100)
    second = fw.schedule(PodInfo.of(pod()), nodes)
    assert second.evaluated == 100
    assert int(second.node[1:]) >= 100  # the second cycle starts where the first stopped


class Broken:
    name = "Broken"

    def __init__(self, status: Status | None = None) -> None:
        self.status = status

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        if self.status is None:
            raise KeyError("boom")
        return self.status


class RejectAll:
    name = "RejectAll"

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status:
        return Unschedulable("pod has unbound immediate PersistentVolumeClaims")

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        raise AssertionError("not reached")


class ScoreOutOfRange:
    name = "Bad"

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        return 1000


NODES = [node_info(node("a")), node_info(node("b"))]


@pytest.mark.parametrize("framework", [
    pytest.param(Framework([Broken(Error("cannot parse"))]), id="error-status"),
    pytest.param(Framework([Broken()]), id="exception"),
    pytest.param(Framework([], [(ScoreOutOfRange(), 1)]), id="score-out-of-range"),
])
def test_errors_are_not_unschedulable(framework: Framework) -> None:
    with pytest.raises(SchedulingError):
        framework.schedule(PodInfo.of(pod()), NODES)


def test_pre_filter_rejection_names_no_node_counts() -> None:
    with pytest.raises(FitError) as exc:
        Framework([RejectAll()]).schedule(PodInfo.of(pod()), NODES)
    assert exc.value.message == ("0/2 nodes are available: pod has unbound immediate "
                                 "PersistentVolumeClaims.")


def test_empty_cluster() -> None:
    with pytest.raises(FitError) as exc:
        default_framework().schedule(PodInfo.of(pod()), [])
    assert str(exc.value) == "no nodes available to schedule pods"


def test_profile_rejects_unknown_plugins() -> None:
    with pytest.raises(ValueError, match="unknown scheduler plugin"):
        Framework.from_profile(REGISTRY, Profile(filters=("Nope",), scores=()))


def test_registry_plugins_carry_their_module_name() -> None:
    for name, factory in REGISTRY.items():
        assert factory().name == name


def test_success_constant_is_ok() -> None:
    assert SUCCESS.ok and not Unschedulable("x").ok and not Error("y").ok
    assert Unschedulable("x") != Error("x")
