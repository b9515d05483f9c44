"""Kubernetes manifests load into the typed kemu.v1 messages with the standard JSON mapping.

Each YAML file under manifests/ is shaped like the examples of the Kubernetes docs. It
must parse with no unknown field, and MessageToDict must give back the same fields and
values, which proves that the proto field names (and json_name overrides) spell the
Kubernetes manifest field names exactly.
"""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from google.protobuf.message import Message

from kemu.api.v1 import (
    api_pb2,
    apps_pb2,
    autoscaling_pb2,
    batch_pb2,
    coordination_pb2,
    core_pb2,
    networking_pb2,
    rbac_pb2,
)

MANIFESTS = Path(__file__).parent / "manifests"
MANIFEST_FILES = sorted(MANIFESTS.glob("*.yaml"))
KIND_MODULES = (core_pb2, apps_pb2, batch_pb2, coordination_pb2, networking_pb2,
                autoscaling_pb2, rbac_pb2)
# Maps of resource name -> quantity. YAML reads `cpu: 1` as an int; the proto wants "1".
QUANTITY_MAPS = frozenset(
    {"limits", "requests", "capacity", "allocatable", "overhead", "allocatedResources"}
)


def message_class(kind: str) -> type[Message]:
    """The generated class named by a manifest's `kind`."""
    for module in KIND_MODULES:
        cls = getattr(module, kind, None)
        if cls is not None:
            return cls  # type: ignore[no-any-return]
    raise LookupError(f"no message for kind {kind!r}")


def quantities_to_strings(node: Any) -> Any:
    """Return a copy of `node` where numbers inside resource lists are strings."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in QUANTITY_MAPS and isinstance(value, dict):
                out[key] = {
                    k: str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
                    for k, v in value.items()
                }
            else:
                out[key] = quantities_to_strings(value)
        return out
    if isinstance(node, list):
        return [quantities_to_strings(item) for item in node]
    return node


def load(path: Path) -> tuple[dict[str, Any], Message]:
    """Read one manifest and parse it strictly into its typed message."""
    doc = quantities_to_strings(yaml.safe_load(path.read_text()))
    msg = message_class(doc["kind"])()
    json_format.ParseDict(doc, msg, ignore_unknown_fields=False)
    return doc, msg


def is_zero(value: Any) -> bool:
    """Values that proto3 does not print for fields without presence (and YAML nulls)."""
    return value is None or value is False or value == 0 or value == "" or value in ([], {})


def _timestamp(value: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def same_scalar(want: Any, got: Any) -> bool:
    """Equal modulo the proto3 JSON forms: int64 as string, int-or-string ints as
    floats (80 -> 80.0), timestamps with normalised fractions, bytes as base64."""
    if want == got and type(want) is type(got):
        return True
    if isinstance(want, int) and not isinstance(want, bool):
        if isinstance(got, float) and got.is_integer():
            return int(got) == want
        if isinstance(got, str) and got.lstrip("-").isdigit():
            return int(got) == want
    if isinstance(want, str) and isinstance(got, str):
        wt, gt = _timestamp(want), _timestamp(got)
        if wt is not None and gt is not None and "T" in want:
            return wt == gt
        try:
            return base64.b64decode(want, validate=True) == base64.b64decode(got, validate=True)
        except ValueError:
            return False
    return False


def diff(want: Any, got: Any, path: str = "") -> list[str]:
    """Differences between a manifest and its round trip, as field paths."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: {got!r} is not an object"]
        problems = []
        for key, value in want.items():
            if key not in got:
                if not is_zero(value):
                    problems.append(f"{path}.{key}: lost in round trip")
                continue
            problems += diff(value, got[key], f"{path}.{key}")
        problems += [f"{path}.{key}: appeared in round trip" for key in got.keys() - want.keys()]
        return problems
    if isinstance(want, list):
        if not isinstance(got, list) or len(want) != len(got):
            return [f"{path}: {got!r} != {want!r}"]
        pairs = enumerate(zip(want, got, strict=True))
        return [p for i, (w, g) in pairs for p in diff(w, g, f"{path}[{i}]")]
    if not same_scalar(want, got):
        return [f"{path}: {got!r} != {want!r}"]
    return []


@pytest.mark.parametrize("path", MANIFEST_FILES, ids=[p.stem for p in MANIFEST_FILES])
def test_manifest_round_trips(path: Path) -> None:
    doc, msg = load(path)
    back = json_format.MessageToDict(msg)
    assert diff(doc, back) == []


def test_every_kind_has_a_manifest() -> None:
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in MANIFEST_FILES}
    oneof = api_pb2.Object.DESCRIPTOR.oneofs_by_name["kind"]
    envelope = {f.message_type.name for f in oneof.fields if f.message_type is not None}
    assert envelope <= kinds


def test_envelope_holds_a_manifest() -> None:
    """The envelope's JSON form is {"<kind in lowerCamelCase>": manifest}."""
    doc, msg = load(MANIFESTS / "deployment-nginx.yaml")
    obj = json_format.ParseDict({"deployment": doc}, api_pb2.Object())
    assert obj.WhichOneof("kind") == "deployment"
    assert obj.deployment == msg


def test_unknown_field_is_an_error_naming_it() -> None:
    container = {"name": "c", "image": "nginx", "ports": [{"containerport": 80}]}
    doc = {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [container]}}
    with pytest.raises(json_format.ParseError, match="containerport"):
        json_format.ParseDict(doc, core_pb2.Pod())


def test_acronym_json_names() -> None:
    """Fields where lowerCamelCase of the proto name differs from Kubernetes' spelling."""
    _, pod = load(MANIFESTS / "pod-kitchen-sink.yaml")
    assert isinstance(pod, core_pb2.Pod)
    assert pod.status.pod_ip == "10.244.1.7"
    assert pod.status.host_ip == "192.168.49.2"
    assert [ip.ip for ip in pod.status.pod_ips] == ["10.244.1.7"]
    assert pod.status.container_statuses[0].container_id == "docker://8a6d2f1c0e9b"
    assert pod.status.container_statuses[0].image_id.startswith("docker-pullable://")
    assert pod.spec.containers[0].ports[1].host_ip == "0.0.0.0"
    assert pod.spec.volumes[-2].downward_api.items[0].path == "labels"
    _, svc = load(MANIFESTS / "service-loadbalancer.yaml")
    assert isinstance(svc, core_pb2.Service)
    assert list(svc.spec.external_ips) == ["198.51.100.32"]
    assert svc.spec.session_affinity_config.client_ip.timeout_seconds == 3600
    _, node = load(MANIFESTS / "node-worker.yaml")
    assert isinstance(node, core_pb2.Node)
    assert node.spec.pod_cidr == "10.244.1.0/24"
    assert list(node.spec.pod_cidrs) == ["10.244.1.0/24"]
    assert node.spec.provider_id == "kemu://node-1"
    assert node.status.node_info.machine_id.startswith("4c4f")
    assert node.status.node_info.system_uuid.startswith("8e6c")
    assert node.status.node_info.boot_id.startswith("1f2e")
    assert node.status.daemon_endpoints.kubelet_endpoint.port == 10250


def test_int_or_string_accepts_both_forms() -> None:
    _, svc = load(MANIFESTS / "service-nodeport.yaml")
    assert isinstance(svc, core_pb2.Service)
    assert svc.spec.ports[0].target_port.string_value == "http-web-svc"
    assert svc.spec.ports[1].target_port.number_value == 9090
    _, deploy = load(MANIFESTS / "deployment-nginx.yaml")
    assert isinstance(deploy, apps_pb2.Deployment)
    rolling = deploy.spec.strategy.rolling_update
    assert rolling.max_surge.string_value == "25%"
    assert rolling.max_unavailable.number_value == 1


def test_optional_fields_keep_presence() -> None:
    """Unset and zero differ where Kubernetes applies a default to unset fields."""
    _, sts = load(MANIFESTS / "statefulset-web.yaml")
    assert isinstance(sts, apps_pb2.StatefulSet)
    assert sts.spec.update_strategy.rolling_update.HasField("partition")
    assert sts.spec.update_strategy.rolling_update.partition == 0
    assert not sts.spec.HasField("revision_history_limit")
    _, pod = load(MANIFESTS / "pod-kitchen-sink.yaml")
    assert isinstance(pod, core_pb2.Pod)
    probe = pod.spec.containers[0].readiness_probe
    assert probe.WhichOneof("handler") == "tcp_socket"
    assert not probe.HasField("timeout_seconds")
    assert probe.HasField("success_threshold")
    assert pod.spec.volumes[4].config_map.default_mode == 0o644


def test_quantities_and_secret_data() -> None:
    _, deploy = load(MANIFESTS / "deployment-nginx.yaml")
    assert isinstance(deploy, apps_pb2.Deployment)
    assert dict(deploy.spec.template.spec.containers[0].resources.limits) == {
        "cpu": "1",
        "memory": "128Mi",
    }
    _, secret = load(MANIFESTS / "secret-mixed.yaml")
    assert isinstance(secret, core_pb2.Secret)
    assert secret.data["username"] == b"admin"
    assert secret.string_data["config.yaml"].startswith("apiUrl:")
