"""The Proxier against the real iptables-restore and iptables-save, in a throwaway netns."""

from __future__ import annotations

import pytest

from kemu.nodeagent.proxy import (
    EndpointInfo,
    Proxier,
    ProxyConfig,
    ServicePortInfo,
    SubprocessIptables,
    render,
)
from kemu.nodeagent.proxy import chains as ch
from kemu.nodeagent.proxy.render import JUMPS

pytestmark = pytest.mark.e2e

CFG = ProxyConfig(cluster_cidr="10.244.0.0/16", node_ips=("192.168.1.10",))
WEB = ServicePortInfo(
    "default",
    "web",
    "http",
    "TCP",
    "10.96.0.10",
    80,
    node_port=30080,
    external_ips=("192.0.2.10",),
    load_balancer_ips=("203.0.113.5",),
    affinity_timeout=600,
)
DNS = ServicePortInfo("kube-system", "kube-dns", "dns", "UDP", "10.96.0.53", 53)
EMPTY = ServicePortInfo("default", "empty", "", "TCP", "10.96.0.99", 80, node_port=30099)
LOCAL = ServicePortInfo(
    "default", "local", "", "TCP", "10.96.0.12", 80, node_port=30012, external_policy_local=True
)
REMOTE_ONLY = ServicePortInfo(
    "default", "remote", "", "TCP", "10.96.0.13", 80, node_port=30013, external_policy_local=True
)
SERVICES = [WEB, DNS, EMPTY, LOCAL, REMOTE_ONLY]
ENDPOINTS = {
    REMOTE_ONLY.key: [EndpointInfo("10.244.2.9", 80)],
    WEB.key: [EndpointInfo(f"10.244.0.{i}", 8080) for i in (5, 6, 7)],
    DNS.key: [EndpointInfo("10.244.0.3", 53)],
    LOCAL.key: [EndpointInfo("10.244.0.9", 80, is_local=True), EndpointInfo("10.244.1.9", 80)],
}


def rules(ipt: SubprocessIptables) -> set[str]:
    return {
        line
        for table in ("nat", "filter")
        for line in ipt.save(table).splitlines()
        if line.startswith("-A ")
    }


def our_chains(ipt: SubprocessIptables) -> set[str]:
    return {
        line[1:].split(" ", 1)[0]
        for table in ("nat", "filter")
        for line in ipt.save(table).splitlines()
        if line.startswith(":KEMU-")
    }


def test_apply_reads_back_exactly_and_resync_is_idempotent(netns: str) -> None:
    ipt = SubprocessIptables(netns=netns)
    proxier = Proxier(ipt, CFG)
    first = proxier.sync(SERVICES, ENDPOINTS)
    assert first.jumps_added == len(JUMPS)

    text = render(SERVICES, ENDPOINTS, node_ips=CFG.node_ips, cluster_cidr=CFG.cluster_cidr)
    written = {line for line in text.splitlines() if line.startswith("-A ")}
    present = rules(ipt)
    # Every rule reads back exactly as rendered (the renderer writes iptables-save's form).
    assert written <= present
    assert {j.rule for j in JUMPS} <= present
    assert ch.svc_chain(WEB.key, "tcp") in our_chains(ipt)
    assert ch.ext_chain(WEB.key, "tcp") in our_chains(ipt)

    second = proxier.sync(SERVICES, ENDPOINTS)
    assert second.jumps_added == 0
    assert second.deleted == ()
    assert rules(ipt) == present  # no duplicated jumps, nothing else changed


def test_removed_service_chains_are_deleted(netns: str) -> None:
    ipt = SubprocessIptables(netns=netns)
    proxier = Proxier(ipt, CFG)
    proxier.sync(SERVICES, ENDPOINTS)
    web_chains = {c for c in our_chains(ipt) if c.endswith(ch.port_proto_hash(WEB.key, "tcp"))}
    web_chains |= {ch.sep_chain(WEB.key, "tcp", ep.address) for ep in ENDPOINTS[WEB.key]}
    assert web_chains <= our_chains(ipt)

    result = proxier.sync([DNS, EMPTY, LOCAL, REMOTE_ONLY], ENDPOINTS)
    assert set(result.deleted) == web_chains
    left = our_chains(ipt)
    assert not (web_chains & left)
    assert ch.svc_chain(DNS.key, "udp") in left
    assert not any(WEB.key in r for r in rules(ipt))


def test_endpoints_going_away_turn_into_reject(netns: str) -> None:
    ipt = SubprocessIptables(netns=netns)
    proxier = Proxier(ipt, CFG)
    proxier.sync([WEB], ENDPOINTS)
    proxier.sync([WEB], {})
    present = rules(ipt)
    assert any("has no endpoints" in r and "REJECT" in r for r in present)
    assert not any(c.startswith(ch.SVC) or c.startswith(ch.SEP) for c in our_chains(ipt))


def test_cleanup_removes_every_chain_and_jump(netns: str) -> None:
    ipt = SubprocessIptables(netns=netns)
    proxier = Proxier(ipt, CFG)
    proxier.sync(SERVICES, ENDPOINTS)
    # A rule of someone else's in a built-in chain must survive.
    ipt.restore("*filter\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n")
    removed = proxier.cleanup()
    assert ch.SERVICES in removed
    assert our_chains(ipt) == set()
    assert not any("KEMU" in r for r in rules(ipt))
    assert "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT" in rules(ipt)
    # Cleaning up a clean table is a no-op, not an error.
    assert proxier.cleanup() == []
