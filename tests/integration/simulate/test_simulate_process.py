"""Simulated nodes through real processes: store, apiserver, scheduler, controller manager
and `kemu simulate nodes --count 50`. A Deployment of 200 replicas gets every pod Running
and Ready on the simulated nodes, spread over them, with IPs from their podCIDRs; the Nodes
stay Ready and their Leases are renewed; scaling down removes pods through graceful
deletion; SIGTERM with --cleanup removes the Nodes. Also one `kemu agent --runtime fake`.
"""

from __future__ import annotations

import ipaddress
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from kemu.api import manifest
from kemu.client import Client
from tests.conftest import Cluster
from tests.integration.controllers.conftest import poll
from tests.support import processes

pytestmark = pytest.mark.integration

NODES = 50
REPLICAS = 200
PREFIX = "simt"


def kemu(tmp: Any, name: str, *args: str) -> processes.Proc:
    return processes.Proc(name, [processes.PYTHON, "-m", "kemu.cli.kemu_main", *args],
                          tmp / f"{name}.log", "")


def component(tmp: Any, module: str, apiserver: str, name: str) -> processes.Proc:
    health = f"127.0.0.1:{processes.free_port()}"
    return processes.Proc(name, [processes.PYTHON, "-m", module, "--apiserver", apiserver,
                                 "--health-listen", health], tmp / f"{name}.log", health)


def ready(node: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


@pytest.fixture(scope="module")
def client(cluster: Cluster) -> Iterator[Client]:
    c = Client(cluster.server, timeout=30)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def control_plane(cluster: Cluster) -> Iterator[None]:
    sched = component(cluster.tmp, "kemu.services.scheduler", cluster.server, "scheduler")
    cm = component(cluster.tmp, "kemu.services.controllers", cluster.server, "cm")
    with processes.running(sched, cm):
        yield
        assert sched.alive(), sched.tail()
        assert cm.alive(), cm.tail()


def test_deployment_runs_on_simulated_nodes(cluster: Cluster, client: Client,
                                            control_plane: None) -> None:
    started = time.monotonic()
    sim = kemu(cluster.tmp, "simulator", "simulate", "nodes", "--count", str(NODES),
               "--apiserver", cluster.server, "--name-prefix", PREFIX,
               "--lease-renew-interval", "2", "--heartbeat-qps", "100", "--cleanup").start()
    try:
        def nodes() -> list[Any]:
            return [o.node for o in client.list("nodes").items
                    if o.node.metadata.name.startswith(PREFIX + "-")]

        def all_ready() -> list[Any]:
            assert sim.alive(), sim.tail()
            found = nodes()
            return found if len(found) == NODES and all(map(ready, found)) else []

        registered = poll(f"{NODES} simulated nodes Ready", all_ready, 30)
        node = registered[0]
        assert node.status.node_info.container_runtime_version == "fake://kemu-simulated"
        assert node.metadata.labels["kemu.io/simulated"] == "true"
        assert node.metadata.labels["kubernetes.io/hostname"] == node.metadata.name
        assert node.status.capacity["pods"] == "110"
        cidrs = {n.metadata.name: ipaddress.ip_network(n.spec.pod_cidr) for n in registered}
        assert len(set(cidrs.values())) == NODES

        ns = "simulated"
        client.create(manifest.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": ns}}))
        client.create(manifest.from_dict({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                         "containers": [{"name": "app", "image": "kemu/bootcamp:v1",
                                         "resources": {"requests": {"cpu": "100m"}}}]}}}}))

        def running() -> list[Any]:
            pods = [o.pod for o in client.list("pods", ns).items]
            ok = [p for p in pods if p.status.phase == "Running" and p.status.pod_ip
                  and any(c.type == "Ready" and c.status == "True"
                          for c in p.status.conditions)]
            return ok if len(ok) == REPLICAS == len(pods) else []

        pods = poll(f"{REPLICAS} pods Running and Ready", running, 45)
        per_node = Counter(p.spec.node_name for p in pods)
        assert set(per_node) <= set(cidrs), per_node
        assert len(per_node) >= NODES * 0.9, per_node  # spread, not piled on a few
        assert max(per_node.values()) <= 3 * REPLICAS // NODES, per_node
        assert len({p.status.pod_ip for p in pods}) == REPLICAS
        for p in pods:
            assert ipaddress.ip_address(p.status.pod_ip) in cidrs[p.spec.node_name]
            assert p.status.container_statuses[0].state.HasField("running")
            assert p.status.container_statuses[0].container_id.startswith("fake://")

        # Leases renewed after the burst, Nodes still Ready.
        mark = datetime.now(UTC)

        def renewed() -> bool:
            leases = [o.lease for o in client.list("leases", "kube-node-lease").items
                      if o.lease.metadata.name.startswith(PREFIX + "-")]
            return len(leases) == NODES and all(
                lease.spec.renew_time.ToDatetime(tzinfo=UTC) >= mark.replace(microsecond=0)
                for lease in leases)
        poll("every Lease renewed", renewed, 15)
        assert all(map(ready, nodes()))

        # Graceful deletion: scaling down removes the pods (not left Terminating).
        obj = client.get("deployments", "web", ns)
        obj.deployment.spec.replicas = REPLICAS - 50
        client.update(obj)
        poll("scale down to 150 pods", lambda: len(client.list("pods", ns).items)
             == REPLICAS - 50, 30)
    finally:
        assert sim.popen is not None
        sim.popen.send_signal(signal.SIGTERM)
        code = sim.popen.wait(timeout=30)
    assert code == 0, sim.tail()
    assert not [o for o in client.list("nodes").items
                if o.node.metadata.name.startswith(PREFIX + "-")]
    assert time.monotonic() - started < 90


def test_agent_with_fake_runtime(cluster: Cluster, client: Client, tmp_path: Any) -> None:
    port = processes.free_port()
    agent = kemu(cluster.tmp, "fake-agent", "agent", "--runtime", "fake", "--apiserver",
                 cluster.server, "--node-name", "fake-1", "--node-ip", "127.0.0.1",
                 "--port", str(port), "--address", "127.0.0.1", "--data-dir",
                 str(tmp_path / "agent"), "--insecure").start()
    try:
        def fake_node() -> Any:
            assert agent.alive(), agent.tail()
            return next((o.node for o in client.list("nodes").items
                         if o.node.metadata.name == "fake-1" and ready(o.node)), None)

        node = poll("node fake-1 Ready", fake_node, 30)
        assert node.status.node_info.container_runtime_version == "fake://kemu-simulated"
        client.create(manifest.from_dict({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "fake-pod", "namespace": "default"},
            "spec": {"nodeName": "fake-1",
                     "containers": [{"name": "app", "image": "kemu/bootcamp:v1"}]}}))
        pod = poll("fake-pod Running", lambda: (p := client.get(
            "pods", "fake-pod", "default").pod).status.phase == "Running" and p, 30)
        assert pod.status.container_statuses[0].ready
        client.delete("pods", "fake-pod", "default")
        poll("fake-pod gone", lambda: not [o for o in client.list("pods", "default").items
                                           if o.pod.metadata.name == "fake-pod"], 30)
    finally:
        agent.stop()
        client.delete("nodes", "fake-1")
