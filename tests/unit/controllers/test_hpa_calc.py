"""The autoscaler's arithmetic, fed numbers: Kubernetes' replica calculator (tolerance,
missing and unready pods), stabilization windows, and rate limits with and without a
behavior."""

from __future__ import annotations

from typing import Any

import pytest

from kemu.api import manifest
from kemu.api.v1 import autoscaling_pb2, core_pb2
from kemu.services.controllers import hpa_calc as calc

NOW = 1_700_000_000.0


def pod(name: str, *, cpu: str | None = "100m", ready: bool = True, phase: str = "Running",
        started: float = NOW - 3600, ready_at: float = NOW - 3500,
        deleting: bool = False) -> core_pb2.Pod:
    container: dict[str, Any] = {"name": "c", "image": "x"}
    if cpu is not None:
        container["resources"] = {"requests": {"cpu": cpu, "memory": "64Mi"}}
    meta: dict[str, Any] = {"name": name, "namespace": "ns"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    p = manifest.from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                            "spec": {"containers": [container]},
                            "status": {"phase": phase}}).pod
    p.status.start_time.FromSeconds(int(started))
    c = p.status.conditions.add(type="Ready", status="True" if ready else "False")
    c.last_transition_time.FromSeconds(int(ready_at))
    return p


def usage(**milli: int) -> dict[str, calc.PodUsage]:
    return {name: calc.PodUsage({"cpu": m, "memory": 1 << 20}, NOW - 5, 1.0)
            for name, m in milli.items()}


@pytest.mark.parametrize(("used", "current", "want", "utilization"), [
    pytest.param([50, 50], 2, 2, 50, id="at-target"),
    pytest.param([54, 54], 2, 2, 54, id="within-tolerance"),
    pytest.param([100, 100], 2, 4, 100, id="double"),
    pytest.param([10, 10], 2, 1, 10, id="scale-down"),
    pytest.param([75, 80, 85], 3, 5, 80, id="ceil"),
])
def test_resource_replicas(used: list[int], current: int, want: int,
                           utilization: int) -> None:
    pods = [pod(f"p{i}") for i in range(len(used))]
    got = calc.resource_replicas(current, 50, "cpu", pods,
                                 usage(**{f"p{i}": u for i, u in enumerate(used)}), NOW)
    assert (got.replicas, got.utilization) == (want, utilization)
    assert got.average == sum(used) // len(used)


def test_missing_request_names_the_container_and_pod() -> None:
    with pytest.raises(calc.MetricError,
                       match="missing request for cpu in container c of Pod p1"):
        calc.resource_replicas(2, 50, "cpu", [pod("p0"), pod("p1", cpu=None)],
                               usage(p0=50, p1=50), NOW)


def test_no_pods_and_no_metrics_are_errors() -> None:
    with pytest.raises(calc.MetricError, match="no pods returned by selector"):
        calc.resource_replicas(1, 50, "cpu", [], {}, NOW)
    with pytest.raises(calc.MetricError, match="did not receive metrics"):
        calc.resource_replicas(1, 50, "cpu", [pod("p0")], {}, NOW)


def test_missing_pods_count_conservatively() -> None:
    pods = [pod("p0"), pod("p1"), pod("p2")]
    # scale up: the pod without metrics counts as using nothing -> 200%,200%,0% = 133%
    up = calc.resource_replicas(3, 50, "cpu", pods, usage(p0=200, p1=200), NOW)
    assert up.replicas == 8 and up.utilization == 200
    # scale down: it counts as using its whole request -> 10%,10%,100% = 40% of 50%
    down = calc.resource_replicas(3, 50, "cpu", pods, usage(p0=10, p1=10), NOW)
    assert down.replicas == 3


def test_unready_and_ignored_pods() -> None:
    fresh = pod("p1", ready=False, started=NOW - 10, ready_at=NOW - 10)
    pods = [pod("p0"), fresh, pod("gone", deleting=True), pod("wait", phase="Pending")]
    got = calc.resource_replicas(2, 50, "cpu", pods,
                                 usage(p0=100, p1=500, gone=900, wait=900), NOW)
    # only p0 is a fair sample (100%: twice the target), but on a scale-up the unready pod
    # counts as using nothing: 50% on average, so the size stays
    assert (got.replicas, got.utilization) == (2, 100)


def test_average_value_target() -> None:
    pods = [pod("p0"), pod("p1")]
    got = calc.average_value_replicas(2, 100, "cpu", pods, usage(p0=300, p1=300))
    assert (got.replicas, got.average, got.utilization) == (6, 300, None)


def test_normalize_keeps_the_highest_recommendation_of_the_window() -> None:
    history: list[calc.Recommendation] = []
    first = calc.normalize(history, 4, 4, 1, 10, window=300, now=NOW)
    assert (first.replicas, first.able_reason) == (4, "ReadyForNewScale")
    later = calc.normalize(history, 4, 1, 1, 10, window=300, now=NOW + 60)
    assert (later.replicas, later.able_reason) == (4, "ScaleDownStabilized")
    after = calc.normalize(history, 4, 1, 1, 10, window=300, now=NOW + 400)
    assert (after.replicas, after.able_reason) == (1, "ReadyForNewScale")


@pytest.mark.parametrize(("current", "desired", "want", "reason", "limited"), [
    pytest.param(2, 20, 4, "ScaleUpLimit", True, id="at-most-double-or-4"),
    pytest.param(6, 20, 10, "TooManyReplicas", True, id="max"),
    pytest.param(3, 0, 2, "TooFewReplicas", True, id="min"),
    pytest.param(3, 5, 5, "DesiredWithinRange", False, id="within"),
])
def test_normalize_limits(current: int, desired: int, want: int, reason: str,
                          limited: bool) -> None:
    got = calc.normalize([], current, desired, 2, 10, window=0, now=NOW)
    assert (got.replicas, got.limit_reason, got.limited) == (want, reason, limited)


def behavior(doc: dict[str, Any]) -> autoscaling_pb2.HorizontalPodAutoscalerBehavior:
    obj = manifest.from_dict({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                              "metadata": {"name": "h"}, "spec": {"behavior": doc}})
    return obj.horizontal_pod_autoscaler.spec.behavior


def test_behavior_policies_limit_the_rate() -> None:
    b = behavior({"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                              "policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]},
                  "scaleDown": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                                "policies": [{"type": "Percent", "value": 50,
                                              "periodSeconds": 60}]}})
    up = calc.normalize_with_behavior([], [], [], 2, 10, 1, 20, b, default_down_window=300,
                                      now=NOW)
    assert (up.replicas, up.limit_reason) == (4, "ScaleUpLimit")
    # 2 pods were already added in this period: no more until it passes
    again = calc.normalize_with_behavior([], [calc.ScaleEvent(2, NOW - 10)], [], 4, 10, 1, 20,
                                         b, default_down_window=300, now=NOW)
    assert again.replicas == 4
    down = calc.normalize_with_behavior([], [], [], 8, 1, 1, 20, b, default_down_window=300,
                                        now=NOW)
    assert (down.replicas, down.limit_reason) == (4, "ScaleDownLimit")


def test_behavior_windows_stabilize_each_direction() -> None:
    b = behavior({"scaleUp": {"stabilizationWindowSeconds": 60, "policies": [
        {"type": "Percent", "value": 100, "periodSeconds": 15}], "selectPolicy": "Max"}})
    history = [calc.Recommendation(3, NOW - 30)]
    up = calc.normalize_with_behavior(history, [], [], 3, 6, 1, 20, b,
                                      default_down_window=300, now=NOW)
    assert (up.replicas, up.able_reason) == (3, "ScaleUpStabilized")
    # no scaleDown window in the behavior: the controller's default applies
    down = calc.normalize_with_behavior(history, [], [], 3, 1, 1, 20, b,
                                        default_down_window=300, now=NOW + 1)
    assert (down.replicas, down.able_reason) == (6, "ScaleDownStabilized")
