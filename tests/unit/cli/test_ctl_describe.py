"""describe layouts, checked without a server on objects that need no extra lookups."""

from __future__ import annotations

from typing import Any

import pytest

from kemu.api import manifest
from kemu.cli.ctl.describe import smart_label
from kemu.cli.ctl.describe_base import Writer, events_section
from kemu.cli.ctl.describe_pods import describe_pod, describe_probe

NOW = 1_700_000_000.0


def pod() -> Any:
    return manifest.from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web",
                                                                          "tier": "fe"},
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}",
                                     "note": "hello"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                          "name": "web-abc", "uid": "u", "controller": True}]},
        "spec": {"nodeName": "node-1", "containers": [{
            "name": "web", "image": "nginx:1", "ports": [{"containerPort": 8080}],
            "env": [{"name": "MODE", "value": "prod"}],
            "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                               "periodSeconds": 5}}],
            "volumes": [{"name": "data", "configMap": {"name": "cfg"}}]},
        "status": {"phase": "Running", "hostIP": "10.0.0.1", "podIP": "10.244.1.5",
                   "podIPs": [{"ip": "10.244.1.5"}],
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [{
                       "name": "web", "ready": True, "restartCount": 2, "image": "nginx:1",
                       "state": {"running": {"startedAt": "2023-11-14T22:00:00Z"}}}]},
    }).pod


def test_pod_description() -> None:
    w = Writer()
    describe_pod(w, pod(), NOW)
    text = w.text()
    lines = text.splitlines()
    assert lines[0] == "Name:             web-1"
    for expected in ("Node:             node-1/10.0.0.1", "Labels:           app=web",
                     "                  tier=fe", "Annotations:      note: hello",
                     "Status:           Running", "IP:               10.244.1.5",
                     "Controlled By:  ReplicaSet/web-abc", "Containers:", "  web:",
                     "    Image:          nginx:1", "    Port:           8080/TCP",
                     "    State:          Running", "    Ready:          True",
                     "    Restart Count:  2",
                     "    Readiness:      http-get http://:8080/healthz delay=0s timeout=0s "
                     "period=5s #success=0 #failure=0",
                     "      MODE:  prod", "      /data from data (ro)",
                     "  Type    Status", "  Ready   True ",
                     "    Type:        ConfigMap (a volume populated by a ConfigMap)",
                     "QoS Class:       BestEffort"):
        assert expected in lines, f"{expected!r} not in:\n{text}"
    assert "last-applied" not in text


@pytest.mark.parametrize(("probe", "text"), [
    pytest.param({"exec": {"command": ["cat", "/ok"]}, "timeoutSeconds": 1},
                 "exec [cat /ok] delay=0s timeout=1s period=0s #success=0 #failure=0", id="exec"),
    pytest.param({"tcpSocket": {"port": "http"}, "initialDelaySeconds": 3},
                 "tcp-socket :http delay=3s timeout=0s period=0s #success=0 #failure=0",
                 id="tcp"),
])
def test_probe(probe: dict[str, Any], text: str) -> None:
    c = manifest.from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                            "spec": {"containers": [{"name": "c", "image": "i",
                                                     "livenessProbe": probe}]}})
    assert describe_probe(c.pod.spec.containers[0].liveness_probe) == text


def test_events_section() -> None:
    w = Writer()
    events_section(w, [], NOW)
    assert w.text() == "Events:  <none>\n"
    ev = manifest.from_dict({
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
        "involvedObject": {"kind": "Pod", "name": "p"}, "type": "Normal",
        "reason": "Scheduled", "message": "Successfully assigned default/p to node-1",
        "source": {"component": "default-scheduler"}, "count": 1,
        "firstTimestamp": "2023-11-14T22:13:00Z", "lastTimestamp": "2023-11-14T22:13:00Z"})
    w = Writer()
    events_section(w, [ev], NOW)
    assert w.text().splitlines() == [
        "Events:",
        "  Type    Reason     Age   From               Message",
        "  ----    ------     ----  ----               -------",
        "  Normal  Scheduled  20s   default-scheduler  Successfully assigned default/p to node-1",
    ]


@pytest.mark.parametrize(("field", "label"), [
    pytest.param("creationTimestamp", "Creation Timestamp", id="camel"),
    pytest.param("apiVersion", "API Version", id="acronym"),
    pytest.param("holderIdentity", "Holder Identity", id="two-words"),
    pytest.param("kind", "Kind", id="one-word"),
    pytest.param("a.b", "a.b", id="not-a-word"),
])
def test_smart_label(field: str, label: str) -> None:
    assert smart_label(field) == label
