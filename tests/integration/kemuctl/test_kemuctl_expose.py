"""`kemuctl expose` against a real apiserver: what it introspects from a Deployment, a Pod
and a Service, what the flags override, the allocated nodePort, client dry runs, and each
refusal as one stderr line with exit 1."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from kemu.api import manifest
from kemu.client import Client
from tests.integration.kemuctl.conftest import Kemuctl, make_pod

pytestmark = pytest.mark.integration


def make_deployment(client: Client, ns: str, name: str, *, ports: list[dict[str, Any]],
                    selector: dict[str, Any] | None = None) -> None:
    client.create(manifest.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name, "tier": "web"}},
        "spec": {"selector": selector or {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "nginx:1",
                                                       "ports": ports}]}}}}))


def test_deployment_defaults_are_introspected(ctl: Kemuctl, ns: str, api: Client) -> None:
    make_deployment(api, ns, "web", ports=[{"containerPort": 8080}])
    assert ctl.ok("expose", "deployment", "web", "-n", ns).lines == ["service/web exposed"]
    svc = api.get("services", "web", ns).service
    assert dict(svc.spec.selector) == {"app": "web"}
    assert dict(svc.metadata.labels) == {"app": "web", "tier": "web"}
    assert svc.spec.type == "ClusterIP" and svc.spec.cluster_ip
    [port] = svc.spec.ports
    assert (port.port, port.target_port.number_value, port.protocol) == (8080, 8080, "TCP")


def test_several_container_ports_become_named_ports(ctl: Kemuctl, ns: str, api: Client) -> None:
    make_deployment(api, ns, "multi", ports=[{"containerPort": 80},
                                             {"containerPort": 53, "protocol": "UDP"}])
    ctl.ok("expose", "deploy/multi", "-n", ns)
    ports = api.get("services", "multi", ns).service.spec.ports
    assert [(p.name, p.port, p.protocol) for p in ports] == [("port-1", 80, "TCP"),
                                                             ("port-2", 53, "UDP")]


def test_explicit_flags(ctl: Kemuctl, ns: str, api: Client) -> None:
    make_deployment(api, ns, "app", ports=[{"containerPort": 8080}])
    assert ctl.ok("expose", "deploy", "app", "--port=80", "--target-port=http", "--name=front",
                  "--protocol=UDP", "--selector=app=app,extra=1", "--labels=team=a",
                  "--external-ip=192.0.2.7", "--session-affinity=ClientIP", "-n",
                  ns).lines == ["service/front exposed"]
    svc = api.get("services", "front", ns).service
    assert dict(svc.spec.selector) == {"app": "app", "extra": "1"}
    assert dict(svc.metadata.labels) == {"team": "a"}
    assert list(svc.spec.external_ips) == ["192.0.2.7"]
    assert svc.spec.session_affinity == "ClientIP"
    [port] = svc.spec.ports
    assert (port.port, port.target_port.string_value, port.protocol) == (80, "http", "UDP")


def test_nodeport_type_gets_a_node_port(ctl: Kemuctl, ns: str, api: Client) -> None:
    make_deployment(api, ns, "np", ports=[{"containerPort": 8080}])
    out = ctl.ok("expose", "deployment", "np", "--type=NodePort", "--port=80", "-o", "yaml",
                 "-n", ns).out
    doc = yaml.safe_load(out)
    assert doc["spec"]["type"] == "NodePort"
    assert 30000 <= doc["spec"]["ports"][0]["nodePort"] <= 32767
    assert api.get("services", "np", ns).service.spec.ports[0].node_port == \
        doc["spec"]["ports"][0]["nodePort"]


def test_headless_with_cluster_ip_none(ctl: Kemuctl, ns: str, api: Client) -> None:
    make_deployment(api, ns, "hl", ports=[{"containerPort": 8080}])
    ctl.ok("expose", "deployment", "hl", "--cluster-ip=None", "-n", ns)
    assert api.get("services", "hl", ns).service.spec.cluster_ip == "None"


def test_client_dry_run_prints_and_creates_nothing(ctl: Kemuctl, ns: str, api: Client) -> None:
    make_deployment(api, ns, "dry", ports=[{"containerPort": 8080}])
    doc = yaml.safe_load(ctl.ok("expose", "deployment", "dry", "--dry-run=client", "-o", "yaml",
                                "-n", ns).out)
    assert (doc["kind"], doc["metadata"]["name"], doc["metadata"]["namespace"]) == (
        "Service", "dry", ns)
    assert doc["spec"]["ports"] == [{"port": 8080, "protocol": "TCP", "targetPort": 8080}]
    assert ctl("get", "services", "-n", ns).err_lines == [
        f"No resources found in {ns} namespace."]
    assert ctl.ok("expose", "deployment", "dry", "--dry-run=client", "-n", ns).lines == [
        "service/dry exposed (dry run)"]
    assert ctl.ok("expose", "deployment", "dry", "--dry-run=server", "-o", "name", "-n",
                  ns).lines == ["service/dry"]
    assert ctl("get", "services", "-n", ns).code == 0
    assert not ctl("get", "services", "-n", ns).out


def test_expose_a_pod(ctl: Kemuctl, ns: str, api: Client) -> None:
    make_pod(api, ns, "p", labels={"run": "p"},
             spec={"containers": [{"name": "c", "image": "nginx:1",
                                   "ports": [{"containerPort": 9000}]}]})
    assert ctl.ok("expose", "pod", "p", "--name=p-svc", "-n", ns).lines == [
        "service/p-svc exposed"]
    svc = api.get("services", "p-svc", ns).service
    assert dict(svc.spec.selector) == {"run": "p"}
    assert [(p.port, p.target_port.number_value) for p in svc.spec.ports] == [(9000, 9000)]


def test_expose_a_service(ctl: Kemuctl, ns: str, api: Client) -> None:
    ctl.ok("create", "service", "clusterip", "orig", "--tcp=80:8080", "-n", ns)
    assert ctl.ok("expose", "svc", "orig", "--name=copy", "--type=NodePort", "-n",
                  ns).lines == ["service/copy exposed"]
    svc = api.get("services", "copy", ns).service
    assert dict(svc.spec.selector) == {"app": "orig"}
    [port] = svc.spec.ports
    assert (port.port, port.target_port.number_value) == (80, 80) and port.node_port


@pytest.mark.parametrize(("setup", "args", "error"), [
    pytest.param(None, ("expose", "deployment", "nope", "--port=80"),
                 'Error from server (NotFound): deployments.apps "nope" not found',
                 id="not-found"),
    pytest.param("dup", ("expose", "deployment", "dup"),
                 'Error from server (AlreadyExists): services "dup" already exists',
                 id="already-exists"),
    pytest.param("noport", ("expose", "deployment", "noport"),
                 "error: couldn't find port via --port flag or introspection", id="no-port"),
    pytest.param("expr", ("expose", "deployment", "expr", "--port=80"),
                 "error: couldn't retrieve selectors via --selector flag or introspection: "
                 'the selector "app in (expr)" is not supported: matchExpressions cannot be a '
                 "service's selector", id="match-expressions"),
    pytest.param(None, ("expose", "namespace", "default", "--port=80"),
                 "error: cannot expose a Namespace", id="not-exposable"),
    pytest.param(None, ("expose", "deployment"),
                 "error: resource(s) were provided, but no name was specified: kemuctl expose "
                 "deployment NAME", id="no-name"),
    pytest.param(None, ("expose", "deployment", "x", "--type=Bogus"),
                 'error: invalid service type "Bogus": use ClusterIP, NodePort, LoadBalancer',
                 id="bad-type"),
    pytest.param(None, ("expose", "deployment", "x", "--port=http"),
                 "error: invalid --port 'http': expected a number from 1 to 65535",
                 id="bad-port"),
])
def test_errors_are_one_line(ctl: Kemuctl, ns: str, api: Client, setup: str | None,
                             args: tuple[str, ...], error: str) -> None:
    if setup == "dup":
        make_deployment(api, ns, "dup", ports=[{"containerPort": 80}])
        ctl.ok("expose", "deployment", "dup", "-n", ns)
    elif setup == "noport":
        make_deployment(api, ns, "noport", ports=[])
    elif setup == "expr":
        make_deployment(api, ns, "expr", ports=[], selector={"matchExpressions": [
            {"key": "app", "operator": "In", "values": ["expr"]}]})
    result = ctl.process(*args, "-n", ns)
    assert (result.code, result.err_lines, result.out) == (1, [error], "")
