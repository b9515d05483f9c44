"""Endpoints computation as a pure function, table-driven, and the controller's reconcile
against a fake client and hand-filled informer caches."""

from __future__ import annotations

from typing import Any

import pytest

from kemu.api import manifest
from kemu.api.v1 import api_pb2, core_pb2
from kemu.client.errors import NotFound
from kemu.client.informer import Informer, key_of
from kemu.services.controllers import endpoints as ec

NS = "default"


def svc(name: str = "web", *, selector: dict[str, str] | None = None,
        ports: list[dict[str, Any]] | None = None, cluster_ip: str = "10.96.0.5",
        publish: bool = False, type_: str = "ClusterIP") -> core_pb2.Service:
    spec: dict[str, Any] = {"selector": {"app": "web"} if selector is None else selector,
                            "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]
                            if ports is None else ports,
                            "clusterIP": cluster_ip, "type": type_,
                            "publishNotReadyAddresses": publish}
    return manifest.from_dict({"apiVersion": "v1", "kind": "Service",
                               "metadata": {"name": name, "namespace": NS}, "spec": spec}
                              ).service


def pod(name: str, ip: str, *, ready: bool = True, labels: dict[str, str] | None = None,
        ports: list[dict[str, Any]] | None = None, node: str = "n1", ns: str = NS,
        hostname: str = "", subdomain: str = "", deleting: bool = False,
        phase: str = "Running") -> core_pb2.Pod:
    container: dict[str, Any] = {"name": "app", "image": "x"}
    if ports is not None:
        container["ports"] = ports
    spec: dict[str, Any] = {"containers": [container], "nodeName": node}
    if hostname:
        spec["hostname"] = hostname
    if subdomain:
        spec["subdomain"] = subdomain
    meta: dict[str, Any] = {"name": name, "namespace": ns, "uid": f"uid-{name}",
                            "labels": {"app": "web"} if labels is None else labels}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: dict[str, Any] = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"] = ip
    return manifest.from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                               "spec": spec, "status": status}).pod


def shape(subsets: list[core_pb2.EndpointSubset]) -> list[tuple[Any, ...]]:
    """(ready ips, not-ready ips, ports) per subset."""
    return [([a.ip for a in s.addresses], [a.ip for a in s.not_ready_addresses],
             [(p.name, p.port, p.protocol) for p in s.ports]) for s in subsets]


NAMED = [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]


@pytest.mark.parametrize(("service", "pods", "want"), [
    pytest.param(svc(), [pod("a", "10.244.0.3"), pod("b", "10.244.0.2", ready=False)],
                 [(["10.244.0.3"], ["10.244.0.2"], [("", 8080, "TCP")])],
                 id="ready-and-not-ready"),
    pytest.param(svc(), [pod("a", "10.244.0.10"), pod("b", "10.244.0.9")],
                 [(["10.244.0.9", "10.244.0.10"], [], [("", 8080, "TCP")])],
                 id="addresses-sorted-by-ip"),
    pytest.param(svc(), [pod("a", ""), pod("b", "10.244.0.2", labels={"app": "other"}),
                         pod("c", "10.244.0.4", ns="elsewhere")],
                 [], id="no-ip-other-labels-other-namespace"),
    pytest.param(svc(ports=NAMED),
                 [pod("a", "10.244.0.2", ports=[{"name": "http", "containerPort": 8080}]),
                  pod("b", "10.244.0.3", ports=[{"name": "http", "containerPort": 9090}]),
                  pod("c", "10.244.0.4", ports=[{"name": "http", "containerPort": 8080}],
                      ready=False),
                  pod("d", "10.244.0.5", ports=[{"name": "metrics", "containerPort": 1}])],
                 [(["10.244.0.2"], ["10.244.0.4"], [("http", 8080, "TCP")]),
                  (["10.244.0.3"], [], [("http", 9090, "TCP")])],
                 id="named-port-per-pod-two-subsets"),
    pytest.param(svc(ports=[{"name": "http", "port": 80, "targetPort": "http",
                             "protocol": "TCP"},
                            {"name": "admin", "port": 81, "targetPort": 9000,
                             "protocol": "TCP"}]),
                 [pod("a", "10.244.0.2", ports=[{"name": "http", "containerPort": 8080}]),
                  pod("b", "10.244.0.3")],
                 [(["10.244.0.3"], [], [("admin", 9000, "TCP")]),
                  (["10.244.0.2"], [], [("admin", 9000, "TCP"), ("http", 8080, "TCP")])],
                 id="pod-lacking-named-port-keeps-numeric-port"),
    pytest.param(svc(ports=[{"name": "dns", "port": 53, "targetPort": "dns",
                             "protocol": "UDP"}]),
                 [pod("a", "10.244.0.2", ports=[{"name": "dns", "containerPort": 53,
                                                 "protocol": "TCP"}])],
                 [], id="named-port-protocol-must-match"),
    pytest.param(svc(publish=True),
                 [pod("a", "10.244.0.2", ready=False), pod("b", "10.244.0.3", deleting=True)],
                 [(["10.244.0.2", "10.244.0.3"], [], [("", 8080, "TCP")])],
                 id="publish-not-ready-addresses"),
    pytest.param(svc(), [pod("a", "10.244.0.2", deleting=True), pod("b", "10.244.0.3")],
                 [(["10.244.0.3"], [], [("", 8080, "TCP")])], id="terminating-excluded"),
    pytest.param(svc(), [pod("a", "10.244.0.2", phase="Succeeded"),
                         pod("b", "10.244.0.3", phase="Failed", ready=False)],
                 [], id="finished-pods-excluded"),
    pytest.param(svc(cluster_ip="None", ports=[]), [pod("a", "10.244.0.2")],
                 [(["10.244.0.2"], [], [])], id="headless-without-ports"),
])
def test_desired_subsets(service: core_pb2.Service, pods: list[core_pb2.Pod],
                         want: list[tuple[Any, ...]]) -> None:
    assert shape(ec.desired_subsets(service, pods)) == want


def test_address_fields_and_hostname() -> None:
    service = svc("db", cluster_ip="None")
    pods = [pod("db-0", "10.244.1.2", hostname="db-0", subdomain="db", node="n2"),
            pod("x", "10.244.1.3", hostname="x", subdomain="other"),
            pod("y", "10.244.1.4", subdomain="db")]
    [subset] = ec.desired_subsets(service, pods)
    a, b, c = subset.addresses
    assert (a.ip, a.hostname, a.node_name) == ("10.244.1.2", "db-0", "n2")
    ref = a.target_ref
    assert (ref.kind, ref.namespace, ref.name, ref.uid) == ("Pod", NS, "db-0", "uid-db-0")
    assert b.hostname == "" and c.hostname == ""


def test_labels_copy_service_and_mark_headless() -> None:
    service = svc(cluster_ip="None")
    service.metadata.labels["tier"] = "fe"
    assert ec.desired_labels(service) == {"tier": "fe", ec.HEADLESS_LABEL: "",
                                          ec.MANAGED_BY_LABEL: ec.MANAGED_BY}


# ---- the controller against fakes -----------------------------------------------------


class FakeClient:
    def __init__(self) -> None:
        self.stored: dict[str, api_pb2.Object] = {}
        self.calls: list[tuple[str, str]] = []

    async def create(self, obj: api_pb2.Object) -> api_pb2.Object:
        self.calls.append(("create", key_of(obj)))
        self.stored[key_of(obj)] = obj
        return obj

    async def get(self, resource: str, name: str, namespace: str = "") -> api_pb2.Object:
        try:
            return self.stored[f"{namespace}/{name}"]
        except KeyError:
            raise NotFound(name) from None

    async def update(self, obj: api_pb2.Object) -> api_pb2.Object:
        self.calls.append(("update", key_of(obj)))
        self.stored[key_of(obj)] = obj
        return obj

    async def delete(self, resource: str, name: str, namespace: str = "", *,
                     grace_period_seconds: int | None = None, uid: str = "",
                     propagation_policy: int = 0) -> api_pb2.DeleteResponse:
        self.calls.append(("delete", f"{namespace}/{name}"))
        if self.stored.pop(f"{namespace}/{name}", None) is None:
            raise NotFound(name)
        return api_pb2.DeleteResponse()


def controller() -> tuple[ec.EndpointsController, FakeClient, dict[str, Informer]]:
    client = FakeClient()
    informers = {r: Informer(client, r) for r in ec.INFORMERS}  # type: ignore[arg-type]
    return ec.EndpointsController(client, informers), client, informers


def put(inf: Informer, obj: api_pb2.Object) -> None:
    inf.store[key_of(obj)] = obj


def wrap(msg: Any) -> api_pb2.Object:
    from kemu.api import objects
    return objects.wrap(msg)


async def test_reconcile_creates_once_then_no_write_storm() -> None:
    ctrl, client, inf = controller()
    put(inf["services"], wrap(svc()))
    put(inf["pods"], wrap(pod("a", "10.244.0.2")))
    await ctrl.reconcile(f"{NS}/web")
    assert client.calls == [("create", f"{NS}/web")]
    put(inf["endpoints"], client.stored[f"{NS}/web"])
    await ctrl.reconcile(f"{NS}/web")
    assert client.calls == [("create", f"{NS}/web")]
    put(inf["pods"], wrap(pod("a", "10.244.0.2", ready=False)))
    await ctrl.reconcile(f"{NS}/web")
    assert client.calls[-1] == ("update", f"{NS}/web")
    assert shape(list(client.stored[f"{NS}/web"].endpoints.subsets)) == [
        ([], ["10.244.0.2"], [("", 8080, "TCP")])]


async def test_reconcile_deletes_only_managed_endpoints() -> None:
    ctrl, client, inf = controller()
    put(inf["services"], wrap(svc()))
    await ctrl.reconcile(f"{NS}/web")
    put(inf["endpoints"], client.stored[f"{NS}/web"])
    inf["services"].store.clear()
    await ctrl.reconcile(f"{NS}/web")
    assert client.calls[-1] == ("delete", f"{NS}/web")

    manual = core_pb2.Endpoints()
    manual.metadata.name, manual.metadata.namespace = "ext", NS
    manual.subsets.add().addresses.add(ip="192.0.2.1")
    put(inf["endpoints"], wrap(manual))
    put(inf["services"], wrap(svc("ext", selector={})))
    n = len(client.calls)
    await ctrl.reconcile(f"{NS}/ext")
    inf["services"].store.clear()
    await ctrl.reconcile(f"{NS}/ext")
    assert len(client.calls) == n


async def test_pod_events_map_to_selecting_services_old_and_new_labels() -> None:
    ctrl, _, inf = controller()
    put(inf["services"], wrap(svc("web")))
    put(inf["services"], wrap(svc("api", selector={"app": "api"})))
    put(inf["services"], wrap(svc("none", selector={"app": "none"})))
    old = wrap(pod("a", "10.244.0.2"))
    new = wrap(pod("a", "10.244.0.2", labels={"app": "api"}))
    ctrl.on_pod(old, new)
    assert sorted(ctrl.queue._queue) == [f"{NS}/api", f"{NS}/web"]
