"""`kemuctl expose` without a server: the selector and ports introspected from each kind,
the Service the flags and the object make, and the refusals in kubectl's words."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from kemu.api import kinds, manifest, objects
from kemu.cli.ctl import cmd_expose
from kemu.cli.ctl.cmd_expose import ExposeSpec, IntrospectionError, Port
from kemu.cli.ctl.errors import CtlError

TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {"containers": [
        {"name": "a", "image": "x", "ports": [{"containerPort": 8080}]},
        {"name": "b", "image": "y", "ports": [{"containerPort": 53, "protocol": "UDP"}]}]}}


def obj(kind: str, spec: dict[str, Any], **meta: Any) -> Any:
    api_version = "v1" if kind in ("Pod", "Service", "ReplicationController") else "apps/v1"
    return objects.unwrap(manifest.from_dict({
        "apiVersion": api_version, "kind": kind,
        "metadata": {"name": "web", "namespace": "default", **meta}, "spec": spec}))


DEPLOYMENT = obj("Deployment", {"selector": {"matchLabels": {"app": "web"}},
                                "template": TEMPLATE}, labels={"team": "a"})
POD = obj("Pod", TEMPLATE["spec"], labels={"run": "web"})
SERVICE = obj("Service", {"selector": {"app": "web"},
                          "ports": [{"port": 80, "targetPort": 8080}]})
RC = obj("ReplicationController", {"selector": {"app": "web"}, "template": TEMPLATE})
RS = obj("ReplicaSet", {"selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE})
STS = obj("StatefulSet", {"selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE,
                          "serviceName": "web"})


@pytest.mark.parametrize(("kind", "o", "selector"), [
    pytest.param("deployments", DEPLOYMENT, {"app": "web"}, id="deployment"),
    pytest.param("replicasets", RS, {"app": "web"}, id="replicaset"),
    pytest.param("statefulsets", STS, {"app": "web"}, id="statefulset"),
    pytest.param("replicationcontrollers", RC, {"app": "web"}, id="rc"),
    pytest.param("pods", POD, {"run": "web"}, id="pod-labels"),
    pytest.param("services", SERVICE, {"app": "web"}, id="service"),
])
def test_selector_for(kind: str, o: Any, selector: dict[str, str]) -> None:
    assert cmd_expose.selector_for(kinds.resolve(kind), o) == selector


@pytest.mark.parametrize(("kind", "o", "message"), [
    pytest.param("deployments", obj("Deployment", {
        "selector": {"matchExpressions": [{"key": "app", "operator": "In",
                                           "values": ["web"]}]},
        "template": TEMPLATE}), 'the selector "app in (web)" is not supported', id="expressions"),
    pytest.param("pods", obj("Pod", TEMPLATE["spec"]), "the pod has no labels", id="pod"),
    pytest.param("services", obj("Service", {"ports": [{"port": 80}]}),
                 "the service has no pod selector set", id="service"),
])
def test_selector_refusals(kind: str, o: Any, message: str) -> None:
    with pytest.raises(IntrospectionError, match="couldn't retrieve selectors via --selector "
                                                 "flag or introspection: ") as e:
        cmd_expose.selector_for(kinds.resolve(kind), o)
    assert message in str(e.value)


@pytest.mark.parametrize(("kind", "o", "ports"), [
    pytest.param("deployments", DEPLOYMENT, [Port(8080), Port(53, "UDP")], id="deployment"),
    pytest.param("statefulsets", STS, [Port(8080), Port(53, "UDP")], id="statefulset"),
    pytest.param("pods", POD, [Port(8080), Port(53, "UDP")], id="pod"),
    pytest.param("services", SERVICE, [Port(80)], id="service"),
    pytest.param("pods", obj("Pod", {"containers": [{"name": "a", "image": "x"}]},
                             labels={"a": "b"}), [], id="no-ports"),
])
def test_ports_for(kind: str, o: Any, ports: list[Port]) -> None:
    assert cmd_expose.ports_for(kinds.resolve(kind), o) == ports


def service_of(o: Any, kind: str = "deployments", **spec: Any) -> Any:
    return cmd_expose.build_service(kinds.resolve(kind), o, ExposeSpec(**spec)).service


def test_defaults_come_from_the_object() -> None:
    svc = service_of(DEPLOYMENT)
    assert (svc.metadata.name, dict(svc.metadata.labels), dict(svc.spec.selector)) == (
        "web", {"team": "a"}, {"app": "web"})
    assert [(p.name, p.port, p.target_port.number_value, p.protocol)
            for p in svc.spec.ports] == [("port-1", 8080, 8080, "TCP"),
                                         ("port-2", 53, 53, "UDP")]
    assert svc.spec.type == ""  # the server defaults ClusterIP


def test_flags_override_the_object() -> None:
    svc = service_of(DEPLOYMENT, name="front", port=53, target_port="dns",
                     service_type="NodePort", selector=(("x", "y"),), labels=(("l", "1"),),
                     external_ip="192.0.2.1", session_affinity="ClientIP", cluster_ip="None")
    [p] = svc.spec.ports
    assert (p.name, p.port, p.target_port.string_value, p.protocol) == ("", 53, "dns", "UDP")
    assert (svc.metadata.name, dict(svc.spec.selector), dict(svc.metadata.labels)) == (
        "front", {"x": "y"}, {"l": "1"})
    assert (svc.spec.type, list(svc.spec.external_ips), svc.spec.session_affinity,
            svc.spec.cluster_ip) == ("NodePort", ["192.0.2.1"], "ClientIP", "None")


def test_selector_flag_bypasses_match_expressions() -> None:
    o = obj("Deployment", {"selector": {"matchExpressions": [
        {"key": "app", "operator": "Exists"}]}, "template": TEMPLATE})
    assert dict(service_of(o, port=80, selector=(("app", "web"),)).spec.selector) == {
        "app": "web"}


def test_no_port_anywhere() -> None:
    o = obj("Pod", {"containers": [{"name": "a", "image": "x"}]}, labels={"a": "b"})
    with pytest.raises(IntrospectionError) as e:
        service_of(o, "pods")
    assert str(e.value) == "couldn't find port via --port flag or introspection"


def args(**over: Any) -> argparse.Namespace:
    base = {"name": "", "port": "", "target_port": "", "protocol": "", "service_type": "",
            "selector": "", "labels": "", "external_ip": "", "session_affinity": "",
            "cluster_ip": ""}
    return argparse.Namespace(**{**base, **over})


@pytest.mark.parametrize(("flags", "message"), [
    pytest.param({"service_type": "External"}, 'invalid service type "External"', id="type"),
    pytest.param({"protocol": "ICMP"}, 'invalid protocol "ICMP"', id="protocol"),
    pytest.param({"session_affinity": "Sticky"}, 'invalid session affinity "Sticky"',
                 id="affinity"),
    pytest.param({"external_ip": "host"}, 'invalid --external-ip "host"', id="external-ip"),
    pytest.param({"cluster_ip": "10.0.0"}, 'invalid --cluster-ip "10.0.0"', id="cluster-ip"),
    pytest.param({"port": "70000"}, "invalid --port '70000'", id="port"),
    pytest.param({"target_port": "0"}, "invalid --target-port '0'", id="target-port"),
    pytest.param({"selector": "app"}, "invalid --selector: 'app'", id="selector"),
])
def test_flag_refusals(flags: dict[str, str], message: str) -> None:
    with pytest.raises(CtlError, match=message):
        cmd_expose.spec_from(args(**flags))


@pytest.mark.parametrize(("words", "expected"), [
    pytest.param(["deploy", "web"], ("deployments", "web"), id="type-name"),
    pytest.param(["svc/web"], ("services", "web"), id="slash"),
    pytest.param(["rc", "web"], ("replicationcontrollers", "web"), id="rc"),
    pytest.param(["sts/web"], ("statefulsets", "web"), id="sts"),
    pytest.param(["po", "web"], ("pods", "web"), id="pod"),
])
def test_target(words: list[str], expected: tuple[str, str]) -> None:
    kind, name = cmd_expose.target(words)
    assert (kind.plural, name) == expected


@pytest.mark.parametrize(("words", "message"), [
    pytest.param([], "You must provide one or more resources", id="none"),
    pytest.param(["configmap", "x"], "cannot expose a ConfigMap", id="kind"),
    pytest.param(["deploy"], "no name was specified", id="no-name"),
    pytest.param(["deploy", "a", "b"], "exactly one resource", id="two"),
])
def test_target_refusals(words: list[str], message: str) -> None:
    with pytest.raises(CtlError, match=message):
        cmd_expose.target(words)
