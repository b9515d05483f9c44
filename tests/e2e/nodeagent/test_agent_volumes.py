"""Volumes on a real agent: emptyDir, hostPath, configMap (items, refresh), secret,
persistentVolumeClaim (local-path, data kept across pod recreation), FailedMount."""

from __future__ import annotations

from pathlib import Path

import pytest

from kemu.client import Client
from tests.e2e.nodeagent.helpers import (
    TOOLS_IMAGE,
    AgentHandle,
    create,
    create_pod,
    events,
    exec_,
    wait_for,
    wait_gone,
    wait_pod,
    wait_ready,
    waiting_reason,
)

pytestmark = pytest.mark.e2e
SLEEP = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


def read(agent: AgentHandle, ns: str, pod: str, path: str, container: str = "") -> bytes:
    code, out, err = exec_(agent.grpc_address, ns, pod, ["cat", path], container=container)
    return out if code == 0 else b"<" + err + b">"


def test_empty_dir_shared_between_containers(api: Client, agent: AgentHandle,
                                             namespace: str) -> None:
    mount = [{"name": "scratch", "mountPath": "/scratch"}]
    create_pod(api, "shared", namespace, agent.node, [
        {"name": "writer", "image": TOOLS_IMAGE, "volumeMounts": mount,
         "command": ["sh", "-c", "echo from-writer > /scratch/note; trap 'exit 0' TERM; "
                                 "while true; do sleep 1; done"]},
        {"name": "reader", "image": TOOLS_IMAGE, "volumeMounts": mount, "command": SLEEP}],
        volumes=[{"name": "scratch", "emptyDir": {}}])
    wait_ready(api, namespace, "shared")
    out = wait_for(lambda: read(agent, namespace, "shared", "/scratch/note", "reader")
                   == b"from-writer\n", 10, "the writer's file in the reader")
    assert out


def test_host_path(api: Client, agent: AgentHandle, namespace: str, tmp_path: Path) -> None:
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "hello.txt").write_text("from the host\n")
    created = tmp_path / "made" / "by" / "agent"
    create_pod(api, "hp", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE, "command": SLEEP, "volumeMounts": [
            {"name": "host", "mountPath": "/host"},
            {"name": "made", "mountPath": "/made"}]}],
        volumes=[{"name": "host", "hostPath": {"path": str(existing), "type": "Directory"}},
                 {"name": "made", "hostPath": {"path": str(created),
                                               "type": "DirectoryOrCreate"}}])
    wait_ready(api, namespace, "hp")
    assert read(agent, namespace, "hp", "/host/hello.txt") == b"from the host\n"
    exec_(agent.grpc_address, namespace, "hp", ["sh", "-c", "echo back > /made/out"])
    assert (created / "out").read_text() == "back\n"


def test_config_map_items_refreshed(api: Client, agent: AgentHandle, namespace: str) -> None:
    cm = create(api, {"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "app-config", "namespace": namespace},
                      "data": {"greeting": "hello", "unused": "x", "level": "debug"}})
    create_pod(api, "cm", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE, "command": SLEEP, "volumeMounts": [
            {"name": "picked", "mountPath": "/picked"},
            {"name": "all", "mountPath": "/all"}]}],
        volumes=[{"name": "picked", "configMap": {"name": "app-config", "items": [
                     {"key": "greeting", "path": "conf/greeting.txt", "mode": 0o400}]}},
                 {"name": "all", "configMap": {"name": "app-config"}}])
    wait_ready(api, namespace, "cm")
    assert read(agent, namespace, "cm", "/picked/conf/greeting.txt") == b"hello"
    _, listing, _ = exec_(agent.grpc_address, namespace, "cm", ["ls", "/picked"])
    assert listing.split() == [b"conf"]
    _, listing, _ = exec_(agent.grpc_address, namespace, "cm", ["ls", "/all"])
    assert sorted(listing.split()) == [b"greeting", b"level", b"unused"]
    _, mode, _ = exec_(agent.grpc_address, namespace, "cm",
                       ["stat", "-L", "-c", "%a", "/picked/conf/greeting.txt"])
    assert mode.strip() == b"400"
    cm.config_map.data["greeting"] = "bonjour"
    api.update(cm)
    wait_for(lambda: read(agent, namespace, "cm", "/picked/conf/greeting.txt") == b"bonjour",
             15, "the changed ConfigMap in the running container")
    assert read(agent, namespace, "cm", "/all/greeting") == b"bonjour"


def test_secret_volume(api: Client, agent: AgentHandle, namespace: str) -> None:
    create(api, {"apiVersion": "v1", "kind": "Secret",
                 "metadata": {"name": "tls", "namespace": namespace},
                 "stringData": {"token": "abc123"}})
    create_pod(api, "sec", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE, "command": SLEEP,
         "volumeMounts": [{"name": "s", "mountPath": "/etc/secret", "readOnly": True}]}],
        volumes=[{"name": "s", "secret": {"secretName": "tls"}}])
    wait_ready(api, namespace, "sec")
    assert read(agent, namespace, "sec", "/etc/secret/token") == b"abc123"
    code, _, _ = exec_(agent.grpc_address, namespace, "sec",
                       ["sh", "-c", "echo x > /etc/secret/other"])
    assert code != 0  # read-only


def test_missing_config_map_volume_failed_mount(api: Client, agent: AgentHandle,
                                                namespace: str) -> None:
    create_pod(api, "nomount", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE, "command": SLEEP,
         "volumeMounts": [{"name": "c", "mountPath": "/c"}]}],
        volumes=[{"name": "c", "configMap": {"name": "absent"}}])
    pod = wait_pod(api, namespace, "nomount",
                   lambda p: waiting_reason(p, "app") == "ContainerCreating", 15,
                   "ContainerCreating")
    assert pod.status.phase == "Pending"
    ev = wait_for(lambda: [e for e in events(api, namespace, "nomount")
                           if e.reason == "FailedMount"], 10, "a FailedMount event")
    assert 'configmap "absent" not found' in ev[0].message
    assert ev[0].type == "Warning"
    create(api, {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "absent", "namespace": namespace}, "data": {"k": "v"}})
    wait_ready(api, namespace, "nomount", 20)


def test_pvc_bound_and_data_survives_pod_recreation(api: Client, agent: AgentHandle,
                                                    namespace: str) -> None:
    create(api, {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                 "metadata": {"name": "data", "namespace": namespace},
                 "spec": {"accessModes": ["ReadWriteOnce"],
                          "resources": {"requests": {"storage": "1Gi"}}}})
    spec = {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}
    containers = [{"name": "app", "image": TOOLS_IMAGE, "command": SLEEP,
                   "volumeMounts": [{"name": "d", "mountPath": "/data"}]}]
    create_pod(api, "db", namespace, agent.node, containers, **spec)
    wait_ready(api, namespace, "db")
    pvc = api.get("persistentvolumeclaims", "data", namespace).persistent_volume_claim
    assert pvc.status.phase == "Bound"
    assert pvc.spec.volume_name == f"pvc-{pvc.metadata.uid}"
    assert pvc.status.capacity["storage"] == "1Gi"
    assert list(pvc.status.access_modes) == ["ReadWriteOnce"]
    assert (agent.data_dir / "volumes" / pvc.spec.volume_name).is_dir()
    exec_(agent.grpc_address, namespace, "db", ["sh", "-c", "echo kept > /data/file"])
    api.delete("pods", "db", namespace)
    wait_gone(api, namespace, "db")
    create_pod(api, "db", namespace, agent.node, containers, **spec)
    wait_ready(api, namespace, "db")
    assert read(agent, namespace, "db", "/data/file") == b"kept\n"
