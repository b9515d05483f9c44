"""The host-gw pod network on one node: routes, forwarding, masquerade and safety routes.

What a host-gw network plugin (flannel's host-gw backend) does, with kemu's additions:

- every other node's podCIDR is routed via that node's InternalIP, so pod-to-pod traffic
  crosses nodes unchanged (no overlay, no NAT);
- `DOCKER-USER` accepts traffic from and to the cluster CIDR, because Docker's FORWARD
  chain would drop a new connection entering its bridge from another interface;
- pods leaving the cluster CIDR are masqueraded by our own `KEMUNET-MASQ` chain (the
  agent makes its Docker network with Docker's masquerade off), so traffic between pods
  keeps the source pod IP, as in Kubernetes;
- `unreachable` routes for the cluster and service CIDRs: more specific routes (the local
  bridge, other nodes' podCIDRs) and DNAT still win, but no packet for those ranges can
  fall through to the default route and leave the machine;
- packets the node itself sends to the service CIDR are looked up in a table of their own
  (`ip rule ... iif lo`) that routes them to `lo`, since an unreachable route would fail
  `connect()` before the OUTPUT chain's DNAT to a ClusterIP ever ran. A packet for an
  address that is no Service loops back and is dropped as a martian: it never leaves.
  (kube-proxy's IPVS mode uses a dummy interface for this; containers often lack the
  dummy module, and `lo` needs none.)

Everything is tagged so that `cleanup` removes exactly what the agent made: routes carry
routing protocol `ROUTE_PROTO`, the policy rule has priority `RULE_PRIORITY`, iptables
rules carry the comment `kemu pod network`.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

ROUTE_PROTO = "76"
"""Routing protocol number on every route the agent adds (76 is unassigned in rt_protos)."""
RULE_PRIORITY = "7600"
SERVICE_TABLE = "7600"
MASQ_CHAIN = "KEMUNET-MASQ"
COMMENT = "kemu pod network"


class CommandError(Exception):
    """A network command failed; the message carries its stderr."""


class CommandRunner(Protocol):
    """Runs one command (ip, iptables) in the agent's network namespace."""

    def __call__(self, argv: Sequence[str], *, check: bool = True,
                 stdin: str | None = None) -> str: ...


def run_command(argv: Sequence[str], *, check: bool = True, stdin: str | None = None) -> str:
    """The real runner: subprocess, 30 s at most, stderr in the error."""
    try:
        done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CommandError(f"{argv[0]}: {e}") from e
    if check and done.returncode != 0:
        raise CommandError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


@dataclass(frozen=True)
class PeerNode:
    """Another node as the route table needs it."""

    name: str
    ip: str
    pod_cidr: str


@dataclass(frozen=True)
class PodNetworkConfig:
    cluster_cidr: str
    service_cidr: str
    node_name: str
    node_ip: str


def desired_routes(config: PodNetworkConfig, peers: Iterable[PeerNode]) -> dict[str, str]:
    """podCIDR -> gateway for every other node whose podCIDR lies in the cluster CIDR.

    Nodes on this node's own IP (several clusters' nodes on one machine, or a node that has
    not reported an address yet) get no route: their pods are reached on local bridges.
    """
    cluster = ipaddress.ip_network(config.cluster_cidr, strict=False)
    out: dict[str, str] = {}
    for peer in peers:
        if peer.name == config.node_name or not peer.ip or not peer.pod_cidr:
            continue
        if peer.ip == config.node_ip or ipaddress.ip_address(peer.ip).is_loopback:
            continue
        try:
            net = ipaddress.ip_network(peer.pod_cidr, strict=False)
        except ValueError:
            continue
        if net.version == 4 and net.subnet_of(cluster):  # type: ignore[arg-type]
            out[str(net)] = peer.ip
    return out


def _iptables_rules(config: PodNetworkConfig) -> list[tuple[str, str, list[str]]]:
    """(table, chain, rule spec) of every iptables rule the pod network needs."""
    cluster = config.cluster_cidr
    tag = ["-m", "comment", "--comment", COMMENT]
    return [
        ("filter", "DOCKER-USER", ["-s", cluster, *tag, "-j", "ACCEPT"]),
        ("filter", "DOCKER-USER", ["-d", cluster, *tag, "-j", "ACCEPT"]),
        ("nat", "POSTROUTING", [*tag, "-j", MASQ_CHAIN]),
    ]


class PodNetwork:
    """Keeps this node's routes and rules for the pod network; `cleanup` undoes them."""

    def __init__(self, config: PodNetworkConfig, run: CommandRunner = run_command) -> None:
        self.config = config
        self._run = run
        self._routes: dict[str, str] | None = None

    # --- static part: once at start, and again on every resync (it is idempotent) ---

    def ensure_static(self, pod_cidr: str) -> None:
        """Safety routes, the service table, DOCKER-USER and masquerade rules."""
        cfg = self.config
        for cidr in (cfg.cluster_cidr, cfg.service_cidr):
            self._run(["ip", "route", "replace", "unreachable", cidr, "proto", ROUTE_PROTO])
        self._ensure_service_table()
        self._ensure_masq_chain(pod_cidr)
        for table, chain, spec in _iptables_rules(cfg):
            if table == "filter" and not self._chain_exists(table, chain):
                log.warning("iptables chain %s is missing (is Docker's iptables management "
                            "off?): cross-node pod traffic may be dropped", chain)
                continue
            if self._rule_exists(table, chain, spec):
                continue
            self._run(["iptables", "-w", "5", "-t", table, "-I", chain, "1", *spec]
                      if table == "filter" else
                      ["iptables", "-w", "5", "-t", table, "-A", chain, *spec])

    def _rule_exists(self, table: str, chain: str, spec: list[str]) -> bool:
        try:
            self._run(["iptables", "-w", "5", "-t", table, "-C", chain, *spec])
        except CommandError:
            return False
        return True

    def _chain_exists(self, table: str, chain: str) -> bool:
        try:
            self._run(["iptables", "-w", "5", "-t", table, "-S", chain])
        except CommandError:
            return False
        return True

    def _ensure_masq_chain(self, pod_cidr: str) -> None:
        """`KEMUNET-MASQ`: masquerade this node's pods when they leave the cluster CIDR.

        Written with one iptables-restore, so the chain is never seen half-full."""
        lines = ["*nat", f":{MASQ_CHAIN} - [0:0]"]
        if pod_cidr:
            lines.append(f"-A {MASQ_CHAIN} -s {pod_cidr} ! -d {self.config.cluster_cidr} "
                         f'-m comment --comment "{COMMENT}" -j MASQUERADE')
        lines.append("COMMIT")
        self._run(["iptables-restore", "-w", "5", "--noflush"], stdin="\n".join(lines) + "\n")

    def _ensure_service_table(self) -> None:
        cfg = self.config
        self._run(["ip", "route", "replace", cfg.service_cidr, "dev", "lo", "table",
                   SERVICE_TABLE, "proto", ROUTE_PROTO])
        rules = self._run(["ip", "-j", "rule", "show", "priority", RULE_PRIORITY])
        if not json.loads(rules or "[]"):
            self._run(["ip", "rule", "add", "priority", RULE_PRIORITY, "to", cfg.service_cidr,
                       "iif", "lo", "lookup", SERVICE_TABLE])

    # --- hairpin ---

    def ensure_hairpin(self, pod_cidr: str) -> int:
        """Hairpin mode on every port of the pod bridge, as the kubelet's hairpin-veth.

        A pod reaching itself through its Service sends a frame that the bridge, after the
        DNAT, must send back out of the port it came in on; a bridge port does that only
        in hairpin mode. Returns the number of ports switched on."""
        bridge = self._bridge_for(pod_cidr)
        if bridge is None:
            return 0
        ports = json.loads(self._run(["ip", "-j", "-d", "link", "show", "master", bridge],
                                     check=False) or "[]")
        changed = 0
        for port in ports:
            slave = (port.get("linkinfo") or {}).get("info_slave_data") or {}
            if not slave.get("hairpin", False):
                self._run(["ip", "link", "set", "dev", port["ifname"], "type", "bridge_slave",
                           "hairpin", "on"], check=False)
                changed += 1
        return changed

    def _bridge_for(self, pod_cidr: str) -> str | None:
        if not pod_cidr:
            return None
        net = ipaddress.ip_network(pod_cidr, strict=False)
        for link in json.loads(self._run(["ip", "-j", "-4", "addr", "show"]) or "[]"):
            for a in link.get("addr_info", []):
                if a.get("local") and ipaddress.ip_address(a["local"]) in net:
                    return str(link["ifname"])
        return None

    # --- routes to the other nodes ---

    def sync_routes(self, peers: Iterable[PeerNode]) -> bool:
        """Make the peer routes equal to the desired ones; True when something changed."""
        want = desired_routes(self.config, peers)
        have = self._routes if self._routes is not None else self._current_routes()
        changed = False
        for cidr, via in want.items():
            if have.get(cidr) != via:
                self._run(["ip", "route", "replace", cidr, "via", via, "proto", ROUTE_PROTO])
                log.info("pod network: route %s via %s", cidr, via)
                changed = True
        for cidr in set(have) - set(want):
            self._run(["ip", "route", "del", cidr, "proto", ROUTE_PROTO], check=False)
            log.info("pod network: route %s removed", cidr)
            changed = True
        self._routes = want
        return changed

    def _current_routes(self) -> dict[str, str]:
        out = self._run(["ip", "-j", "route", "show", "proto", ROUTE_PROTO])
        routes: dict[str, str] = {}
        for r in json.loads(out or "[]"):
            if r.get("gateway") and r.get("type", "unicast") == "unicast":
                routes[r["dst"]] = r["gateway"]
        return routes

    # --- removal ---

    def cleanup(self) -> list[str]:
        """Remove every route, rule, chain and interface the pod network added; returns a
        line per kind of thing removed. Works from what the kernel has."""
        done: list[str] = []
        out = self._run(["ip", "-j", "route", "show", "table", "all", "proto", ROUTE_PROTO],
                        check=False)
        for r in json.loads(out or "[]"):
            argv = ["ip", "route", "del"]
            if r.get("type") and r["type"] != "unicast":
                argv.append(r["type"])
            argv.append(r["dst"])
            if r.get("table") and r["table"] != "main":
                argv += ["table", str(r["table"])]
            argv += ["proto", ROUTE_PROTO]
            self._run(argv, check=False)
            done.append(f"route {r['dst']}")
        while json.loads(self._run(["ip", "-j", "rule", "show", "priority", RULE_PRIORITY],
                                   check=False) or "[]"):
            self._run(["ip", "rule", "del", "priority", RULE_PRIORITY])
            done.append("ip rule")
        for table in ("filter", "nat"):
            saved = self._run(["iptables-save", "-t", table], check=False)
            for line in saved.splitlines():
                if line.startswith("-A ") and COMMENT in line:
                    chain = line.split()[1]
                    if chain == MASQ_CHAIN:
                        continue
                    spec = _split_rule(line)[2:]
                    self._run(["iptables", "-w", "5", "-t", table, "-D", chain, *spec],
                              check=False)
                    done.append(f"rule {table}/{chain}")
        if self._chain_exists("nat", MASQ_CHAIN):
            self._run(["iptables", "-w", "5", "-t", "nat", "-F", MASQ_CHAIN], check=False)
            self._run(["iptables", "-w", "5", "-t", "nat", "-X", MASQ_CHAIN], check=False)
            done.append(f"chain {MASQ_CHAIN}")
        self._routes = None
        return done


def _split_rule(line: str) -> list[str]:
    """An iptables-save line as argv words (comments are double-quoted there)."""
    import shlex

    return shlex.split(line)
