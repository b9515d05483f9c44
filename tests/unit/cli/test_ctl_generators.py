"""The objects `kemuctl create <type>` builds, as kubectl's generators build them."""

from __future__ import annotations

from pathlib import Path

import pytest

from kemu.api import objects
from kemu.cli.ctl import generators
from kemu.cli.ctl.errors import CtlError


@pytest.mark.parametrize(("image", "name"), [
    pytest.param("nginx", "nginx", id="plain"),
    pytest.param("nginx:1.25", "nginx", id="tag"),
    pytest.param("registry:5000/team/web_app:1", "web-app", id="registry-and-underscore"),
    pytest.param("busybox@sha256:abc", "busybox", id="digest"),
])
def test_container_name(image: str, name: str) -> None:
    assert generators.container_name(image) == name


def test_deployment() -> None:
    d = generators.deployment("web", ["nginx:1", "nginx:2"], replicas=3, port=80).deployment
    assert dict(d.metadata.labels) == {"app": "web"}
    assert dict(d.spec.selector.match_labels) == {"app": "web"}
    assert dict(d.spec.template.metadata.labels) == {"app": "web"}
    assert d.spec.replicas == 3
    assert [c.name for c in d.spec.template.spec.containers] == ["nginx", "nginx-1"]
    assert d.spec.template.spec.containers[0].ports[0].container_port == 80


def test_deployment_needs_an_image() -> None:
    with pytest.raises(CtlError, match="image"):
        generators.deployment("web", [])


def test_service_nodeport() -> None:
    s = generators.service("nodeport", "web", ["80:8080", "443:https"], node_port=30080).service
    assert s.spec.type == "NodePort" and dict(s.spec.selector) == {"app": "web"}
    assert [(p.name, p.port, p.node_port) for p in s.spec.ports] == [
        ("80-8080", 80, 30080), ("443-https", 443, 30080)]
    assert s.spec.ports[0].target_port.number_value == 8080
    assert s.spec.ports[1].target_port.string_value == "https"


def test_configmap_and_secret_data(tmp_path: Path) -> None:
    (tmp_path / "app.conf").write_text("x=1\n")
    (tmp_path / "blob").write_bytes(b"\xff\x00")
    data = generators.data_from(["a=1"], [str(tmp_path / "app.conf"), f"b={tmp_path / 'blob'}"])
    cm = generators.configmap("c", data).config_map
    assert dict(cm.data) == {"a": "1", "app.conf": "x=1\n"}
    assert dict(cm.binary_data) == {"b": b"\xff\x00"}
    secret = generators.secret("s", {"pw": b"hunter2"}).secret
    assert secret.type == "Opaque" and secret.data["pw"] == b"hunter2"
    assert objects.kind_of(generators.namespace("n")).kind == "Namespace"


def test_duplicate_keys_fail() -> None:
    with pytest.raises(CtlError, match="another key by that name already exists"):
        generators.data_from(["a=1", "a=2"], [])
