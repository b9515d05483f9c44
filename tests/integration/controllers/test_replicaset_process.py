"""ReplicaSets and ReplicationControllers through real processes: pods created with owner
references, a deleted pod replaced, scaling down, an orphan adopted, a relabelled pod
released and replaced, status counts from pod status written by hand (no node agent runs
here), and set-based selectors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kemu.api import manifest
from kemu.api.v1 import core_pb2
from kemu.client import Client
from tests.conftest import Cluster
from tests.integration.controllers.conftest import controller_manager, poll
from tests.support import processes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cm(cluster: Cluster) -> Iterator[processes.Proc]:
    proc = controller_manager(cluster.tmp, cluster.server, "--controllers",
                              "replicaset,replicationcontroller")
    with processes.running(proc):
        yield proc
        assert proc.alive(), proc.tail()


def create_rs(client: Client, ns: str, name: str, replicas: int, *,
              selector: dict[str, Any] | None = None, labels: dict[str, str] | None = None,
              min_ready: int = 0) -> None:
    labels = labels or {"app": name}
    client.create(manifest.from_dict({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": replicas, "minReadySeconds": min_ready,
                 "selector": selector or {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "app", "image": "x"}]}}}}))


def pods(client: Client, ns: str, selector: str = "") -> list[core_pb2.Pod]:
    return [o.pod for o in client.list("pods", ns, label_selector=selector).items
            if not o.pod.metadata.HasField("deletion_timestamp")]


def owned_by(client: Client, ns: str, uid: str) -> list[core_pb2.Pod]:
    return [p for p in pods(client, ns)
            if any(r.uid == uid and r.controller for r in p.metadata.owner_references)]


def wait_owned(client: Client, ns: str, uid: str, n: int) -> list[core_pb2.Pod]:
    got: list[core_pb2.Pod] = []

    def check() -> bool:
        got[:] = owned_by(client, ns, uid)
        return len(got) == n
    poll(f"{n} pods owned by {uid}", check)
    return got


def make_ready(client: Client, ns: str, name: str, ready: bool = True) -> None:
    obj = client.get("pods", name, ns)
    obj.pod.status.phase = "Running"
    del obj.pod.status.conditions[:]
    cond = obj.pod.status.conditions.add(type="Ready", status="True" if ready else "False")
    cond.last_transition_time.GetCurrentTime()
    client.update_status(obj)


def test_replicaset_lifecycle(cm: processes.Proc, client: Client, namespace: str) -> None:
    ns = namespace
    create_rs(client, ns, "web", 3)
    rs = client.get("replicasets", "web", ns).replica_set
    created = wait_owned(client, ns, rs.metadata.uid, 3)
    for p in created:
        assert p.metadata.generate_name == "web-"
        assert p.metadata.name.startswith("web-")
        [ref] = p.metadata.owner_references
        assert (ref.kind, ref.api_version, ref.name, ref.controller,
                ref.block_owner_deletion) == ("ReplicaSet", "apps/v1", "web", True, True)
        assert dict(p.metadata.labels) == {"app": "web"}

    # A deleted pod is replaced.
    client.delete("pods", created[0].metadata.name, ns)
    now = wait_owned(client, ns, rs.metadata.uid, 3)
    assert created[0].metadata.name not in {p.metadata.name for p in now}

    # Status follows pod status.
    for p in now[:2]:
        make_ready(client, ns, p.metadata.name)
    poll("status 3/2/2", lambda: _status(client, ns, "web") == (3, 3, 2, 2))

    # Scale down to 1: the not-ready pod goes first, then one of the ready ones.
    client.scale("replicasets", "web", 1, ns)
    [left] = wait_owned(client, ns, rs.metadata.uid, 1)
    assert left.metadata.name in {p.metadata.name for p in now[:2]}
    poll("status 1/1/1/1", lambda: _status(client, ns, "web") == (1, 1, 1, 1))
    stored = client.get("replicasets", "web", ns).replica_set
    assert stored.status.observed_generation == stored.metadata.generation
    assert cm.alive(), cm.tail()


def _status(client: Client, ns: str, name: str, resource: str = "replicasets"
            ) -> tuple[int, int, int, int]:
    obj = client.get(resource, name, ns)
    st = obj.replica_set.status if resource == "replicasets" else \
        obj.replication_controller.status
    return (st.replicas, st.fully_labeled_replicas, st.ready_replicas, st.available_replicas)


def test_adopts_orphan_and_releases_relabelled(cm: processes.Proc, client: Client,
                                               namespace: str) -> None:
    ns = namespace
    client.create(manifest.from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "orphan", "namespace": ns, "labels": {"app": "api"}},
        "spec": {"containers": [{"name": "app", "image": "x"}]}}))
    create_rs(client, ns, "api", 2)
    rs = client.get("replicasets", "api", ns).replica_set
    owned = wait_owned(client, ns, rs.metadata.uid, 2)
    assert "orphan" in {p.metadata.name for p in owned}
    assert len(pods(client, ns, "app=api")) == 2  # adopted, so only one was created

    # Relabelled out of the selector: released and replaced.
    obj = client.get("pods", "orphan", ns)
    obj.pod.metadata.labels["app"] = "debug"
    client.update(obj)
    poll("orphan released", lambda: not client.get("pods", "orphan", ns)
         .pod.metadata.owner_references)
    now = wait_owned(client, ns, rs.metadata.uid, 2)
    assert "orphan" not in {p.metadata.name for p in now}
    assert cm.alive(), cm.tail()


def test_set_based_selector(cm: processes.Proc, client: Client, namespace: str) -> None:
    ns = namespace
    selector = {"matchLabels": {"app": "sel"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                                     {"key": "canary", "operator": "DoesNotExist"}]}
    for name, labels in (("in-a", {"app": "sel", "tier": "b"}),
                         ("canary", {"app": "sel", "tier": "a", "canary": "1"}),
                         ("other-tier", {"app": "sel", "tier": "c"})):
        client.create(manifest.from_dict({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"containers": [{"name": "app", "image": "x"}]}}))
    create_rs(client, ns, "sel", 2, selector=selector, labels={"app": "sel", "tier": "a"})
    rs = client.get("replicasets", "sel", ns).replica_set
    owned = wait_owned(client, ns, rs.metadata.uid, 2)
    names = {p.metadata.name for p in owned}
    assert "in-a" in names and not names & {"canary", "other-tier"}
    # fullyLabeled counts pods with all the template's labels: "in-a" has tier=b.
    poll("status 2/1", lambda: _status(client, ns, "sel")[:2] == (2, 1))


def test_replication_controller(cm: processes.Proc, client: Client, namespace: str) -> None:
    ns = namespace
    client.create(manifest.from_dict({
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "legacy", "namespace": ns},
        "spec": {"replicas": 2, "selector": {"app": "legacy"},
                 "template": {"metadata": {"labels": {"app": "legacy"}},
                              "spec": {"containers": [{"name": "app", "image": "x"}]}}}}))
    rc = client.get("replicationcontrollers", "legacy", ns).replication_controller
    owned = wait_owned(client, ns, rc.metadata.uid, 2)
    ref = owned[0].metadata.owner_references[0]
    assert (ref.kind, ref.api_version) == ("ReplicationController", "v1")
    make_ready(client, ns, owned[0].metadata.name)
    poll("rc status", lambda: _status(client, ns, "legacy", "replicationcontrollers")
         == (2, 2, 1, 1))
    client.scale("replicationcontrollers", "legacy", 0, ns)
    wait_owned(client, ns, rc.metadata.uid, 0)
    assert cm.alive(), cm.tail()


def test_min_ready_seconds(cm: processes.Proc, client: Client, namespace: str) -> None:
    ns = namespace
    create_rs(client, ns, "slow", 1, min_ready=2)
    rs = client.get("replicasets", "slow", ns).replica_set
    [p] = wait_owned(client, ns, rs.metadata.uid, 1)
    make_ready(client, ns, p.metadata.name)
    poll("ready, not yet available", lambda: _status(client, ns, "slow") == (1, 1, 1, 0))
    poll("available after minReadySeconds",
         lambda: _status(client, ns, "slow") == (1, 1, 1, 1), timeout=10)
