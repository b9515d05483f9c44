"""The agent process itself: kill -9 and adoption without loss, SIGTERM leaves pods running,
orphans removed, Ready follows Docker, and no Docker at all is one line and exit 1."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from kemu.client import Client
from tests.conftest import Cluster
from tests.e2e.nodeagent.helpers import (
    APP_IMAGE,
    TOOLS_IMAGE,
    create_pod,
    get_pod,
    running_agent,
    status_of,
    wait_for,
    wait_gone,
    wait_pod,
    wait_ready,
)
from tests.support.processes import ROOT

pytestmark = pytest.mark.e2e
SLEEP = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


def _containers(client: docker.DockerClient, uid: str) -> list[str]:
    """The ids of the pod's containers, from one listing: the SDK's `containers.list`
    inspects each row after listing, and fails when one is removed in between."""
    return sorted(row["Id"] for row in client.api.containers(
        all=True, filters={"label": f"io.kemu.pod.uid={uid}"}))


def test_kill9_restart_adopts_running_pods(cluster: Cluster, docker_client: docker.DockerClient,
                                           tmp_path: Path) -> None:
    with running_agent(cluster, docker_client, tmp_path, "e2e-adopt") as agent, \
            agent.client() as api:
        ns = "default"
        create_pod(api, "keep", ns, agent.node, [
            {"name": "app", "image": APP_IMAGE,
             "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}])
        create_pod(api, "flaky", ns, agent.node, [
            {"name": "app", "image": TOOLS_IMAGE,
             "command": ["sh", "-c", "if [ -f /s/x ]; then exec sleep 3600; fi; touch /s/x; "
                                     "exit 1"],
             "volumeMounts": [{"name": "s", "mountPath": "/s"}]}],
            volumes=[{"name": "s", "emptyDir": {}}])
        create_pod(api, "doomed", ns, agent.node, [
            {"name": "app", "image": TOOLS_IMAGE, "command": SLEEP}])
        keep = wait_ready(api, ns, "keep")
        flaky = wait_pod(api, ns, "flaky", lambda p: status_of(p, "app") is not None
                         and status_of(p, "app").restart_count == 1
                         and status_of(p, "app").ready, 20, "one restart, then ready")
        doomed = wait_ready(api, ns, "doomed")
        before = {p.metadata.name: _containers(docker_client, p.metadata.uid)
                  for p in (keep, flaky)}

        agent.proc.kill9()
        # While the agent is down, a pod is force-deleted: its containers become orphans.
        api.delete("pods", "doomed", ns, grace_period_seconds=0)
        wait_gone(api, ns, "doomed", 10)
        assert _containers(docker_client, doomed.metadata.uid)  # still there

        agent.restart()
        wait_for(lambda: not _containers(docker_client, doomed.metadata.uid), 20,
                 "the orphaned containers to be removed")
        for old in (keep, flaky):
            now = wait_ready(api, ns, old.metadata.name)
            assert now.status.pod_ip == old.status.pod_ip
            assert status_of(now, "app").container_id == status_of(old, "app").container_id
            assert status_of(now, "app").restart_count == status_of(old, "app").restart_count
            assert _containers(docker_client, old.metadata.uid) == before[old.metadata.name]
        # still working after adoption: deletion goes through the restarted agent
        api.delete("pods", "keep", ns)
        wait_gone(api, ns, "keep", 20)
        assert not _containers(docker_client, keep.metadata.uid)


def test_sigterm_leaves_pods_running(cluster: Cluster, docker_client: docker.DockerClient,
                                     tmp_path: Path) -> None:
    with running_agent(cluster, docker_client, tmp_path, "e2e-term") as agent, \
            agent.client() as api:
        create_pod(api, "stay", "default", agent.node, [
            {"name": "app", "image": TOOLS_IMAGE, "command": SLEEP}])
        pod = wait_ready(api, "default", "stay")
        agent.proc.stop(grace=10)
        assert agent.proc.popen is not None and agent.proc.popen.returncode == 0
        cid = status_of(pod, "app").container_id.removeprefix("docker://")
        assert docker_client.containers.get(cid).status == "running"
        agent.restart()
        again = wait_ready(api, "default", "stay")
        assert status_of(again, "app").container_id == status_of(pod, "app").container_id
        assert get_pod(api, "default", "stay") is not None


@contextlib.contextmanager
def docker_proxy(path: Path) -> Iterator[threading.Event]:
    """A unix socket forwarding to the real Docker socket; clear the event to make it refuse
    (close every connection), set it to forward again."""
    target = (os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock").removeprefix(
        "unix://")
    up = threading.Event()
    up.set()
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(64)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def pipe(a: socket.socket, b: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := a.recv(65536):
                b.sendall(data)
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except OSError:
                return
            if not up.is_set():
                client.close()
                continue
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(target)
            conns.extend([client, upstream])
            threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()

    def watch_down() -> None:
        while not stop.is_set():
            if not up.is_set():
                for c in list(conns):
                    with contextlib.suppress(OSError):
                        c.shutdown(socket.SHUT_RDWR)
                conns.clear()
            stop.wait(0.1)

    threading.Thread(target=accept, daemon=True).start()
    threading.Thread(target=watch_down, daemon=True).start()
    try:
        yield up
    finally:
        stop.set()
        server.close()
        for c in conns:
            with contextlib.suppress(OSError):
                c.close()


def test_ready_follows_docker(cluster: Cluster, docker_client: docker.DockerClient,
                              tmp_path: Path) -> None:
    sock = tmp_path / "docker.sock"
    with docker_proxy(sock) as up, running_agent(
            cluster, docker_client, tmp_path, "e2e-ready", "--docker-host",
            f"unix://{sock}") as agent, agent.client() as api:
        def ready() -> str:
            conds = api.get("nodes", agent.node).node.status.conditions
            return next((c.status for c in conds if c.type == "Ready"), "")

        wait_for(lambda: ready() == "True", 10, "Ready=True")
        up.clear()
        wait_for(lambda: ready() == "False", 15, "Ready=False while Docker does not answer")
        cond = next(c for c in api.get("nodes", agent.node).node.status.conditions
                    if c.type == "Ready")
        assert cond.reason == "KubeletNotReady"
        assert cond.message.startswith("container runtime is down")
        up.set()
        wait_for(lambda: ready() == "True", 15, "Ready=True again")


def test_no_docker_one_line_and_exit_1(tmp_path: Path) -> None:
    dead = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(dead))
    s.close()  # a socket file nobody listens on
    proc = subprocess.run(
        [sys.executable, "-m", "kemu.nodeagent", "--insecure", "--apiserver", "127.0.0.1:1",
         "--node-name", "e2e-nodocker", "--node-ip", "127.0.0.1",
         "--docker-host", f"unix://{dead}", "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: cannot reach Docker at unix://{dead}")


def test_pod_cidr_subnet_and_two_agents_side_by_side(cluster: Cluster,
                                                     docker_client: docker.DockerClient,
                                                     tmp_path: Path) -> None:
    """A node whose podCIDR is set before its agent starts gets a network with that subnet;
    two agents on one Docker leave each other's containers alone."""
    import ipaddress
    import secrets

    from kemu.api import manifest

    cidr = f"10.250.{secrets.randbelow(200) + 20}.0/24"
    with agent_client(cluster) as api:
        node_a = f"e2e-cidr-{secrets.token_hex(3)}"
        api.create(manifest.from_dict({"apiVersion": "v1", "kind": "Node",
                                       "metadata": {"name": node_a},
                                       "spec": {"podCIDR": cidr, "podCIDRs": [cidr]}}))
    with running_agent(cluster, docker_client, tmp_path, node_a, exact_name=True) as a, \
            running_agent(cluster, docker_client, tmp_path, "e2e-side") as b, \
            a.client() as api:
        subnets = [c["Subnet"] for c in docker_client.networks.get(f"kemu-{a.node}")
                   .attrs["IPAM"]["Config"]]
        assert subnets == [cidr]
        create_pod(api, "on-a", "default", a.node, [{"name": "app", "image": TOOLS_IMAGE,
                                                     "command": SLEEP}])
        create_pod(api, "on-b", "default", b.node, [{"name": "app", "image": TOOLS_IMAGE,
                                                     "command": SLEEP}])
        pa = wait_ready(api, "default", "on-a")
        pb = wait_ready(api, "default", "on-b")
        assert ipaddress.ip_address(pa.status.pod_ip) in ipaddress.ip_network(cidr)
        assert ipaddress.ip_address(pb.status.pod_ip) not in ipaddress.ip_network(cidr)
        a_containers = _containers(docker_client, pa.metadata.uid)
        api.delete("pods", "on-b", "default")
        wait_gone(api, "default", "on-b", 20)
        assert not _containers(docker_client, pb.metadata.uid)
        assert _containers(docker_client, pa.metadata.uid) == a_containers
        for cid in a_containers:
            assert docker_client.containers.get(cid).status == "running"


@contextlib.contextmanager
def agent_client(cluster: Cluster) -> Iterator[Client]:
    with Client(cluster.server, read_retry_seconds=10) as c:
        yield c


def test_sigterm_while_waiting_for_the_apiserver(tmp_path: Path) -> None:
    from tests.support import processes

    dead = f"127.0.0.1:{processes.free_port()}"
    proc = processes.Proc("agent-noapi", [
        sys.executable, "-m", "kemu.nodeagent", "--insecure", "--apiserver", dead, "--node-name",
        "e2e-noapi", "--node-ip", "127.0.0.1", "--port", str(processes.free_port()),
        "--data-dir", str(tmp_path / "d")], tmp_path / "agent.log", dead).start()
    try:
        wait_for(lambda: "cannot register node e2e-noapi" in proc.tail(50), 20,
                 "the agent to retry the registration")
        assert proc.popen is not None
        proc.popen.send_signal(15)
        assert proc.popen.wait(timeout=10) == 0
    finally:
        proc.kill9()


def test_pod_cidr_assigned_after_registration(cluster: Cluster,
                                              docker_client: docker.DockerClient,
                                              tmp_path: Path) -> None:
    """The node IPAM controller sets podCIDR after the node registered: the agent remakes
    its (still empty) network with that subnet, and pods get addresses from it."""
    import ipaddress
    import secrets

    cidr = f"10.249.{secrets.randbelow(200) + 20}.0/24"
    with running_agent(cluster, docker_client, tmp_path, "e2e-ipam") as agent, \
            agent.client() as api:
        obj = api.get("nodes", agent.node)
        obj.node.spec.pod_cidr = cidr
        obj.node.spec.pod_cidrs.append(cidr)
        api.update(obj)

        def subnet() -> str:
            nets = docker_client.networks.list(names=[f"kemu-{agent.node}"])
            return nets[0].attrs["IPAM"]["Config"][0]["Subnet"] if nets else ""
        wait_for(lambda: subnet() == cidr, 30, f"network subnet {cidr}")
        create_pod(api, "ipam", "default", agent.node, [{"name": "app", "image": TOOLS_IMAGE,
                                                         "command": SLEEP}])
        pod = wait_ready(api, "default", "ipam")
        assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(cidr)
