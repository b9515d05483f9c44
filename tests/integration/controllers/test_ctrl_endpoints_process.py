"""Endpoints through real processes: addresses from pod status, readiness moves an address,
relabeling removes it, deleting the Service deletes its Endpoints, user-deleted Endpoints
come back, and a selector-less Service's hand-written Endpoints are left alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kemu.api import manifest
from kemu.api.v1 import api_pb2, core_pb2
from kemu.client import Client
from kemu.client.errors import NotFound
from tests.conftest import Cluster
from tests.integration.controllers.conftest import controller_manager, poll
from tests.support import processes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cm(cluster: Cluster) -> Iterator[processes.Proc]:
    proc = controller_manager(cluster.tmp, cluster.server, "--controllers", "endpoints")
    with processes.running(proc):
        yield proc
        assert proc.alive(), proc.tail()


def service(client: Client, ns: str, name: str, selector: dict[str, str] | None,
            ports: list[dict[str, Any]] | None = None) -> None:
    spec: dict[str, Any] = {"ports": ports or [{"name": "http", "port": 80,
                                                "targetPort": "http"}]}
    if selector:
        spec["selector"] = selector
    client.create(manifest.from_dict({"apiVersion": "v1", "kind": "Service",
                                      "metadata": {"name": name, "namespace": ns},
                                      "spec": spec}))


def pod(client: Client, ns: str, name: str, ip: str, *, ready: bool,
        labels: dict[str, str] | None = None, port: int = 8080) -> None:
    client.create(manifest.from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "x",
                                 "ports": [{"name": "http", "containerPort": port}]}]}}))
    set_status(client, ns, name, ip=ip, ready=ready)


def set_status(client: Client, ns: str, name: str, *, ip: str | None = None,
               ready: bool) -> None:
    obj = client.get("pods", name, ns)
    st = obj.pod.status
    st.phase = "Running"
    if ip is not None:
        st.pod_ip = ip
        del st.pod_ips[:]
        st.pod_ips.add(ip=ip)
    del st.conditions[:]
    st.conditions.add(type="Ready", status="True" if ready else "False")
    client.update_status(obj)


def endpoints(client: Client, ns: str, name: str) -> core_pb2.Endpoints | None:
    try:
        return client.get("endpoints", name, ns).endpoints
    except NotFound:
        return None


def shape(ep: core_pb2.Endpoints | None) -> list[tuple[Any, ...]] | None:
    if ep is None:
        return None
    return [(sorted(a.ip for a in s.addresses), sorted(a.ip for a in s.not_ready_addresses),
             [(p.name, p.port) for p in s.ports]) for s in ep.subsets]


def wait_shape(client: Client, ns: str, name: str, want: list[tuple[Any, ...]] | None,
               timeout: float = 15.0) -> None:
    poll(f"endpoints {ns}/{name} to be {want}",
         lambda: shape(endpoints(client, ns, name)) == want, timeout)


def test_endpoints_follow_pods(cm: processes.Proc, client: Client, namespace: str) -> None:
    ns = namespace
    service(client, ns, "web", {"app": "web"})
    wait_shape(client, ns, "web", [])
    pod(client, ns, "a", "10.244.0.2", ready=True)
    pod(client, ns, "b", "10.244.0.3", ready=False)
    pod(client, ns, "c", "10.244.0.4", ready=True, port=9090)
    wait_shape(client, ns, "web", [(["10.244.0.2"], ["10.244.0.3"], [("http", 8080)]),
                                   (["10.244.0.4"], [], [("http", 9090)])])
    ep = endpoints(client, ns, "web")
    assert ep is not None
    addr = ep.subsets[0].addresses[0]
    assert (addr.target_ref.kind, addr.target_ref.name) == ("Pod", "a")

    set_status(client, ns, "b", ready=True)
    set_status(client, ns, "a", ready=False)
    wait_shape(client, ns, "web", [(["10.244.0.3"], ["10.244.0.2"], [("http", 8080)]),
                                   (["10.244.0.4"], [], [("http", 9090)])])

    obj = client.get("pods", "c", ns)
    obj.pod.metadata.labels["app"] = "other"
    client.update(obj)
    wait_shape(client, ns, "web", [(["10.244.0.3"], ["10.244.0.2"], [("http", 8080)])])

    # Deleted by a user: recreated.
    client.delete("endpoints", "web", ns)
    wait_shape(client, ns, "web", [(["10.244.0.3"], ["10.244.0.2"], [("http", 8080)])])

    # No write storm: pod writes that change nothing the Endpoints show write nothing.
    before = endpoints(client, ns, "web")
    assert before is not None
    set_status(client, ns, "b", ready=True)
    set_status(client, ns, "a", ready=False)
    service(client, ns, "marker", {"app": "marker"})  # barrier: handled after those
    pod(client, ns, "m", "10.244.9.9", ready=True, labels={"app": "marker"})
    wait_shape(client, ns, "marker", [(["10.244.9.9"], [], [("http", 8080)])])
    after = endpoints(client, ns, "web")
    assert after is not None
    assert after.metadata.resource_version == before.metadata.resource_version

    client.delete("services", "web", ns)
    wait_shape(client, ns, "web", None)
    assert cm.alive(), cm.tail()


def test_selectorless_service_keeps_manual_endpoints(cm: processes.Proc, client: Client,
                                                     namespace: str) -> None:
    ns = namespace
    manual = api_pb2.Object()
    ep = manual.endpoints
    ep.metadata.name, ep.metadata.namespace = "external", ns
    subset = ep.subsets.add()
    subset.addresses.add(ip="192.0.2.10")
    subset.ports.add(name="http", port=80, protocol="TCP")
    written = client.create(manual).endpoints
    service(client, ns, "external", None,
            [{"name": "http", "port": 80, "targetPort": 80}])

    # Barrier: a later change to a selector Service is reflected, so the controller has
    # long handled the selector-less one.
    service(client, ns, "marker", {"app": "marker"})
    pod(client, ns, "m", "10.244.9.9", ready=True, labels={"app": "marker"})
    wait_shape(client, ns, "marker", [(["10.244.9.9"], [], [("http", 8080)])])
    now = endpoints(client, ns, "external")
    assert now is not None
    assert now.metadata.resource_version == written.metadata.resource_version
    assert list(now.subsets) == list(written.subsets)

    client.delete("services", "external", ns)
    client.delete("services", "marker", ns)
    wait_shape(client, ns, "marker", None)
    assert endpoints(client, ns, "external") is not None
    assert cm.alive(), cm.tail()


def test_external_name_gets_no_endpoints(cm: processes.Proc, client: Client,
                                         namespace: str) -> None:
    ns = namespace
    client.create(manifest.from_dict({"apiVersion": "v1", "kind": "Service",
                                      "metadata": {"name": "ext", "namespace": ns},
                                      "spec": {"type": "ExternalName",
                                               "externalName": "example.com",
                                               "selector": {"app": "web"}}}))
    pod(client, ns, "a", "10.244.0.2", ready=True)
    service(client, ns, "marker", {"app": "web"})
    wait_shape(client, ns, "marker", [(["10.244.0.2"], [], [("http", 8080)])])
    assert endpoints(client, ns, "ext") is None
