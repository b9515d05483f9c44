"""Defaulting gives stored objects Kubernetes' defaults."""

from __future__ import annotations

import pytest

from kemu.api import manifest, objects
from kemu.services.apiserver import defaults


def _defaulted(doc: dict) -> dict:
    obj = manifest.from_dict(doc)
    defaults.apply_defaults(obj)
    return objects.to_dict(obj)


def test_deployment_defaults() -> None:
    d = _defaulted({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
                    "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
                        "metadata": {"labels": {"a": "b"}},
                        "spec": {"containers": [{"name": "c", "image": "nginx",
                                                 "ports": [{"containerPort": 80}]}]}}}})
    spec = d["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Always"
    assert pod["dnsPolicy"] == "ClusterFirst"
    assert pod["terminationGracePeriodSeconds"] == 30
    c = pod["containers"][0]
    assert c["imagePullPolicy"] == "Always"  # untagged means latest
    assert c["ports"][0]["protocol"] == "TCP"


@pytest.mark.parametrize(("image", "policy"), [
    pytest.param("nginx", "Always", id="untagged"),
    pytest.param("nginx:latest", "Always", id="latest"),
    pytest.param("nginx:1.25", "IfNotPresent", id="tagged"),
    pytest.param("localhost:5000/app", "Always", id="registry-port-untagged"),
    pytest.param("localhost:5000/app:2", "IfNotPresent", id="registry-port-tagged"),
    pytest.param("app@sha256:abc", "IfNotPresent", id="digest"),
])
def test_image_pull_policy(image: str, policy: str) -> None:
    assert defaults.image_pull_policy(image) == policy


def test_service_defaults_target_port_and_protocol() -> None:
    d = _defaulted({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                    "spec": {"ports": [{"port": 80}], "sessionAffinity": "ClientIP"}})
    spec = d["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_secret_string_data_moves_into_data() -> None:
    d = _defaulted({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                    "stringData": {"password": "hunter2"}})
    assert d["type"] == "Opaque"
    assert d["data"] == {"password": "aHVudGVyMg=="}
    assert "stringData" not in d
