"""A real store + apiserver (the module's `cluster`) and a real scheduler process.

Each test gets its own namespace and names its nodes uniquely; nodes are cluster-wide, so
the `kube` fixture deletes every node after each test, and FailedScheduling messages
("0/N nodes") count only the test's own nodes.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kemu.api import manifest
from kemu.api.v1 import api_pb2, core_pb2
from kemu.client import Client
from tests.conftest import Cluster
from tests.support import processes

_ids = itertools.count()


def scheduler_proc(tmp: Path, apiserver: str, *extra: str, name: str = "scheduler"
                   ) -> processes.Proc:
    """`python -m kemu.services.scheduler`, ready when its grpc health says SERVING."""
    health = f"127.0.0.1:{processes.free_port()}"
    return processes.Proc(name, [processes.PYTHON, "-m", "kemu.services.scheduler",
                                 "--apiserver", apiserver, "--health-listen", health, *extra],
                          tmp / f"{name}.log", health)


@pytest.fixture(scope="module")
def scheduler(cluster: Cluster) -> Iterator[processes.Proc]:
    proc = scheduler_proc(cluster.tmp, cluster.server)
    with processes.running(proc):
        yield proc


def poll(what: str, fn: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05
         ) -> Any:
    """Call fn until it returns something truthy (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Kube:
    """Helpers over a sync client, scoped to one test's namespace and nodes."""

    client: Client
    namespace: str
    prefix: str
    scheduler: processes.Proc
    last_node: str = ""

    def node_name(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def node(self, name: str, *, cpu: str = "4", memory: str = "8Gi", pods: str = "110",
             labels: Mapping[str, str] | None = None,
             taints: Sequence[Mapping[str, str]] = (), unschedulable: bool = False,
             ready: str = "True") -> str:
        full = self.node_name(name)
        alloc = {"cpu": cpu, "memory": memory, "pods": pods}
        self.client.create(manifest.from_dict({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": full, "labels": {"kubernetes.io/hostname": full,
                                                  **(labels or {})}},
            "spec": {"unschedulable": unschedulable, "taints": list(taints)},
            "status": {"capacity": alloc, "allocatable": alloc,
                       "conditions": [{"type": "Ready", "status": ready,
                                       "reason": "KubeletReady"}]}}))
        self.last_node = full
        return full

    def sync(self) -> None:
        """Wait until the scheduler has seen every node created so far.

        It schedules against its cache, and the node and pod watch streams are not ordered
        with each other, so a pod created right after a node may be tried before the node
        is known (it is retried when the node arrives, but the first message would count
        fewer nodes). A probe pod pinned to the newest node binds only once that node, and
        so every earlier one (one stream is ordered), is in the cache. It requests nothing
        and tolerates everything.
        """
        name = f"probe-{next(_ids)}"
        self.pod(name, spec={"nodeSelector": {"kubernetes.io/hostname": self.last_node},
                             "tolerations": [{"operator": "Exists"}]})
        self.wait_bound(name)

    def pod(self, name: str, *, cpu: str | None = None, memory: str | None = None,
            spec: Mapping[str, Any] | None = None, labels: Mapping[str, str] | None = None,
            owner: api_pb2.Object | None = None) -> None:
        requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
        meta: dict[str, Any] = {"name": name, "namespace": self.namespace,
                                "labels": dict(labels or {})}
        if owner is not None:
            inner = owner.replica_set
            meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                        "name": inner.metadata.name, "uid": inner.metadata.uid,
                                        "controller": True, "blockOwnerDeletion": True}]
        body = {"containers": [{"name": "app", "image": "busybox",
                                "resources": {"requests": requests}}], **(spec or {})}
        self.client.create(manifest.from_dict({"apiVersion": "v1", "kind": "Pod",
                                               "metadata": meta, "spec": body}))

    def get_pod(self, name: str) -> core_pb2.Pod:
        return self.client.get("pods", name, self.namespace).pod

    def pods(self) -> list[core_pb2.Pod]:
        return [o.pod for o in self.client.list("pods", self.namespace).items]

    def wait_bound(self, name: str, timeout: float = 15.0) -> str:
        node: str = poll(f"pod {name} to be bound", lambda: self.get_pod(name).spec.node_name,
                         timeout)
        return node

    def events(self, pod: str, reason: str | None = None) -> list[core_pb2.Event]:
        resp = self.client.list("events", self.namespace,
                                field_selector=f"involvedObject.name={pod}")
        return [o.event for o in resp.items if reason is None or o.event.reason == reason]

    def wait_event(self, pod: str, reason: str, timeout: float = 15.0) -> core_pb2.Event:
        found: list[core_pb2.Event] = poll(f"{reason} event for {pod}",
                                           lambda: self.events(pod, reason), timeout)
        return found[0]

    def delete_nodes(self) -> None:
        for o in self.client.list("nodes").items:
            self.client.delete("nodes", o.node.metadata.name)


@pytest.fixture
def kube(cluster: Cluster, scheduler: processes.Proc) -> Iterator[Kube]:
    client = Client(cluster.server, timeout=15)
    ns = f"sched-{next(_ids)}-{uuid.uuid4().hex[:5]}"
    client.create(manifest.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": ns}}))
    k = Kube(client, ns, ns, scheduler)
    k.delete_nodes()
    try:
        yield k
        assert scheduler.alive(), f"scheduler died:\n{scheduler.tail()}"
    finally:
        k.delete_nodes()
        client.close()
