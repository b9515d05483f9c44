"""The dashboard's pure parts: rows as the page gets them, the change hub, the HTTP request
head, the Host check and how the cluster is resolved from the flags and ~/.kemu/config.
The page itself is driven in a real browser by tests/integration/dashboard."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from kemu.api import manifest
from kemu.cli.dashboard import cli, server
from kemu.cli.dashboard.rows import row_of

NOW = 1_700_000_000.0


def obj(doc: dict[str, Any]) -> Any:
    return manifest.from_dict(doc)


POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"},
                    "annotations": {"note": "<b>x</b>"},
                    "creationTimestamp": "2023-11-14T22:13:20Z",
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                         "name": "web-abc", "uid": "u", "controller": True}]},
       "spec": {"nodeName": "n1", "containers": [{"name": "a", "image": "i"},
                                                 {"name": "b", "image": "i"}]},
       "status": {"phase": "Running", "podIP": "10.244.0.5", "containerStatuses": [
           {"name": "a", "ready": True, "restartCount": 3, "state": {"running": {}}},
           {"name": "b", "ready": False, "restartCount": 1,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}


@pytest.mark.parametrize(("doc", "expected"), [
    pytest.param(POD, {"key": "default/web-1", "status": "CrashLoopBackOff", "ready": "1/2",
                       "restarts": "4", "node": "n1", "ip": "10.244.0.5", "phase": "Running",
                       "containers": ["a", "b"], "owner": "ReplicaSet/web-abc",
                       "annotations": {"note": "<b>x</b>"}, "created": NOW,
                       "containerStatuses": [
                           {"name": "a", "image": "", "ready": True, "restarts": 3,
                            "state": "Running"},
                           {"name": "b", "image": "", "ready": False, "restarts": 1,
                            "state": "Waiting: CrashLoopBackOff"}]}, id="pod"),
    pytest.param({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
                  "spec": {"containers": [{"name": "c", "image": "i"}]}},
                 {"status": "Pending", "phase": "Pending", "node": "", "created": None},
                 id="pod-pending"),
    pytest.param({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": {
                      "node-role.kubernetes.io/control-plane": ""}},
                  "spec": {"podCIDR": "10.244.1.0/24", "unschedulable": True},
                  "status": {"conditions": [{"type": "Ready", "status": "True"}],
                             "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]}},
                 {"key": "n1", "status": "Ready,SchedulingDisabled", "ready": True,
                  "roles": "control-plane", "internalIP": "10.0.0.2",
                  "podCIDR": "10.244.1.0/24"}, id="node"),
    pytest.param({"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "d", "namespace": "ns"},
                  "spec": {"replicas": 3, "selector": {"matchLabels": {"a": "b"}},
                           "template": {"metadata": {"labels": {"a": "b"}}, "spec": {
                               "containers": [{"name": "c", "image": "i"}]}}},
                  "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}},
                 {"kind": "Deployment", "ready": "2/3", "complete": False,
                  "detail": "up-to-date 3, available 2"}, id="deployment"),
    pytest.param({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j",
                                                                        "namespace": "ns"},
                  "spec": {"completions": 2, "template": {"spec": {
                      "containers": [{"name": "c", "image": "i"}]}}},
                  "status": {"succeeded": 2, "conditions": [{"type": "Complete",
                                                             "status": "True"}]}},
                 {"kind": "Job", "ready": "2/2", "complete": True, "detail": "Complete"},
                 id="job-complete"),
    pytest.param({"apiVersion": "v1", "kind": "Endpoints",
                  "metadata": {"name": "web", "namespace": "ns"},
                  "subsets": [{"addresses": [{"ip": "10.244.0.5"}, {"ip": "10.244.0.6"}],
                               "ports": [{"port": 8080}]}]},
                 {"key": "ns/web", "endpoints": "10.244.0.5:8080,10.244.0.6:8080"},
                 id="endpoints"),
    pytest.param({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace":
                                                                    "ns"},
                  "involvedObject": {"kind": "Pod", "name": "web-1"}, "reason": "BackOff",
                  "message": "Back-off\n", "type": "Warning", "count": 4,
                  "firstTimestamp": "2023-11-14T22:13:20Z",
                  "lastTimestamp": "2023-11-14T22:14:20Z"},
                 {"object": "pod/web-1", "message": "Back-off", "count": 4,
                  "firstSeen": NOW, "lastSeen": NOW + 60}, id="event"),
])
def test_rows(doc: dict[str, Any], expected: dict[str, Any]) -> None:
    resource = {"Pod": "pods", "Node": "nodes", "Deployment": "deployments", "Job": "jobs",
                "Endpoints": "endpoints", "Event": "events"}[doc["kind"]]
    row = row_of(resource, obj(doc), NOW)
    assert {k: row[k] for k in expected} == expected
    json.dumps(row)  # everything the page gets is JSON


def test_hub_publishes_changes_and_cuts_off_a_slow_browser(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.setattr(server, "QUEUE_LIMIT", 2)

    async def scenario() -> None:
        hub = server.Hub("api:6443", clock=lambda: NOW)
        handle = hub.handler("pods")
        handle(None, obj(POD))
        sub, snapshot = hub.subscribe()
        assert snapshot.startswith("event: snapshot\ndata: ")
        data = json.loads(snapshot.split("data: ", 1)[1])
        assert data["server"] == "api:6443"
        assert [r["key"] for r in data["resources"]["pods"]] == ["default/web-1"]
        handle(obj(POD), None)
        change = json.loads((await sub.queue.get()).split("data: ", 1)[1])
        assert change == {"resource": "pods", "key": "default/web-1", "row": None}
        assert hub.rows["pods"] == {}
        hub.set_problem("The connection to the server api:6443 was refused")
        status = json.loads((await sub.queue.get()).split("data: ", 1)[1])
        assert status == {"problem": "The connection to the server api:6443 was refused"}
        assert '"problem":"The connection' in hub.snapshot()
        hub.set_problem("The connection to the server api:6443 was refused")
        assert sub.queue.empty()  # said once
        for _ in range(3):
            handle(None, obj(POD))
        assert sub.overflowed.is_set()

    asyncio.run(scenario())


def test_sse_is_one_data_line() -> None:
    assert server.sse("log", {"text": "a\nb\r\n"}) == \
        'event: log\ndata: {"text":"a\\nb\\r\\n"}\n\n'


@pytest.mark.parametrize(("host", "port", "allowed", "refused"), [
    pytest.param("127.0.0.1", 8001, ["127.0.0.1:8001", "localhost:8001", "[::1]:8001"],
                 ["evil.example:8001", "127.0.0.1:8002", ""], id="loopback"),
    pytest.param("::1", 9, ["[::1]:9", "localhost:9"], ["::1:9"], id="ipv6"),
    pytest.param("10.0.0.2", 80, ["10.0.0.2:80"], ["rebound.example:80"], id="an-address"),
])
def test_allowed_hosts(host: str, port: int, allowed: list[str], refused: list[str]) -> None:
    hosts = server.allowed_hosts(host, port)
    assert hosts is not None
    assert all(h in hosts for h in allowed)
    assert not any(h in hosts for h in refused)


def test_every_address_accepts_any_host() -> None:
    assert server.allowed_hosts("0.0.0.0", 8001) is None


def args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    return parser.parse_args(["dashboard", *argv])


@pytest.fixture
def kemu_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config"
    for f in ("ca.crt", "me.crt", "me.key"):
        (tmp_path / f).write_text("x")
    path.write_text("current-cluster: main\nclusters:\n"
                    "  main: {server: '10.0.0.1:6443', token: t1}\n"
                    "  lab: {server: '10.0.0.9:6443', token: t9, certificate-authority: ca.crt,"
                    " client-certificate: me.crt, client-key: me.key}\n")
    monkeypatch.setenv("KEMU_CONFIG", str(path))
    for env in ("KEMU_SERVER", "KEMU_TOKEN", "KEMU_CERTIFICATE_AUTHORITY",
                "KEMU_CLIENT_CERTIFICATE", "KEMU_CLIENT_KEY"):
        monkeypatch.delenv(env, raising=False)
    return path


def test_resolve_current_cluster(kemu_config: Path) -> None:
    cfg = cli.resolve(args())
    assert (cfg.host, cfg.port, cfg.server, cfg.token, cfg.tls) == \
        ("127.0.0.1", 8001, "10.0.0.1:6443", "t1", None)


def test_resolve_named_cluster_with_paths_relative_to_the_file(kemu_config: Path) -> None:
    cfg = cli.resolve(args("--name", "lab", "--listen", "[::1]:9000"))
    assert (cfg.host, cfg.port, cfg.server, cfg.token) == ("::1", 9000, "10.0.0.9:6443", "t9")
    assert cfg.tls is not None
    assert cfg.tls.ca_file == kemu_config.parent / "ca.crt"
    assert cfg.tls.key_file == kemu_config.parent / "me.key"
    assert cli.resolve(args("--name", "lab", "-s", "h:1", "--token", "x")).server == "h:1"


def test_resolve_unknown_cluster_or_missing_file(kemu_config: Path) -> None:
    with pytest.raises(server.DashboardError, match='cluster "nope" not found in'):
        cli.resolve(args("--name", "nope"))
    with pytest.raises(server.DashboardError, match=r"missing\.crt: no such file"):
        cli.resolve(args("--certificate-authority", str(kemu_config.parent / "missing.crt")))


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("::1", True),
                                                ("localhost", True), ("0.0.0.0", False),
                                                ("10.1.2.3", False), ("example.com", False)])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert cli.is_loopback(host) is loopback
