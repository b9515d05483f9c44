"""HorizontalPodAutoscaler (autoscaling/v2): the manifest loads as is, Kubernetes' defaults
are filled in, and validation names the field of every problem."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from kemu.api import kinds, manifest, objects
from kemu.services.apiserver import defaults, validation

HPA = """
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: default}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 10
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 50}
"""


def _load(text: str, patch: dict[str, Any] | None = None) -> Any:
    doc = yaml.safe_load(text)
    doc["spec"].update(patch or {})
    obj = manifest.from_dict(doc)
    defaults.apply_defaults(obj)
    return obj


def _errors(patch: dict[str, Any] | None = None) -> list[str]:
    obj = _load(HPA, patch)
    return [str(e) for e in validation.VALIDATORS["horizontal_pod_autoscaler"](
        obj.horizontal_pod_autoscaler)]


def test_the_kind_is_served_under_its_kubectl_names() -> None:
    for name in ("hpa", "horizontalpodautoscaler", "HorizontalPodAutoscaler",
                 "horizontalpodautoscalers.autoscaling"):
        kind = kinds.resolve(name)
        assert (kind.plural, kind.api_version, kind.group) == (
            "horizontalpodautoscalers", "autoscaling/v2", "autoscaling")
    assert "hpa" not in kinds.KNOWN_UNSERVED


def test_manifest_round_trips_with_manifest_field_names() -> None:
    obj = _load(HPA)
    doc = objects.to_dict(obj)
    assert doc["spec"]["scaleTargetRef"] == {"kind": "Deployment", "name": "web",
                                             "apiVersion": "apps/v1"}
    assert doc["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 50
    assert _errors() == []


def test_defaults_follow_kubernetes() -> None:
    obj = _load("""
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {kind: Deployment, name: web}
  maxReplicas: 3
  behavior: {scaleDown: {stabilizationWindowSeconds: 60}}
""")
    spec = obj.horizontal_pod_autoscaler.spec
    assert spec.min_replicas == 1
    [metric] = spec.metrics
    assert (metric.type, metric.resource.name, metric.resource.target.type,
            metric.resource.target.average_utilization) == ("Resource", "cpu", "Utilization", 80)
    up, down = spec.behavior.scale_up, spec.behavior.scale_down
    assert up.stabilization_window_seconds == 0 and up.select_policy == "Max"
    assert [(p.type, p.value, p.period_seconds) for p in up.policies] == [
        ("Pods", 4, 15), ("Percent", 100, 15)]
    assert down.stabilization_window_seconds == 60
    assert [(p.type, p.value) for p in down.policies] == [("Percent", 100)]


def test_without_behavior_none_is_added() -> None:
    assert not _load(HPA).horizontal_pod_autoscaler.spec.HasField("behavior")


@pytest.mark.parametrize(("patch", "expected"), [
    pytest.param({"minReplicas": 0}, "spec.minReplicas: Invalid value: 0: must be greater "
                 "than or equal to 1", id="min-zero"),
    pytest.param({"maxReplicas": 0}, "spec.maxReplicas: Invalid value: 0: must be greater "
                 "than 0", id="max-zero"),
    pytest.param({"minReplicas": 5, "maxReplicas": 2}, "spec.maxReplicas: Invalid value: 2: "
                 "must be greater than or equal to `minReplicas`", id="max-below-min"),
    pytest.param({"scaleTargetRef": {"kind": "Deployment"}},
                 "spec.scaleTargetRef.name: Required value", id="no-target-name"),
    pytest.param({"scaleTargetRef": {"name": "web"}},
                 "spec.scaleTargetRef.kind: Required value", id="no-target-kind"),
    pytest.param({"metrics": [{"type": "Pods"}]},
                 'spec.metrics[0].type: Unsupported value: "Pods"', id="metric-type"),
    pytest.param({"metrics": [{"type": "Resource", "resource": {
        "name": "gpu", "target": {"type": "Utilization", "averageUtilization": 5}}}]},
                 'spec.metrics[0].resource.name: Unsupported value: "gpu"', id="resource"),
    pytest.param({"metrics": [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 0}}}]},
                 "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0",
                 id="utilization-zero"),
    pytest.param({"metrics": [{"type": "Resource", "resource": {
        "name": "memory", "target": {"type": "AverageValue", "averageValue": "lots"}}}]},
                 "spec.metrics[0].resource.target.averageValue: Invalid value: \"lots\"",
                 id="average-value"),
    pytest.param({"behavior": {"scaleUp": {"policies": [
        {"type": "Pods", "value": 0, "periodSeconds": 15}]}}},
                 "spec.behavior.scaleUp.policies[0].value: Invalid value: 0", id="policy"),
    pytest.param({"behavior": {"scaleDown": {"stabilizationWindowSeconds": 4000}}},
                 "spec.behavior.scaleDown.stabilizationWindowSeconds: Invalid value: 4000",
                 id="window"),
])
def test_invalid_specs_name_the_field(patch: dict[str, Any], expected: str) -> None:
    errs = _errors(patch)
    assert any(e.startswith(expected) for e in errs), errs
