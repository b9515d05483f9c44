"""`--log-format json -v N` on real processes: the store, the apiserver (-v 3: one event
per request), the scheduler and the controller manager (-v 2: one event per bind and per
object synced), a node agent (-v 2: per pod synced) and the DNS (-v 4: per query) write
JSON lines carrying the component, the object and the duration.

A Node (status only) and a ReplicaSet of one replica, which the controller manager turns
into a pod that the scheduler binds; then an agent with the fake runtime (no Docker) that
runs a pod, and a DNS query.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kemu.api import manifest
from kemu.client import Client
from tests.support import processes

pytestmark = pytest.mark.integration

JSON_FLAGS = ("--log-format", "json")


def records(log: Path) -> list[dict[str, Any]]:
    """The JSON lines of a process's log (a warning printed before logging starts, such as
    --insecure's, is the only other kind of line)."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def wait_record(proc: processes.Proc, what: str, match: Callable[[dict[str, Any]], bool],
                timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in records(proc.log) if match(r)]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} in {proc.name}'s log:\n{proc.tail(30)}")
        time.sleep(0.1)


def _proc(tmp: Path, name: str, args: list[str], address: str) -> processes.Proc:
    return processes.Proc(name, [processes.PYTHON, "-m", *args], tmp / f"{name}.log", address)


def test_json_events_of_a_bind_and_a_sync(tmp_path: Path) -> None:
    store = processes.kemu_store(tmp_path, extra=JSON_FLAGS)
    api = processes.kemu_apiserver(tmp_path, store.address, extra=(*JSON_FLAGS, "-v", "3"))
    health = [f"127.0.0.1:{processes.free_port()}" for _ in range(2)]
    scheduler = _proc(tmp_path, "scheduler", [
        "kemu.services.scheduler", "--apiserver", api.address, "--health-listen", health[0],
        *JSON_FLAGS, "--v", "2"], health[0])
    cm = _proc(tmp_path, "controller-manager", [
        "kemu.services.controllers", "--apiserver", api.address, "--health-listen",
        health[1], "--controllers", "replicaset", *JSON_FLAGS, "-v", "2"], health[1])
    ns = f"logs-{uuid.uuid4().hex[:6]}"
    node = f"logs-node-{uuid.uuid4().hex[:4]}"
    with processes.running(store, api, scheduler, cm), Client(api.address, timeout=15) as c:
        alloc = {"cpu": "4", "memory": "8Gi", "pods": "110"}
        for doc in (
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                {"apiVersion": "v1", "kind": "Node",
                 "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node}},
                 "status": {"capacity": alloc, "allocatable": alloc,
                            "conditions": [{"type": "Ready", "status": "True"}]}},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                 "metadata": {"name": "web", "namespace": ns},
                 "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                          "template": {"metadata": {"labels": {"app": "web"}},
                                       "spec": {"containers": [{"name": "c",
                                                                "image": "kemu/pause"}]}}}}):
            c.create(manifest.from_dict(doc))

        bound = wait_record(scheduler, "bind event", lambda r: r.get("msg") == "bound pod")
        synced = wait_record(cm, "ReplicaSet sync event", lambda r: (
            r.get("msg") == "synced" and r.get("object") == f"{ns}/web"))
        request = wait_record(api, "create request event", lambda r: (
            r.get("msg") == "request" and r.get("resource") == "replicasets"
            and r.get("verb") == "create"))
        pods = c.list("pods", namespace=ns).items
        for proc in (store, api, scheduler, cm):
            assert proc.alive(), f"{proc.name} died:\n{proc.tail()}"

    assert len(pods) == 1
    pod = pods[0].pod
    assert bound["component"] == "scheduler" and bound["level"] == "info" and bound["v"] == 2
    assert bound["pod"] == f"{ns}/{pod.metadata.name}" and bound["node"] == node
    assert isinstance(bound["duration_ms"], float | int) and bound["duration_ms"] >= 0

    assert synced["component"] == "controller-manager" and synced["v"] == 2
    assert (synced["controller"], synced["kind"], synced["result"]) == (
        "replicaset", "ReplicaSet", "ok")
    assert synced["logger"] == "kemu.services.controllers.replicaset"
    assert synced["duration_ms"] >= 0

    assert request["component"] == "apiserver" and request["v"] == 3
    assert (request["namespace"], request["name"], request["code"]) == (ns, "web", "OK")
    assert request["duration_ms"] >= 0

    # Every record has the common members, with an RFC 3339 millisecond timestamp.
    for proc, component in ((store, "store"), (api, "apiserver"), (scheduler, "scheduler"),
                            (cm, "controller-manager")):
        recs = records(proc.log)
        assert recs, proc.name
        for r in recs:
            assert {"ts", "level", "component", "logger", "msg"} <= r.keys(), r
            assert r["component"] == component and r["ts"].endswith("Z")
            assert len(r["ts"]) == len("2026-01-01T00:00:00.000Z")


def test_default_verbosity_logs_no_sync_or_request_events(tmp_path: Path) -> None:
    """Text at -v 0: the same work adds no per-object lines."""
    store = processes.kemu_store(tmp_path)
    api = processes.kemu_apiserver(tmp_path, store.address)
    health = f"127.0.0.1:{processes.free_port()}"
    cm = _proc(tmp_path, "controller-manager", [
        "kemu.services.controllers", "--apiserver", api.address, "--health-listen", health,
        "--controllers", "replicaset"], health)
    ns = f"quiet-{uuid.uuid4().hex[:6]}"
    with processes.running(store, api, cm), Client(api.address, timeout=15) as c:
        c.create(manifest.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": ns}}))
        c.create(manifest.from_dict({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}}}))
        deadline = time.monotonic() + 20
        while not c.list("pods", namespace=ns).items:
            assert time.monotonic() < deadline, cm.tail()
            time.sleep(0.1)
    for proc in (api, cm):
        text = proc.log.read_text()
        assert " synced controller=" not in text and " request verb=" not in text, text
        assert not any(line.startswith("{") for line in text.splitlines())


def test_json_events_of_an_agent_pod_sync_and_a_dns_query(tmp_path: Path) -> None:
    """A node agent with the fake runtime (no Docker) at -v 2 and the DNS at -v 4."""
    from dnslib import DNSRecord  # type: ignore[import-untyped]

    store = processes.kemu_store(tmp_path)
    api = processes.kemu_apiserver(tmp_path, store.address)
    node = f"logs-fake-{uuid.uuid4().hex[:4]}"
    agent_address = f"127.0.0.1:{processes.free_port()}"
    agent = _proc(tmp_path, "agent", [
        "kemu.nodeagent", "--runtime", "fake", "--insecure", "--apiserver", api.address,
        "--node-name", node, "--node-ip", "127.0.0.1", "--address", "127.0.0.1",
        "--port", agent_address.rpartition(":")[2], "--data-dir", str(tmp_path / "agent"),
        *JSON_FLAGS, "-v", "2"], agent_address)
    dns_address = f"127.0.0.1:{processes.free_port()}"
    dns = _proc(tmp_path, "dns", ["kemu.dns", "--apiserver", api.address, "--listen",
                                  dns_address, *JSON_FLAGS, "--v", "4"], dns_address)
    ns = f"logs-{uuid.uuid4().hex[:6]}"
    with (processes.running(store, api, agent), processes.running(dns, check="tcp"),
          Client(api.address, timeout=15) as c):
        c.create(manifest.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": ns}}))
        c.create(manifest.from_dict({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]}}))
        synced = wait_record(agent, "pod sync event", lambda r: (
            r.get("msg") == "synced pod" and r.get("pod") == f"{ns}/p"
            and r.get("phase") == "Running"))
        host, port = dns_address.rsplit(":", 1)
        DNSRecord.parse(DNSRecord.question("kubernetes.default.svc.cluster.local", "A")
                        .send(host, int(port), timeout=5))
        query = wait_record(dns, "query event", lambda r: r.get("msg") == "query")
        for proc in (agent, dns):
            assert proc.alive(), f"{proc.name} died:\n{proc.tail()}"

    assert synced["component"] == "agent" and synced["v"] == 2
    assert synced["duration_ms"] >= 0
    assert query["component"] == "dns" and query["level"] == "debug" and query["v"] == 4
    assert (query["name"], query["type"], query["proto"]) == (
        "kubernetes.default.svc.cluster.local.", "A", "udp")
    assert query["rcode"] in ("NOERROR", "NXDOMAIN") and query["duration_ms"] >= 0
