"""`kemu up`, `kemu status`, `kemu down`: a cluster of managed processes on this machine,
with one node agent running pods on the local dockerd."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import docker  # type: ignore[import-untyped]
import pytest
import yaml

from kemu.api import manifest
from kemu.client import Client
from kemu.client.errors import Forbidden, Unavailable
from kemu.nodeagent.netnslock import NetnsLock
from kemu.util.tls import ClientTLS
from tests.support import processes
from tests.support.hostnetwork import host_network  # noqa: F401 - the fixture

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _ports() -> tuple[str, ...]:
    return ("--store-port", str(processes.free_port()), "--apiserver-port",
            str(processes.free_port()), "--scheduler-port", str(processes.free_port()),
            "--agent-port", str(processes.free_port()),
            "--controller-manager-port", str(processes.free_port()))


def kemu(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kemu.cli.kemu_main", *args], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.timeout(2400)  # may first wait for the host network (README walkthrough)
def test_up_status_down(tmp_path: Path, host_network: None) -> None:  # noqa: F811
    env = {**os.environ, "KEMU_HOME": str(tmp_path / "home"),
           "KEMU_CONFIG": str(tmp_path / "config")}
    ports = _ports()
    api_port = int(ports[3])
    up = kemu(env, "up", "--name", "lab", *ports)
    assert up.returncode == 0, up.stderr
    assert f"127.0.0.1:{api_port}" in up.stdout
    config = yaml.safe_load((tmp_path / "config").read_text())
    assert config["current-cluster"] == "lab"
    assert config["clusters"]["lab"]["server"] == f"127.0.0.1:{api_port}"
    # TLS with client certificates from the cluster's PKI: kemuctl finds them in the config.
    entry = config["clusters"]["lab"]
    tls = ClientTLS(Path(entry["certificate-authority"]), Path(entry["client-certificate"]),
                    Path(entry["client-key"]))
    assert Path(entry["certificate-authority"]).parent == tmp_path / "home/clusters/lab/pki"
    try:
        with Client(f"127.0.0.1:{api_port}", tls=ClientTLS(tls.ca_file)) as stranger, \
                pytest.raises(Unavailable):
            stranger.list("nodes")  # TLS without a client certificate: refused
        with Client(f"127.0.0.1:{api_port}", tls=tls) as client:
            node = client.get("nodes", "lab-node-1").node
            assert any(c.type == "Ready" and c.status == "True"
                       for c in node.status.conditions)
            client.create(manifest.from_dict({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "hello", "labels": {"app": "hello"}},
                "spec": {"containers": [{"name": "web", "image": "kemu/bootcamp:v1",
                                         "imagePullPolicy": "Never"}]}}))
            processes.wait_for(lambda: client.get("pods", "hello").pod.status.phase
                               == "Running", 60, "pod hello Running (scheduled and started)")
            _authorization_and_encryption(client, tmp_path / "home/clusters/lab/pki",
                                          entry["store"])
            # The controller manager gave the node a podCIDR; the pod's IP comes from it.
            cidr = ipaddress.ip_network(client.get("nodes", "lab-node-1").node.spec.pod_cidr)
            assert cidr.subnet_of(ipaddress.ip_network("10.244.0.0/16"))
            assert ipaddress.ip_address(client.get("pods", "hello").pod.status.pod_ip) in cidr
            # Cluster DNS: the kube-dns pods answer `dig @10.96.0.10` from this machine, as
            # `up` prints, and a pod resolves a Service name through the same Service.
            assert "dig @10.96.0.10 kubernetes.default.svc.cluster.local" in up.stdout
            processes.wait_for(lambda: [p.pod.status.phase for p in client.list(
                "pods", namespace="kube-system", label_selector="k8s-app=kube-dns").items]
                == ["Running", "Running"], 60, "both kube-dns pods Running")
            dig = subprocess.run(["dig", "@10.96.0.10", "+short", "+time=2",
                                  "kubernetes.default.svc.cluster.local"],
                                 capture_output=True, text=True, timeout=20)
            assert dig.stdout.split() == ["10.96.0.1"], dig
            lookup = subprocess.run(
                [sys.executable, "-m", "kemu.cli.kemuctl", "exec", "hello", "--", "python3",
                 "-c", "import socket; print(socket.gethostbyname('kubernetes'))"],
                env=env, capture_output=True, text=True, timeout=60)
            assert lookup.stdout.split() == ["10.96.0.1"], lookup
            # A NodePort answers on the URL `kemu service --url` prints (the node's IP is
            # 127.0.0.1: localhost NodePorts, as kube-proxy's default).
            client.create(manifest.from_dict({
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": "hello"},
                "spec": {"type": "NodePort", "selector": {"app": "hello"},
                         "ports": [{"port": 80, "targetPort": 8080}]}}))
            url = kemu(env, "service", "hello", "--url").stdout.strip()
            assert url.startswith("http://127.0.0.1:3"), url

            def answer() -> str:
                try:
                    with urllib.request.urlopen(url, timeout=3) as r:
                        return str(r.read().decode())
                except OSError:  # the rules are at most a second behind the Service
                    return ""
            processes.wait_for(lambda: "Hello Kubernetes bootcamp!" in answer(), 20,
                               f"an answer from {url}")
        again = kemu(env, "up", "--name", "lab", *ports)  # reuses the running cluster
        assert again.returncode == 0 and "already running" in again.stdout
        quiet = kemu(env, "up", "--name", "lab", "--quiet", *ports)
        assert (quiet.returncode, quiet.stdout) == (0, ""), quiet.stderr
        described = json.loads(kemu(env, "up", "--name", "lab", "-o", "json", *ports).stdout)
        assert described["apiserver"] == f"127.0.0.1:{api_port}"
        assert described["nodes"] == ["lab-node-1"]
        rows = json.loads(kemu(env, "status", "--name", "lab", "-o", "json").stdout)
        assert {r["status"] for r in rows["components"]} == {"Healthy"}
        # Every component serves Prometheus metrics where `kemu status` says.
        urls = {r["component"]: r["metrics"] for r in rows["components"]}
        for comp, series in (("store", "etcd_debugging_mvcc_current_revision"),
                             ("apiserver", 'apiserver_request_total{code="201"'),
                             ("scheduler", 'scheduler_schedule_attempts_total{'),
                             ("controller-manager", 'workqueue_adds_total{name="deployment"}'),
                             ("agent", "kubelet_running_pods")):
            with urllib.request.urlopen(urls[comp], timeout=10) as scraped:
                assert series in scraped.read().decode(), (comp, series)
        status = kemu(env, "status", "--name", "lab")
        assert status.returncode == 0
        running = {c.name for c in docker.from_env().containers.list(
            filters={"label": "io.kemu.cluster=lab"})}
        assert running == {f"kemu-lab-{c}" for c in ("store", "apiserver", "scheduler",
                                                     "controller-manager")}
        assert status.stdout.count("Healthy") == 5  # 4 control-plane parts and the agent
        # a second cluster beside the first
        # A second cluster beside the first: lab's agent programs this machine's Services,
        # so other's node gets a network namespace of its own, with its own rules and DNS.
        other_ports = _ports()
        other = kemu(env, "up", "--name", "other", *other_ports)
        assert other.returncode == 0, other.stdout + other.stderr
        assert "network namespace of its own" in other.stdout
        assert "1 Ready" in other.stdout and "dns        answering" in other.stdout
        other_api = json.loads(kemu(env, "up", "--name", "other", "-o", "json",
                                    *other_ports).stdout)["apiserver"]
        other_entry = yaml.safe_load((tmp_path / "config").read_text())["clusters"]["other"]
        other_tls = ClientTLS(*(Path(other_entry[k]) for k in (
            "certificate-authority", "client-certificate", "client-key")))
        with Client(other_api, tls=other_tls) as client:
            cidr = client.get("nodes", "other-node-1").node.spec.pod_cidr
            assert ipaddress.ip_network(cidr).subnet_of(ipaddress.ip_network("10.245.0.0/16"))
        assert kemu(env, "down", "--name", "other").returncode == 0
    finally:
        kemu(env, "down", "--name", "other")  # even when an assertion above failed
        down = kemu(env, "down", "--name", "lab")
    assert down.returncode == 0
    assert not (tmp_path / "home" / "clusters" / "lab").exists()
    assert not processes.tcp_open(f"127.0.0.1:{api_port}")
    assert kemu(env, "status", "--name", "lab").returncode == 1
    # The agent removed its Service rules, routes and policy rule on the way down. Checked
    # when no other kemu agent programs this machine (one would hold the netns lock).
    lock = NetnsLock.acquire()
    if lock is not None:
        try:
            assert "KEMU" not in subprocess.run(["iptables-save"], capture_output=True,
                                                text=True).stdout
            routes = subprocess.run(["ip", "route", "show", "table", "all"],
                                    capture_output=True, text=True).stdout
            assert "proto 76" not in routes
            assert "7600" not in subprocess.run(["ip", "rule"], capture_output=True,
                                                text=True).stdout
        finally:
            lock.release()
    engine = docker.from_env()
    assert not engine.containers.list(all=True, filters={"label": "io.kemu.node=lab-node-1"})
    # The control plane ran as containers of the kemu image; down removed them.
    assert not engine.containers.list(all=True, filters={"label": "io.kemu.cluster=lab"})
    assert not engine.networks.list(names=["kemu-lab-node-1"])


def test_up_reports_a_port_in_use_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "KEMU_HOME": str(tmp_path / "home"),
           "KEMU_CONFIG": str(tmp_path / "config")}
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        ports = list(_ports())
        ports[1] = str(port)
        result = kemu(env, "up", "--name", "busy", *ports)
    assert result.returncode == 1
    assert result.stderr.startswith("error: store exited")
    assert "Traceback" not in result.stderr.splitlines()[0]
    kemu(env, "down", "--name", "busy")


def test_a_failed_up_stops_what_it_started(tmp_path: Path) -> None:
    """The scheduler cannot bind its health port: the store, apiserver and controller
    manager already running are stopped again, not left behind."""
    env = {**os.environ, "KEMU_HOME": str(tmp_path / "home"),
           "KEMU_CONFIG": str(tmp_path / "config")}
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ports = list(_ports())
        ports[ports.index("--scheduler-port") + 1] = str(busy.getsockname()[1])
        result = kemu(env, "up", "--name", "half", *ports)
    try:
        assert result.returncode == 1
        assert result.stderr.startswith("error: scheduler exited"), result.stderr
        status = kemu(env, "status", "--name", "half")
        assert status.stdout.count("Stopped") == 6, status.stdout
        assert not processes.tcp_open(f"127.0.0.1:{ports[ports.index('--apiserver-port') + 1]}")
    finally:
        kemu(env, "down", "--name", "half")


def _authorization_and_encryption(admin: Client, pki: Path, store: str) -> None:
    """Node,RBAC: the node's certificate reads its own Node but may not create workloads,
    the scheduler's may not read Secrets; a Secret is AES-GCM ciphertext in the store, as
    the real etcdctl reads it with the apiserver's etcd client certificate."""
    api = admin.server

    def as_user(name: str) -> Client:
        return Client(api, tls=ClientTLS(pki / "ca.crt", pki / f"{name}.crt",
                                         pki / f"{name}.key"))
    deployment = manifest.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "sneaky"},
        "spec": {"selector": {"matchLabels": {"app": "sneaky"}},
                 "template": {"metadata": {"labels": {"app": "sneaky"}},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
    with as_user("node-lab-node-1") as node:
        assert node.get("nodes", "lab-node-1").node.metadata.name == "lab-node-1"
        with pytest.raises(Forbidden, match="system:node:lab-node-1"):
            node.create(deployment)
    with as_user("scheduler") as scheduler, pytest.raises(Forbidden):
        scheduler.list("secrets", namespace="kube-system")

    admin.create(manifest.from_dict({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vault"},
        "stringData": {"password": "plaintext-never-stored"}}))
    got = subprocess.run(
        ["etcdctl", f"--endpoints=https://{store}", "--cacert", str(pki / "ca.crt"),
         "--cert", str(pki / "apiserver-etcd-client.crt"),
         "--key", str(pki / "apiserver-etcd-client.key"),
         "get", "/registry/secrets/default/vault", "--print-value-only"],
        capture_output=True, timeout=30, env={**os.environ, "ETCDCTL_API": "3"})
    assert got.returncode == 0, got.stderr
    assert got.stdout.startswith(b"k8s:enc:aesgcm:v1:key1:")
    assert b"plaintext-never-stored" not in got.stdout
    assert admin.get("secrets", "vault").secret.data["password"] == b"plaintext-never-stored"
