"""The HPA controller against the in-memory API, a fake metrics source and a recording
event recorder: it scales through the scale subresource with Kubernetes' events and
conditions, waits out the scale-down window, and says why it cannot compute."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kemu.api import manifest
from kemu.api.v1 import api_pb2
from kemu.client.errors import ClientError
from kemu.services.controllers import hpa as hpac
from kemu.services.controllers import hpa_calc as calc
from tests.unit.controllers.test_replicaset_fakeapi import FakeAPI, informers

NS = "ns"
NOW = 1_700_000_000.0


class ScalingAPI(FakeAPI):
    """FakeAPI with the scale subresource."""

    async def scale(self, resource: str, name: str, replicas: int, namespace: str = "", *,
                    resource_version: str = "") -> api_pb2.Object:
        self.calls.append(("scale", resource, f"{name}={replicas}"))
        self._check("scale", resource)
        obj = await self.get(resource, name, namespace)
        obj.deployment.spec.replicas = replicas
        return await self.update(obj)


@dataclass
class FakeMetrics:
    usage: dict[str, int] = field(default_factory=dict)  # pod -> cpu millicores
    error: ClientError | None = None

    async def pod_usage(self, namespace: str, selector: str) -> dict[str, calc.PodUsage]:
        if self.error is not None:
            raise self.error
        return {n: calc.PodUsage({"cpu": m}, NOW - 5, 1.0) for n, m in self.usage.items()}


@dataclass
class Events:
    seen: list[tuple[str, str, str]] = field(default_factory=list)

    def emit(self, kind: str, obj: Any, type_: str, reason: str, message: str, *,
             field_path: str = "") -> None:
        self.seen.append((type_, reason, message))


def deployment(replicas: int) -> api_pb2.Object:
    return manifest.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}}}})


def hpa(*, min_replicas: int = 1, max_replicas: int = 10, target: str = "web",
        kind: str = "Deployment") -> api_pb2.Object:
    return manifest.from_dict({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
                 "minReplicas": min_replicas, "maxReplicas": max_replicas,
                 "metrics": [{"type": "Resource", "resource": {
                     "name": "cpu", "target": {"type": "Utilization",
                                               "averageUtilization": 50}}}]}})


def pod(name: str, *, request: bool = True) -> api_pb2.Object:
    container: dict[str, Any] = {"name": "c", "image": "x"}
    if request:
        container["resources"] = {"requests": {"cpu": "100m"}}
    obj = manifest.from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": "web"}},
        "spec": {"containers": [container]}, "status": {"phase": "Running"}})
    obj.pod.status.start_time.FromSeconds(int(NOW - 3600))
    c = obj.pod.status.conditions.add(type="Ready", status="True")
    c.last_transition_time.FromSeconds(int(NOW - 3500))
    return obj


class Setup:
    def __init__(self, replicas: int = 2, pods: int = 2, **hpa_kw: Any) -> None:
        self.now = NOW
        self.api = ScalingAPI(now=NOW)
        infs = informers(self.api, *hpac.INFORMERS)
        self.metrics = FakeMetrics()
        self.events = Events()
        self.ctrl = hpac.HPAController(self.api, infs, metrics=self.metrics,
                                       recorder=self.events, clock=lambda: self.now)
        self.api.put(deployment(replicas))
        for i in range(pods):
            self.api.put(pod(f"web-{i}"))
        self.api.put(hpa(**hpa_kw))

    def status(self) -> Any:
        return self.api.list("horizontalpodautoscalers", NS)[0].horizontal_pod_autoscaler.status

    def replicas(self) -> int:
        return int(self.api.list("deployments", NS)[0].deployment.spec.replicas)

    def conditions(self) -> dict[str, tuple[str, str]]:
        return {c.type: (c.status, c.reason) for c in self.status().conditions}


async def test_scales_up_with_kubernetes_event_and_status() -> None:
    s = Setup()
    s.metrics.usage = {"web-0": 100, "web-1": 100}  # 100% of the request, target 50%
    await s.ctrl.reconcile(f"{NS}/web")
    assert s.replicas() == 4
    assert ("Normal", "SuccessfulRescale", "New size: 4; reason: cpu resource utilization "
            "(percentage of request) above target") in s.events.seen
    st = s.status()
    assert (st.current_replicas, st.desired_replicas) == (2, 4)
    assert st.current_metrics[0].resource.current.average_utilization == 100
    assert st.current_metrics[0].resource.current.average_value == "100m"
    assert st.HasField("last_scale_time")
    assert s.conditions() == {"AbleToScale": ("True", "SucceededRescale"),
                              "ScalingActive": ("True", "ValidMetricFound"),
                              "ScalingLimited": ("False", "DesiredWithinRange")}


async def test_within_tolerance_nothing_changes_and_max_is_respected() -> None:
    s = Setup(max_replicas=3)
    s.metrics.usage = {"web-0": 52, "web-1": 53}
    await s.ctrl.reconcile(f"{NS}/web")
    assert s.replicas() == 2 and s.api.count("scale") == 0
    assert s.conditions()["AbleToScale"] == ("True", "ReadyForNewScale")
    s.metrics.usage = {"web-0": 400, "web-1": 400}
    await s.ctrl.reconcile(f"{NS}/web")
    assert s.replicas() == 3
    assert s.conditions()["ScalingLimited"] == ("True", "TooManyReplicas")


async def test_scale_down_waits_for_the_stabilization_window() -> None:
    s = Setup(replicas=4, pods=4)
    s.metrics.usage = {f"web-{i}": 50 for i in range(4)}
    await s.ctrl.reconcile(f"{NS}/web")
    s.metrics.usage = {f"web-{i}": 5 for i in range(4)}
    s.now = NOW + 60
    await s.ctrl.reconcile(f"{NS}/web")
    assert s.replicas() == 4
    assert s.conditions()["AbleToScale"] == ("True", "ScaleDownStabilized")
    s.now = NOW + 301
    await s.ctrl.reconcile(f"{NS}/web")
    assert s.replicas() == 1
    assert s.events.seen[-1] == ("Normal", "SuccessfulRescale",
                                 "New size: 1; reason: All metrics below target")


async def test_pods_without_requests_make_scaling_inactive() -> None:
    s = Setup(pods=1)
    s.api.put(pod("web-9", request=False))
    s.metrics.usage = {"web-0": 100, "web-9": 100}
    await s.ctrl.reconcile(f"{NS}/web")
    assert s.replicas() == 2
    assert s.conditions()["ScalingActive"] == ("False", "FailedGetResourceMetric")
    cond = next(c for c in s.status().conditions if c.type == "ScalingActive")
    assert cond.message == ("the HPA was unable to compute the replica count: failed to get "
                            "cpu utilization: missing request for cpu in container c of Pod "
                            "web-9")
    assert [r for _, r, _ in s.events.seen] == ["FailedGetResourceMetric",
                                                "FailedComputeMetricsReplicas"]
    assert len(s.status().current_metrics) == 1  # index-aligned: <unknown> in kemuctl


async def test_no_metrics_and_missing_targets_are_reported() -> None:
    s = Setup()
    await s.ctrl.reconcile(f"{NS}/web")
    cond = next(c for c in s.status().conditions if c.type == "ScalingActive")
    assert cond.message.endswith("unable to get metrics for resource cpu: no metrics returned "
                                 "from resource metrics API")
    other = Setup(target="nope")
    await other.ctrl.reconcile(f"{NS}/web")
    assert other.conditions()["AbleToScale"] == ("False", "FailedGetScale")
    assert other.events.seen[0][1] == "FailedGetScale"


async def test_below_min_is_raised_without_metrics_and_zero_disables() -> None:
    s = Setup(replicas=1, min_replicas=3)
    await s.ctrl.reconcile(f"{NS}/web")
    assert s.replicas() == 3
    assert s.events.seen == [("Normal", "SuccessfulRescale", "New size: 3; reason: Current "
                              "number of replicas below Spec.MinReplicas")]
    z = Setup(replicas=0)
    await z.ctrl.reconcile(f"{NS}/web")
    assert z.replicas() == 0 and z.conditions()["ScalingActive"] == ("False", "ScalingDisabled")


async def test_unchanged_status_is_not_written_again() -> None:
    s = Setup()
    s.metrics.usage = {"web-0": 50, "web-1": 50}
    await s.ctrl.reconcile(f"{NS}/web")
    writes = s.api.count("update_status")
    await s.ctrl.reconcile(f"{NS}/web")
    assert s.api.count("update_status") == writes == 1
