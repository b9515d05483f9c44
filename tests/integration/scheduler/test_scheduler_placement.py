"""A real scheduler against a real store + apiserver: where pods land, and why not."""

from __future__ import annotations

import time
from collections import Counter
from concurrent import futures
from typing import Any

import pytest

from kemu.api import manifest, quantity
from kemu.api.v1 import core_pb2
from tests.integration.scheduler.conftest import Kube, poll

pytestmark = pytest.mark.integration

AFFINITY = "node(s) didn't match Pod's node affinity/selector"


def test_node_selector_and_required_affinity(kube: Kube) -> None:
    a = kube.node("a", labels={"zone": "a", "disk": "ssd"})
    b = kube.node("b", labels={"zone": "b"})
    kube.pod("by-selector", spec={"nodeSelector": {"zone": "b"}})
    kube.pod("by-affinity", spec={"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "disk", "operator": "Exists"},
                                  {"key": "zone", "operator": "NotIn", "values": ["b"]}]}]}}}})
    kube.pod("by-name-field", spec={"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [b]}]}]}}}})
    assert kube.wait_bound("by-selector") == b
    assert kube.wait_bound("by-affinity") == a
    assert kube.wait_bound("by-name-field") == b


def test_resources_pick_the_node_with_room(kube: Kube) -> None:
    kube.node("small", cpu="1", memory="1Gi")
    big = kube.node("big", cpu="8", memory="16Gi")
    kube.pod("needs-cpu", cpu="2")
    kube.pod("needs-memory", cpu="100m", memory="2Gi")
    kube.pod("init-heavy", cpu="100m", spec={"initContainers": [
        {"name": "setup", "image": "busybox", "resources": {"requests": {"cpu": "1500m"}}}]})
    for name in ("needs-cpu", "needs-memory", "init-heavy"):
        assert kube.wait_bound(name) == big


def test_taints_and_tolerations(kube: Kube) -> None:
    gpu = kube.node("gpu", labels={"gpu": "yes"},
                    taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    plain = kube.node("plain")
    for i in range(3):
        kube.pod(f"plain-{i}")
    kube.pod("gpu-job", spec={"nodeSelector": {"gpu": "yes"}, "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]})
    for i in range(3):
        assert kube.wait_bound(f"plain-{i}") == plain
    assert kube.wait_bound("gpu-job") == gpu


def test_cordoned_and_not_ready_nodes_get_nothing(kube: Kube) -> None:
    kube.node("cordoned", unschedulable=True)
    kube.node("not-ready", ready="False")
    ok = kube.node("ok")
    for i in range(4):
        kube.pod(f"p{i}")
    assert {kube.wait_bound(f"p{i}") for i in range(4)} == {ok}


def test_host_ports_conflict(kube: Kube) -> None:
    kube.node("a")
    kube.node("b")
    kube.sync()
    port_spec = {"containers": [{"name": "web", "image": "busybox",
                                 "ports": [{"containerPort": 80, "hostPort": 8080}]}]}
    kube.pod("web-1", spec=port_spec)
    kube.pod("web-2", spec=port_spec)
    kube.pod("web-3", spec=port_spec)
    nodes = {kube.wait_bound("web-1"), kube.wait_bound("web-2")}
    assert len(nodes) == 2
    event = kube.wait_event("web-3", "FailedScheduling")
    assert event.message == ("0/2 nodes are available: 2 node(s) didn't have free ports for "
                             "the requested pod ports.")


def test_too_big_pod_stays_pending_until_a_big_enough_node_arrives(kube: Kube) -> None:
    kube.node("a1", cpu="1", labels={"zone": "a"})
    kube.node("a2", cpu="1", labels={"zone": "a"})
    kube.node("b1", cpu="8", labels={"zone": "b"})
    kube.sync()
    kube.pod("big", cpu="2", spec={"nodeSelector": {"zone": "a"}})
    message = f"0/3 nodes are available: 1 {AFFINITY}, 2 Insufficient cpu."

    event = kube.wait_event("big", "FailedScheduling")
    assert (event.type, event.message, event.source.component, event.count) == \
        ("Warning", message, "default-scheduler", 1)
    assert (event.involved_object.kind, event.involved_object.name) == ("Pod", "big")

    def condition() -> object:
        pod = kube.get_pod("big")
        conds = [c for c in pod.status.conditions if c.type == "PodScheduled"]
        return conds[0] if conds and conds[0].message else None
    cond = poll("PodScheduled condition", condition)
    assert (cond.status, cond.reason, cond.message) == ("False", "Unschedulable", message)
    pod = kube.get_pod("big")
    assert pod.status.phase == "Pending" and not pod.spec.node_name

    # A change to a node retries the pod; the same failure updates the same Event.
    a1 = kube.client.get("nodes", kube.node_name("a1"))
    a1.node.metadata.labels["touched"] = "yes"
    kube.client.update(a1)
    retried = poll("the event count to grow", lambda: [
        e for e in kube.events("big", "FailedScheduling") if e.count >= 2])
    assert len(kube.events("big", "FailedScheduling")) == 1
    assert retried[0].last_timestamp.seconds >= retried[0].first_timestamp.seconds

    added = time.monotonic()
    a3 = kube.node("a3", cpu="4", labels={"zone": "a"})
    assert kube.wait_bound("big", timeout=10) == a3
    assert time.monotonic() - added < 10
    scheduled = kube.wait_event("big", "Scheduled")
    assert (scheduled.type, scheduled.message) == (
        "Normal", f"Successfully assigned {kube.namespace}/big to {a3}")
    cond = next(c for c in kube.get_pod("big").status.conditions if c.type == "PodScheduled")
    assert cond.status == "True"


def test_no_nodes(kube: Kube) -> None:
    kube.pod("lonely")
    # Normally the first attempt; if the scheduler had not yet seen the previous test's
    # nodes go, the periodic retry (30 s) corrects it.
    poll("the no-nodes message", lambda: [
        e for e in kube.events("lonely", "FailedScheduling")
        if e.message == "no nodes available to schedule pods"], timeout=45)


def test_replicaset_pods_spread_two_per_node(kube: Kube) -> None:
    for name in ("x", "y", "z"):
        kube.node(name)
    kube.sync()
    rs = kube.client.create(manifest.from_dict({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": kube.namespace},
        "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "busybox"}]}}}}))
    for i in range(6):
        kube.pod(f"web-{i}", labels={"app": "web"}, cpu="100m", owner=rs)
    placed = Counter(kube.wait_bound(f"web-{i}") for i in range(6))
    assert sorted(placed.values()) == [2, 2, 2]


def test_burst_of_50_pods_on_5_nodes_never_overcommits(kube: Kube) -> None:
    nodes = [kube.node(f"n{i}", cpu="2") for i in range(5)]
    kube.sync()
    started = time.monotonic()
    with futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: kube.pod(f"burst-{i:02}", cpu="300m"), range(50)))
    created = time.monotonic()

    def burst() -> list[core_pb2.Pod]:
        return [p for p in kube.pods() if p.metadata.name.startswith("burst-")]

    def bound() -> list[str]:
        return [p.spec.node_name for p in burst() if p.spec.node_name]
    poll("30 pods bound", lambda: len(bound()) >= 30, timeout=30, interval=0.02)
    done = time.monotonic()
    def burst_failures() -> list[Any]:
        """FailedScheduling events of the burst's pods (not of the sync probe, which may
        have been tried before the scheduler knew every node)."""
        return [e.event for e in kube.client.list(
            "events", kube.namespace, field_selector="reason=FailedScheduling").items
            if e.event.involved_object.name.startswith("burst-")]
    poll("20 FailedScheduling events", lambda: len(burst_failures()) >= 20, timeout=30)

    pods = burst()
    per_node: Counter[str] = Counter()
    for p in pods:
        if p.spec.node_name:
            per_node[p.spec.node_name] += sum(
                quantity.millicores(c.resources.requests["cpu"]) for c in p.spec.containers)
    assert set(per_node) <= set(nodes)
    assert all(used <= 2000 for used in per_node.values()), per_node
    assert sum(1 for p in pods if p.spec.node_name) == 30
    assert sorted(per_node.values()) == [1800] * 5
    pending = [p for p in pods if not p.spec.node_name]
    assert len(pending) == 20
    messages = {e.message for e in burst_failures()}
    assert messages == {"0/5 nodes are available: 5 Insufficient cpu."}
    print(f"\nburst: 50 pods created in {created - started:.2f}s; 30 bound "
          f"{done - started:.2f}s after the first create "
          f"({30 / (done - started):.0f} pods/s end to end)")
