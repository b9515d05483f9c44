"""The controller manager across restarts: Endpoints of a Service deleted while it was down
are cleaned up when it comes back (hand-written ones are not), and it rides out an
apiserver restart. Its own module, so its own store + apiserver."""

from __future__ import annotations

import pytest

from kemu.api import manifest
from kemu.api.v1 import api_pb2
from kemu.client import Client
from kemu.client.errors import NotFound
from tests.conftest import Cluster
from tests.integration.controllers.conftest import controller_manager, delete_nodes, poll
from tests.support import processes

pytestmark = pytest.mark.integration


def gone(client: Client, resource: str, name: str, ns: str = "") -> bool:
    try:
        client.get(resource, name, ns)
    except NotFound:
        return True
    return False


def test_leftover_endpoints_deleted_after_restart(cluster: Cluster, client: Client,
                                                  namespace: str) -> None:
    ns = namespace
    cm = controller_manager(cluster.tmp, cluster.server, "--controllers", "endpoints")
    with processes.running(cm):
        client.create(manifest.from_dict({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}))
        poll("endpoints web", lambda: not gone(client, "endpoints", "web", ns))
    manual = api_pb2.Object()
    manual.endpoints.metadata.name, manual.endpoints.metadata.namespace = "hand", ns
    manual.endpoints.subsets.add().addresses.add(ip="192.0.2.1")
    client.create(manual)
    client.delete("services", "web", ns)

    cm2 = controller_manager(cluster.tmp, cluster.server, "--controllers", "endpoints")
    with processes.running(cm2):
        poll("leftover endpoints web to be deleted",
             lambda: gone(client, "endpoints", "web", ns))
        assert not gone(client, "endpoints", "hand", ns)
        assert cm2.alive(), cm2.tail()


def test_survives_apiserver_restart(cluster: Cluster, client: Client) -> None:
    delete_nodes(client)
    cm = controller_manager(cluster.tmp, cluster.server)
    with processes.running(cm):
        client.create(manifest.from_dict({"apiVersion": "v1", "kind": "Node",
                                          "metadata": {"name": "before"}}))
        first = poll("podCIDR of before", lambda: client.get("nodes", "before").node.spec.pod_cidr)

        port = int(cluster.server.rsplit(":", 1)[1])
        cluster.apiserver_proc.kill9()
        api2 = processes.kemu_apiserver(cluster.tmp, cluster.store, port=port,
                                        name="apiserver-2")
        with processes.running(api2):
            with Client(cluster.server, timeout=15) as c2:
                c2.create(manifest.from_dict({"apiVersion": "v1", "kind": "Node",
                                              "metadata": {"name": "after"}}))
                second = poll("podCIDR of after",
                              lambda: c2.get("nodes", "after").node.spec.pod_cidr, 30)
                assert second != first
                delete_nodes(c2)
            assert cm.alive(), cm.tail()
