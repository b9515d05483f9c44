"""The pod network's routes and rules, and LB address announcing, in a throwaway namespace.

Real `ip` and `iptables` run inside a namespace made for the test (as they would on a lab
node); the checks are what an admin would look at: `ip route`, `ip route get`, `ip rule`,
`iptables-save`, and that `cleanup` leaves nothing of ours behind.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

import pytest

from kemu.nodeagent.lbannounce import Announcer
from kemu.nodeagent.podnetwork import (
    COMMENT,
    MASQ_CHAIN,
    PeerNode,
    PodNetwork,
    PodNetworkConfig,
    run_command,
)

pytestmark = pytest.mark.e2e
NODE_IP = "198.18.252.11"
CFG = PodNetworkConfig("10.244.0.0/16", "10.96.0.0/12", "node-a", NODE_IP)


def in_netns(ns: str):  # type: ignore[no-untyped-def]
    def run(argv: Sequence[str], *, check: bool = True, stdin: str | None = None) -> str:
        return run_command(["ip", "netns", "exec", ns, *argv], check=check, stdin=stdin)
    return run


def sh(ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                          check=check)


@pytest.fixture
def node_ns(netns: str) -> str:
    """A namespace shaped like a lab node: eth0 with the node IP, Docker's DOCKER-USER."""
    subprocess.run(["ip", "-n", netns, "link", "add", "eth0", "type", "veth", "peer", "name",
                    "peer0"], check=True)
    subprocess.run(["ip", "-n", netns, "addr", "add", f"{NODE_IP}/24", "dev", "eth0"], check=True)
    for dev in ("eth0", "peer0"):
        subprocess.run(["ip", "-n", netns, "link", "set", dev, "up"], check=True)
    sh(netns, "iptables", "-N", "DOCKER-USER")
    sh(netns, "iptables", "-A", "DOCKER-USER", "-j", "RETURN")
    return netns


PEERS = [PeerNode("node-a", NODE_IP, "10.244.0.0/24"),
         PeerNode("node-b", "198.18.252.12", "10.244.1.0/24"),
         PeerNode("node-c", "198.18.252.13", "10.244.2.0/24"),
         PeerNode("no-ip-yet", "", "10.244.3.0/24")]


def test_routes_rules_and_cleanup(node_ns: str) -> None:
    net = PodNetwork(CFG, in_netns(node_ns))
    net.ensure_static("10.244.0.0/24")
    net.ensure_static("10.244.0.0/24")  # a resync: nothing is added twice
    assert net.sync_routes(PEERS)

    routes = sh(node_ns, "ip", "route").stdout
    assert "10.244.1.0/24 via 198.18.252.12" in routes
    assert "10.244.2.0/24 via 198.18.252.13" in routes
    assert "10.244.3.0/24" not in routes  # a node without an address gets no route
    assert "unreachable 10.244.0.0/16" in routes
    assert "unreachable 10.96.0.0/12" in routes
    # A forwarded packet (from a pod) for a pod IP nobody has, or for a ClusterIP that was
    # not DNATed, is refused here; it never takes a default route out.
    for dst in ("10.244.9.9", "10.96.3.3"):
        got = sh(node_ns, "ip", "route", "get", dst, "from", "198.18.252.12", "iif", "eth0",
                 check=False)
        assert got.returncode != 0 and "no route to host" in got.stderr.lower()
    # The node's own packets to a ClusterIP pass the route lookup (DNAT then reroutes them).
    assert "dev lo" in sh(node_ns, "ip", "route", "get", "10.96.3.3").stdout

    filt = sh(node_ns, "iptables-save", "-t", "filter").stdout
    assert filt.count(COMMENT) == 2
    assert "-A DOCKER-USER -s 10.244.0.0/16" in filt and "-A DOCKER-USER -d 10.244.0.0/16" in filt
    # Ours come before Docker's RETURN, or they would never be reached.
    user = [line for line in filt.splitlines() if line.startswith("-A DOCKER-USER")]
    assert user[-1] == "-A DOCKER-USER -j RETURN"
    nat = sh(node_ns, "iptables-save", "-t", "nat").stdout
    assert (f"-A {MASQ_CHAIN} -s 10.244.0.0/24 ! -d 10.244.0.0/16" in nat
            and "-j MASQUERADE" in nat)
    assert nat.count(f"-j {MASQ_CHAIN}") == 1

    # A node leaving takes its route with it.
    assert net.sync_routes(PEERS[:2])
    assert "10.244.2.0/24" not in sh(node_ns, "ip", "route").stdout
    assert not net.sync_routes(PEERS[:2])

    removed = net.cleanup()
    assert removed
    routes = sh(node_ns, "ip", "route", "show", "table", "all").stdout
    assert "proto 76" not in routes and "10.244" not in routes and "10.96" not in routes
    assert "7600" not in sh(node_ns, "ip", "rule").stdout
    for table in ("filter", "nat"):
        saved = sh(node_ns, "iptables-save", "-t", table).stdout
        assert COMMENT not in saved and MASQ_CHAIN not in saved
    assert "-A DOCKER-USER -j RETURN" in sh(node_ns, "iptables-save", "-t", "filter").stdout


def test_load_balancer_addresses_are_announced_and_withdrawn(node_ns: str) -> None:
    ann = Announcer(NODE_IP, in_netns(node_ns))
    ann.sync({"198.18.252.200", "198.18.252.201"})
    addrs = sh(node_ns, "ip", "-4", "addr", "show", "dev", "eth0").stdout
    assert "198.18.252.200/32" in addrs and "198.18.252.201/32" in addrs
    assert NODE_IP in addrs
    ann.sync({"198.18.252.201"})
    addrs = sh(node_ns, "ip", "-4", "addr", "show", "dev", "eth0").stdout
    assert "198.18.252.200" not in addrs and "198.18.252.201/32" in addrs
    assert ann.cleanup() == ["198.18.252.201"]
    addrs = sh(node_ns, "ip", "-4", "addr", "show", "dev", "eth0").stdout
    assert "198.18.252.201" not in addrs and f"{NODE_IP}/24" in addrs
