"""`--metrics-listen` on real processes: store, apiserver, scheduler, controller manager
and DNS, each scraped over HTTP with urllib and parsed with prometheus_client's parser.

One control plane for the module: a Node (status only: no agent runs pods here), a
Deployment the controllers turn into a pod the scheduler binds, a pod that fits nowhere,
a Service the DNS answers for, and a name it does not know.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dnslib import RCODE, DNSRecord  # type: ignore[import-untyped]

from kemu.api import manifest
from kemu.client import Client
from kemu.client.errors import AlreadyExists
from tests.integration.metrics.scrape import Samples, scrape, value, wait_metric
from tests.support import processes

pytestmark = pytest.mark.integration

# Every controller the manager runs by default (lbipam needs --load-balancer-pool).
CONTROLLERS = ("endpoints", "nodeipam", "replicaset", "replicationcontroller", "deployment",
               "daemonset", "statefulset", "job", "cronjob", "garbagecollector",
               "namespace", "nodelifecycle", "horizontalpodautoscaling")


@dataclass
class Plane:
    api: Client
    namespace: str
    metrics: dict[str, str]  # component -> HOST:PORT of its /metrics
    dns: str


def _proc(tmp: Path, name: str, args: list[str], address: str) -> processes.Proc:
    return processes.Proc(name, [processes.PYTHON, "-m", *args], tmp / f"{name}.log", address)


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    tmp = tmp_path_factory.mktemp("metrics")
    metrics = {c: f"127.0.0.1:{processes.free_port()}"
               for c in ("store", "apiserver", "scheduler", "controller-manager", "dns")}
    flag = "--metrics-listen"
    store = processes.kemu_store(tmp, extra=(flag, metrics["store"]))
    api = processes.kemu_apiserver(tmp, store.address, extra=(flag, metrics["apiserver"]))
    health = [f"127.0.0.1:{processes.free_port()}" for _ in range(2)]
    scheduler = _proc(tmp, "scheduler", ["kemu.services.scheduler", "--apiserver", api.address,
                                         "--health-listen", health[0],
                                         flag, metrics["scheduler"]], health[0])
    cm = _proc(tmp, "controller-manager", ["kemu.services.controllers", "--apiserver",
                                           api.address, "--health-listen", health[1],
                                           flag, metrics["controller-manager"]], health[1])
    dns_address = f"127.0.0.1:{processes.free_port()}"
    dns = _proc(tmp, "dns", ["kemu.dns", "--apiserver", api.address, "--listen", dns_address,
                             flag, metrics["dns"]], dns_address)
    with (processes.running(store, api, scheduler, cm), processes.running(dns, check="tcp"),
          Client(api.address, timeout=15) as client):
        ns = f"metrics-{uuid.uuid4().hex[:6]}"
        client.create(manifest.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": ns}}))
        yield Plane(client, ns, metrics, dns_address)
        for proc in (store, api, scheduler, cm, dns):
            assert proc.alive(), f"{proc.name} died:\n{proc.tail()}"


def _create(api: Client, doc: dict[str, Any]) -> None:
    api.create(manifest.from_dict(doc))


def _node(api: Client, name: str) -> None:
    alloc = {"cpu": "4", "memory": "8Gi", "pods": "110"}
    _create(api, {"apiVersion": "v1", "kind": "Node",
                  "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                  "status": {"capacity": alloc, "allocatable": alloc,
                             "conditions": [{"type": "Ready", "status": "True",
                                             "reason": "KubeletReady"}]}})


def test_store_counts_etcd_calls(plane: Plane) -> None:
    samples = wait_metric(plane.metrics["store"], "store Txn and Range calls", lambda s: bool(
        value(s, "grpc_server_handled_total", grpc_service="etcdserverpb.KV",
              grpc_method="Range", grpc_code="OK")
        and value(s, "grpc_server_handled_total", grpc_service="etcdserverpb.KV",
                  grpc_method="Txn", grpc_code="OK")))
    assert (value(samples, "grpc_server_handling_seconds_count",
                  grpc_service="etcdserverpb.Watch", grpc_method="Watch") is not None)
    assert (value(samples, "etcd_debugging_mvcc_current_revision") or 0) > 1
    assert value(samples, "etcd_debugging_mvcc_compact_revision") is not None
    assert (value(samples, "etcd_mvcc_db_total_size_in_bytes") or 0) > 4096
    assert value(samples, "etcd_server_has_leader") == 1


def test_apiserver_counts_creates_by_code_and_watches(plane: Plane) -> None:
    address = plane.metrics["apiserver"]

    def creates(samples: Samples, code: str) -> float:
        return value(samples, "grpc_server_handled_total", grpc_service="kemu.v1.Resources",
                     grpc_method="Create", grpc_code=code) or 0
    before = scrape(address)
    doc = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "counted", "namespace": plane.namespace}}
    _create(plane.api, doc)
    with pytest.raises(AlreadyExists):
        _create(plane.api, doc)
    after = wait_metric(address, "the Create calls counted", lambda s: (
        creates(s, "OK") > creates(before, "OK")
        and creates(s, "ALREADY_EXISTS") > creates(before, "ALREADY_EXISTS")))
    assert (value(after, "grpc_server_handling_seconds_count",
                  grpc_service="kemu.v1.Resources", grpc_method="Create") or 0) >= 2
    # the same calls as kube-apiserver reports them: verb, resource and HTTP code
    assert (value(after, "apiserver_request_total", verb="POST", group="",
                  resource="configmaps", code="201") or 0) >= 1
    assert (value(after, "apiserver_request_total", verb="POST", resource="configmaps",
                  code="409") or 0) >= 1
    assert (value(after, "apiserver_request_total", verb="LIST", resource="pods",
                  code="200") or 0) >= 1  # the informers' first lists
    assert (value(after, "apiserver_request_duration_seconds_count", verb="POST",
                  resource="configmaps") or 0) >= 2
    # the scheduler, the controller manager and the DNS watch pods, services...
    assert (value(after, "apiserver_registered_watchers", group="", kind="Pod") or 0) >= 2
    assert (value(after, "apiserver_registered_watchers", group="apps", kind="Deployment")
            or 0) >= 1
    assert (value(after, "apiserver_storage_objects", resource="configmaps") or 0) >= 1
    assert (value(after, "apiserver_storage_objects", resource="namespaces") or 0) >= 5


def test_scheduler_counts_attempts_and_pending_pods(plane: Plane) -> None:
    node = f"metrics-node-{uuid.uuid4().hex[:4]}"
    _node(plane.api, node)
    _create(plane.api, {"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": "fits-nowhere", "namespace": plane.namespace},
                        "spec": {"nodeSelector": {"no-such": "label"},
                                 "containers": [{"name": "app", "image": "busybox"}]}})
    _create(plane.api, {"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": "fits", "namespace": plane.namespace},
                        "spec": {"containers": [{"name": "app", "image": "busybox"}]}})
    samples = wait_metric(plane.metrics["scheduler"], "scheduled and unschedulable attempts",
                          lambda s: bool(
        value(s, "scheduler_schedule_attempts_total", result="scheduled")
        and value(s, "scheduler_schedule_attempts_total", result="unschedulable")
        and value(s, "scheduler_pending_pods", queue="unschedulable")))
    assert plane.api.get("pods", "fits", plane.namespace).pod.spec.node_name == node
    assert (value(samples, "scheduler_scheduling_attempt_duration_seconds_count",
                  result="scheduled") or 0) >= 1
    assert value(samples, "scheduler_pending_pods", queue="active") is not None
    assert value(samples, "scheduler_pending_pods", queue="backoff") is not None
    assert value(samples, "leader_election_master_status", name="kube-scheduler") == 1


def test_controller_manager_has_a_workqueue_per_controller(plane: Plane) -> None:
    _create(plane.api, {"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "web", "namespace": plane.namespace},
                        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                                 "template": {"metadata": {"labels": {"app": "web"}},
                                              "spec": {"containers": [
                                                  {"name": "web", "image": "busybox"}]}}}})
    samples = wait_metric(plane.metrics["controller-manager"], "deployment and replicaset work",
                          lambda s: bool(
        value(s, "workqueue_work_duration_seconds_count", name="deployment")
        and value(s, "workqueue_work_duration_seconds_count", name="replicaset")))
    for name in CONTROLLERS:
        assert value(samples, "workqueue_depth", name=name) is not None, name
        assert value(samples, "workqueue_retries_total", name=name) is not None, name
        assert value(samples, "workqueue_longest_running_processor_seconds",
                     name=name) is not None, name
    assert (value(samples, "workqueue_adds_total", name="deployment") or 0) >= 1
    assert (value(samples, "workqueue_queue_duration_seconds_count", name="replicaset")
            or 0) >= 1
    assert value(samples, "grpc_server_handled_total", grpc_service="grpc.health.v1.Health",
                 grpc_method="Check", grpc_code="OK")  # the readiness probe's calls
    assert value(samples, "leader_election_master_status",
                 name="kube-controller-manager") == 1


def _ask(server: str, name: str, qtype: str = "A") -> int:
    host, port = server.rsplit(":", 1)
    reply = DNSRecord.parse(DNSRecord.question(name, qtype).send(host, int(port), timeout=2))
    return int(reply.header.rcode)


def test_dns_counts_responses_by_rcode(plane: Plane) -> None:
    _create(plane.api, {"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": "named", "namespace": plane.namespace},
                        "spec": {"selector": {"app": "named"}, "ports": [{"port": 80}]}})
    name = f"named.{plane.namespace}.svc.cluster.local"
    deadline = time.monotonic() + 15
    while _ask(plane.dns, name) != RCODE.NOERROR:  # once the DNS's informer has the Service
        assert time.monotonic() < deadline, f"{name} never resolved"
        time.sleep(0.05)
    assert _ask(plane.dns, f"nothere.{plane.namespace}.svc.cluster.local") == RCODE.NXDOMAIN
    assert _ask(plane.dns, name, "SRV") == RCODE.NOERROR
    samples = wait_metric(plane.metrics["dns"], "NOERROR and NXDOMAIN responses", lambda s: bool(
        value(s, "coredns_dns_responses_total", rcode="NOERROR")
        and value(s, "coredns_dns_responses_total", rcode="NXDOMAIN")))
    assert (value(samples, "coredns_dns_requests_total", proto="udp", type="A") or 0) >= 2
    assert (value(samples, "coredns_dns_requests_total", proto="udp", type="SRV") or 0) >= 1
    assert (value(samples, "coredns_dns_request_duration_seconds_count", type="A") or 0) >= 2
