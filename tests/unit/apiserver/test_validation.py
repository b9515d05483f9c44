"""Validation names the field path of every problem, as Kubernetes does."""

from __future__ import annotations

import pytest

from kemu.api import manifest
from kemu.api.v1 import api_pb2
from kemu.services.apiserver import defaults, validation

DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "nginx:1.25", ports: [{containerPort: 80}]}]
"""


def _errors(text: str, patch: dict | None = None) -> list[str]:
    import yaml

    doc = yaml.safe_load(text)
    for path, value in (patch or {}).items():
        node = doc
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    obj = manifest.from_dict(doc)
    defaults.apply_defaults(obj)
    field = obj.WhichOneof("kind")
    errs = validation.metadata(getattr(obj, field).metadata, field, True)
    errs += validation.VALIDATORS[field](getattr(obj, field))
    return [str(e) for e in errs]


def test_valid_deployment_has_no_errors() -> None:
    assert _errors(DEPLOY) == []


@pytest.mark.parametrize(("patch", "expected"), [
    pytest.param({"metadata.name": "Web_1"}, "metadata.name: Invalid value: \"Web_1\"", id="name"),
    pytest.param({"spec.replicas": -1}, "spec.replicas: Invalid value: -1", id="replicas"),
    pytest.param({"spec.selector.matchLabels": {"app": "other"}},
                 "spec.template.metadata.labels: Invalid value", id="selector-mismatch"),
    pytest.param({"spec.selector": {}}, "spec.selector: Required value", id="selector-empty"),
    pytest.param({"spec.template.spec.containers.0.ports.0.containerPort": 70000},
                 "spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 70000",
                 id="port-range"),
    pytest.param({"spec.template.spec.containers.0.image": ""},
                 "spec.template.spec.containers[0].image: Required value", id="image"),
    pytest.param({"spec.template.spec.restartPolicy": "Never"},
                 "spec.template.spec.restartPolicy: Unsupported value: \"Never\"", id="restart"),
    pytest.param({"metadata.labels": {"bad key!": "x"}}, "metadata.labels: Invalid value",
                 id="label-key"),
    pytest.param({"metadata.labels": {"ok": "-bad-"}}, "metadata.labels.ok: Invalid value",
                 id="label-value"),
    pytest.param({"spec.strategy": {"type": "RollingUpdate",
                                    "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}},
                 "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0", id="both-zero"),
    pytest.param({"spec.strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}},
                 "spec.strategy.rollingUpdate: Forbidden", id="recreate-rolling"),
    pytest.param({"spec.template.spec.containers.0.resources": {
        "limits": {"cpu": "100m"}, "requests": {"cpu": "200m"}}},
        "spec.template.spec.containers[0].resources.requests: Invalid value", id="req>limit"),
    pytest.param({"spec.template.spec.containers.0.resources": {"limits": {"memory": "12XB"}}},
                 "spec.template.spec.containers[0].resources.limits.memory: Invalid value",
                 id="quantity"),
])
def test_deployment_errors_name_the_field(patch: dict, expected: str) -> None:
    errs = _errors(DEPLOY, patch)
    assert any(e.startswith(expected) for e in errs), errs


SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


@pytest.mark.parametrize(("patch", "expected"), [
    pytest.param({"spec.ports": []}, "spec.ports: Required value", id="no-ports"),
    pytest.param({"spec.ports": [{"port": 0}]}, "spec.ports[0].port: Invalid value: 0",
                 id="port-zero"),
    pytest.param({"spec.ports": [{"port": 80, "targetPort": "no_such!"}]},
                 "spec.ports[0].targetPort: Invalid value", id="target-name"),
    pytest.param({"spec.ports": [{"port": 80, "name": "a"}, {"port": 81}]},
                 "spec.ports[1].name: Required value", id="multi-port-name"),
    pytest.param({"spec.ports": [{"port": 80, "nodePort": 30001}]},
                 "spec.ports[0].nodePort: Forbidden", id="nodeport-clusterip"),
    pytest.param({"spec.type": "Bogus"}, "spec.type: Unsupported value: \"Bogus\"", id="type"),
    pytest.param({"spec.ports": [{"port": 80, "protocol": "ICMP"}]},
                 "spec.ports[0].protocol: Unsupported value", id="protocol"),
    pytest.param({"metadata.name": "1web"}, "metadata.name: Invalid value: \"1web\"",
                 id="dns1035-name"),
    pytest.param({"spec.clusterIP": "not-an-ip"}, "spec.clusterIPs[0]: Invalid value",
                 id="cluster-ip"),
])
def test_service_errors_name_the_field(patch: dict, expected: str) -> None:
    errs = _errors(SERVICE, patch)
    assert any(e.startswith(expected) for e in errs), errs


def test_update_rules_forbid_changing_a_deployment_selector() -> None:
    old = manifest.load_all(DEPLOY)[0]
    new = api_pb2.Object()
    new.CopyFrom(old)
    new.deployment.spec.selector.match_labels["tier"] = "x"
    errs = validation.UPDATE_VALIDATORS["deployment"](new.deployment, old.deployment)
    assert [str(e) for e in errs] == ["spec.selector: Invalid value: \"\": field is immutable"]


def test_pod_updates_may_only_change_images() -> None:
    pod = manifest.from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                              "spec": {"containers": [{"name": "c", "image": "a:1"}]}})
    new = api_pb2.Object()
    new.CopyFrom(pod)
    new.pod.spec.containers[0].image = "a:2"
    assert validation.UPDATE_VALIDATORS["pod"](new.pod, pod.pod) == []
    new.pod.spec.containers[0].args.append("--x")
    errs = validation.UPDATE_VALIDATORS["pod"](new.pod, pod.pod)
    assert errs and str(errs[0]).startswith("spec: Forbidden: pod updates may not change")


@pytest.mark.parametrize(("schedule", "ok"), [
    pytest.param("*/5 * * * *", True, id="every-5"),
    pytest.param("@hourly", True, id="macro"),
    pytest.param("61 * * * *", False, id="minute-range"),
    pytest.param("* * *", False, id="too-few"),
    pytest.param("TZ=UTC * * * * *", False, id="tz"),
])
def test_cron_schedules(schedule: str, ok: bool) -> None:
    assert (validation.cron_schedule(schedule) is None) == ok


STS = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: default}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: db
        image: kemu/bootcamp:v1
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"""


def test_statefulset_mounts_may_name_its_claim_templates() -> None:
    assert _errors(STS) == []
    bad = _errors(STS.replace("volumeMounts: [{name: data", "volumeMounts: [{name: nope"))
    assert any("volumeMounts[0].name" in e and "Not found" in e for e in bad), bad
