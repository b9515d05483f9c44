"""Packets through the rendered rules: a ClusterIP and a NodePort reach a real backend.

Two namespaces joined by a veth pair play a node ("client", where the rules live) and a pod
("backend", running `python3 -m http.server` on its IP). Nothing leaves them: the veth is
created inside the client namespace with its peer moved straight into the backend's.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from kemu.nodeagent.proxy import (
    EndpointInfo,
    Proxier,
    ProxyConfig,
    ServicePortInfo,
    SubprocessIptables,
)
from tests.e2e.proxy.conftest import NetnsFactory

pytestmark = pytest.mark.e2e

CLIENT_IP = "10.244.0.2"
BACKEND_IP = "10.244.0.5"
CLUSTER_IP = "10.96.7.7"
SVC = ServicePortInfo("default", "hello", "http", "TCP", CLUSTER_IP, 80, node_port=30080)
EPS = {SVC.key: [EndpointInfo(BACKEND_IP, 8080)]}

# Runs in the client namespace: one HTTP GET, prints the outcome and the time it took.
CLIENT = textwrap.dedent(
    """
    import socket, sys, time
    host, port = sys.argv[1], int(sys.argv[2])
    start = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(b"GET /index.html HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        body = data.decode(errors="replace").split("\\r\\n\\r\\n", 1)[-1]
        print("OK", time.monotonic() - start, body)
    except OSError as e:
        print(type(e).__name__, time.monotonic() - start)
    """
)


@dataclass(frozen=True)
class Pair:
    client: str
    backend: str


def ns_run(ns: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=True, timeout=30
    )


def fetch(ns: str, host: str, port: int) -> list[str]:
    out = ns_run(ns, sys.executable, "-c", CLIENT, host, str(port)).stdout
    return out.strip().split(" ", 2)


@pytest.fixture
def pair(make_netns: NetnsFactory, tmp_path: Path) -> Iterator[Pair]:
    """Client and backend namespaces, a veth between them, an HTTP server in the backend."""
    client, backend = make_netns(), make_netns()
    veth = ["link", "add", "vc", "type", "veth", "peer", "name", "vb", "netns", backend]
    subprocess.run(["ip", "-n", client, *veth], check=True)
    for ns, dev, ip in ((client, "vc", CLIENT_IP), (backend, "vb", BACKEND_IP)):
        subprocess.run(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)
    # Locally generated packets need a route before nat OUTPUT can DNAT them.
    subprocess.run(["ip", "-n", client, "route", "add", "10.96.0.0/12", "dev", "vc"], check=True)
    servers = []
    try:
        # Two servers on one IP play two pods; each says which one it is.
        for port in (8080, 8081):
            root = tmp_path / str(port)
            root.mkdir()
            (root / "index.html").write_text(f"hello from {port}\n")
            servers.append(
                subprocess.Popen(
                    [
                        *("ip", "netns", "exec", backend),
                        *(sys.executable, "-m", "http.server", str(port)),
                        *("--bind", BACKEND_IP, "--directory", str(root)),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        deadline = time.monotonic() + 15
        for port in (8080, 8081):
            while fetch(client, BACKEND_IP, port)[0] != "OK":
                assert time.monotonic() < deadline, "the backend's http.server never answered"
                time.sleep(0.1)
        yield Pair(client, backend)
    finally:
        for server in servers:
            server.kill()
            server.wait(timeout=10)


def proxier(ns: str) -> Proxier:
    cfg = ProxyConfig(cluster_cidr="10.244.0.0/16", node_ips=(CLIENT_IP,))
    return Proxier(SubprocessIptables(netns=ns), cfg)


def test_cluster_ip_and_node_port_reach_the_backend(pair: Pair) -> None:
    proxier(pair.client).sync([SVC], EPS)
    status, _, body = fetch(pair.client, CLUSTER_IP, 80)
    assert (status, body) == ("OK", "hello from 8080")
    status, _, body = fetch(pair.client, CLIENT_IP, 30080)
    assert (status, body) == ("OK", "hello from 8080")


def test_localhost_node_port_with_route_localnet(pair: Pair) -> None:
    """127.0.0.1:NODEPORT reaches the backend once route_localnet is on (the agent sets
    it), as with kube-proxy's --iptables-localhost-nodeports; off, it is not rendered."""
    cfg = ProxyConfig(cluster_cidr="10.244.0.0/16", node_ips=(CLIENT_IP,),
                      localhost_nodeports=True)
    Proxier(SubprocessIptables(netns=pair.client), cfg).sync([SVC], EPS)
    ns_run(pair.client, "sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1")
    status, _, body = fetch(pair.client, "127.0.0.1", 30080)
    assert (status, body) == ("OK", "hello from 8080")
    saved = ns_run(pair.client, "iptables-save", "-t", "filter").stdout
    assert "block incoming localnet connections" in saved
    proxier(pair.client).sync([SVC], EPS)  # localhost NodePorts off again
    assert fetch(pair.client, "127.0.0.1", 30080)[0] != "OK"
    assert "block incoming localnet" not in ns_run(pair.client, "iptables-save").stdout


def test_service_without_endpoints_is_refused_at_once(pair: Pair) -> None:
    proxier(pair.client).sync([SVC], {})
    status, seconds = fetch(pair.client, CLUSTER_IP, 80)[:2]
    assert status == "ConnectionRefusedError"
    assert float(seconds) < 1.0


def test_cleanup_takes_the_service_away(pair: Pair) -> None:
    p = proxier(pair.client)
    p.sync([SVC], EPS)
    assert fetch(pair.client, CLUSTER_IP, 80)[0] == "OK"
    p.cleanup()
    # No DNAT any more: the packet goes to 10.96.7.7 on the veth and nobody answers.
    status = fetch(pair.client, CLUSTER_IP, 80)[0]
    assert status in ("TimeoutError", "OSError", "ConnectionRefusedError")


TWO = {SVC.key: [EndpointInfo(BACKEND_IP, 8080), EndpointInfo(BACKEND_IP, 8081)]}


def test_requests_spread_over_endpoints_without_affinity(pair: Pair) -> None:
    proxier(pair.client).sync([SVC], TWO)
    seen = {fetch(pair.client, CLUSTER_IP, 80)[2] for _ in range(20)}
    # Each request picks 8080 with probability 0.5: all 20 on one is a 2-in-a-million event.
    assert seen == {"hello from 8080", "hello from 8081"}


def test_client_ip_affinity_sticks_to_one_endpoint(pair: Pair) -> None:
    sticky = replace(SVC, affinity_timeout=60)
    proxier(pair.client).sync([sticky], TWO)
    seen = {fetch(pair.client, CLUSTER_IP, 80)[2] for _ in range(10)}
    assert len(seen) == 1
