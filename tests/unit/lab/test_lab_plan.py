"""The lab's pure parts: names within kernel limits, the address plan, route collisions."""

from __future__ import annotations

import ipaddress

import pytest

from kemu.lab.bridge import bridge_name
from kemu.lab.dockerd import DockerdPaths, dockerd_argv
from kemu.lab.harness import Lab
from kemu.lab.netns import (
    AddressPlan,
    netns_name,
    routes_overlapping,
    short_id,
    validate_cluster_name,
    veth_port_name,
)


def test_netns_name() -> None:
    assert netns_name("demo", 1) == "kemu-lab-demo-1"
    assert netns_name("demo", 12) == "kemu-lab-demo-12"
    with pytest.raises(ValueError):
        netns_name("demo", 0)


@pytest.mark.parametrize("bad", ["", "-x", "x-", "Demo", "a_b", "a/b", "x" * 41])
def test_bad_cluster_names(bad: str) -> None:
    with pytest.raises(ValueError):
        validate_cluster_name(bad)


def test_interface_names_fit_ifnamsiz_and_differ_per_cluster() -> None:
    long = "x" * 40
    assert len(bridge_name(long)) <= 15
    assert len(veth_port_name(long, 243)) <= 15
    assert bridge_name("a").startswith("kemulab-")
    assert bridge_name("a") != bridge_name("b")
    assert veth_port_name("a", 1) != veth_port_name("a", 2)
    assert veth_port_name("a", 1) != veth_port_name("b", 1)
    assert short_id("a") == short_id("a")


def test_address_plan() -> None:
    plan = AddressPlan.parse("198.18.250.0/24")
    assert str(plan.gateway) == "198.18.250.1"
    assert str(plan.node_ip(1)) == "198.18.250.11"
    assert str(plan.node_ip(2)) == "198.18.250.12"
    assert plan.node_cidr(3) == "198.18.250.13/24"
    assert str(plan.node_ip(plan.max_nodes)) == "198.18.250.254"
    for n in (0, plan.max_nodes + 1):
        with pytest.raises(ValueError):
            plan.node_ip(n)


@pytest.mark.parametrize("bad", ["198.18.250.0/23", "8.8.8.0/24", "198.18.250.1/24"])
def test_address_plan_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        AddressPlan.parse(bad)


def test_routes_overlapping() -> None:
    routes = """default via 192.0.2.1 dev eth0
172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1 linkdown
198.18.0.0/15 via 192.0.2.9 dev eth0
local 198.18.250.5 dev lo table local proto kernel scope host src 198.18.250.5
broadcast 192.0.2.255 dev eth0 table local proto kernel scope link src 192.0.2.2
unreachable 10.96.0.0/12
"""
    net = ipaddress.IPv4Network("198.18.250.0/24")
    hits = routes_overlapping(net, routes)
    assert hits == [routes.splitlines()[2], routes.splitlines()[3]]
    assert routes_overlapping(ipaddress.IPv4Network("10.96.1.0/24"), routes) == [
        "unreachable 10.96.0.0/12"
    ]
    assert routes_overlapping(ipaddress.IPv4Network("198.51.100.0/24"), routes) == []


def test_dockerd_argv_uses_nsenter_net_and_private_paths() -> None:
    paths = DockerdPaths("kemu-lab-demo-1")
    argv = dockerd_argv(paths, "/run/netns/kemu-lab-demo-1")
    assert argv[:2] == ["nsenter", "--net=/run/netns/kemu-lab-demo-1"]
    assert "ip" not in argv
    joined = " ".join(argv)
    assert "--host unix:///run/kemu-lab/kemu-lab-demo-1/docker.sock" in joined
    assert "--data-root /var/lib/kemu-lab/kemu-lab-demo-1/docker" in joined
    assert "--exec-root /run/kemu-lab/kemu-lab-demo-1/exec" in joined
    assert "--pidfile /run/kemu-lab/kemu-lab-demo-1/docker.pid" in joined


def test_lab_plans_nodes_without_touching_the_host() -> None:
    lab = Lab("demo", nodes=3)
    nodes = lab.planned_nodes()
    assert [n.netns for n in nodes] == [f"kemu-lab-demo-{i}" for i in (1, 2, 3)]
    assert [str(n.ip) for n in nodes] == ["198.18.250.11", "198.18.250.12", "198.18.250.13"]
    assert nodes[0].docker_host == "unix:///run/kemu-lab/kemu-lab-demo-1/docker.sock"
    assert lab.nodes == []
    with pytest.raises(ValueError):
        Lab("demo", nodes=0)
