"""Node podCIDRs through real processes: distinct /24s, release on delete, no duplicates
across a controller-manager restart, pre-assigned CIDRs kept, exhaustion reported."""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Iterator

import pytest

from kemu.api import manifest
from kemu.api.v1 import core_pb2
from kemu.client import Client
from tests.conftest import Cluster
from tests.integration.controllers.conftest import controller_manager, delete_nodes, poll
from tests.support import processes

pytestmark = pytest.mark.integration
RANGE = ipaddress.IPv4Network("10.244.0.0/16")


@pytest.fixture
def clean_nodes(client: Client) -> Iterator[Client]:
    delete_nodes(client)
    try:
        yield client
    finally:
        delete_nodes(client)


def make_node(client: Client, name: str, pod_cidr: str = "") -> None:
    spec = {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]} if pod_cidr else {}
    client.create(manifest.from_dict({"apiVersion": "v1", "kind": "Node",
                                      "metadata": {"name": name}, "spec": spec}))


def cidrs(client: Client) -> dict[str, str]:
    return {o.node.metadata.name: o.node.spec.pod_cidr for o in client.list("nodes").items}


def wait_all_assigned(client: Client, timeout: float = 15.0) -> dict[str, str]:
    got: dict[str, str] = poll("every node to have a podCIDR",
                               lambda: (c := cidrs(client)) and all(c.values()) and c,
                               timeout)
    return got


def check_distinct_in_range(assigned: dict[str, str]) -> None:
    values = list(assigned.values())
    assert len(set(values)) == len(values), assigned
    for cidr in values:
        net = ipaddress.IPv4Network(cidr)
        assert net.prefixlen == 24 and net.subnet_of(RANGE), cidr


def test_distinct_cidrs_release_and_restart(cluster: Cluster, clean_nodes: Client) -> None:
    client = clean_nodes
    cm = controller_manager(cluster.tmp, cluster.server, "--controllers", "nodeipam")
    with processes.running(cm):
        for i in range(4):
            make_node(client, f"n{i}")
        assigned = wait_all_assigned(client)
        check_distinct_in_range(assigned)
        node = client.get("nodes", "n0").node
        assert list(node.spec.pod_cidrs) == [node.spec.pod_cidr]

        client.delete("nodes", "n1")
        make_node(client, "n4")
        after = wait_all_assigned(client)
        assert set(after) == {"n0", "n2", "n3", "n4"}
        check_distinct_in_range(after)
        assert all(after[n] == assigned[n] for n in ("n0", "n2", "n3"))
        assert cm.alive(), cm.tail()

    # Down: a node arrives meanwhile. A fresh process rebuilds the used set first.
    make_node(client, "n5")
    cm2 = controller_manager(cluster.tmp, cluster.server, "--controllers", "nodeipam")
    with processes.running(cm2):
        final = wait_all_assigned(client)
        assert len(final) == 5
        check_distinct_in_range(final)
        assert all(final[n] == after[n] for n in after)
        assert cm2.alive(), cm2.tail()


def test_pre_assigned_cidrs_are_kept_and_skipped(cluster: Cluster, clean_nodes: Client
                                                 ) -> None:
    client = clean_nodes
    make_node(client, "pre-a", "10.244.0.0/24")
    make_node(client, "pre-out", "192.168.7.0/24")
    cm = controller_manager(cluster.tmp, cluster.server, "--controllers", "nodeipam")
    with processes.running(cm):
        make_node(client, "fresh")
        assigned = wait_all_assigned(client)
        assert assigned["pre-a"] == "10.244.0.0/24"
        assert assigned["pre-out"] == "192.168.7.0/24"
        assert assigned["fresh"] not in ("10.244.0.0/24", "192.168.7.0/24")
        assert ipaddress.IPv4Network(assigned["fresh"]).subnet_of(RANGE)
        assert cm.alive(), cm.tail()


def test_exhausted_range_gives_event_then_recovers(cluster: Cluster, clean_nodes: Client
                                                   ) -> None:
    client = clean_nodes
    cm = controller_manager(cluster.tmp, cluster.server, "--controllers", "nodeipam",
                            "--cluster-cidr", "10.250.0.0/23", "--node-cidr-mask-size", "24")
    with processes.running(cm):
        make_node(client, "x0")
        make_node(client, "x1")
        wait_all_assigned(client)
        make_node(client, "x2")

        def event() -> list[core_pb2.Event]:
            return [o.event for o in client.list("events", "default").items
                    if o.event.involved_object.name == "x2"
                    and o.event.reason == "CIDRNotAvailable"]
        [ev] = poll("a CIDRNotAvailable event on x2", event)
        assert ev.type == "Warning" and ev.involved_object.kind == "Node"
        assert not client.get("nodes", "x2").node.spec.pod_cidr
        assert cm.alive(), cm.tail()

        freed = cidrs(client)["x0"]
        client.delete("nodes", "x0")
        got = poll("x2 to get the freed podCIDR",
                   lambda: client.get("nodes", "x2").node.spec.pod_cidr)
        assert got == freed
        assert cm.alive(), cm.tail()


@pytest.mark.parametrize(("args", "needle"), [
    pytest.param(["--apiserver", "nowhere"], "expected HOST:PORT", id="bad-address"),
    pytest.param(["--controllers", "endpoints,bogus"], "unknown controller 'bogus'",
                 id="unknown-controller"),
    pytest.param(["--cluster-cidr", "10.244.0.1/16"], "--cluster-cidr", id="host-bits"),
    pytest.param(["--node-cidr-mask-size", "8"], "between", id="bad-mask"),
    pytest.param(["--no-such-flag"], "unrecognized arguments", id="unknown-flag"),
])
def test_bad_flags_one_line(args: list[str], needle: str) -> None:
    result = subprocess.run([processes.PYTHON, "-m", "kemu.services.controllers", *args],
                            capture_output=True, text=True, timeout=60, cwd=processes.ROOT)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert result.stdout == ""
