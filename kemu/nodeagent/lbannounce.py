"""Announcing LoadBalancer addresses on one node, as MetalLB's layer-2 mode does.

The controller manager hands each LoadBalancer Service an address from its pool and writes
it to `status.loadBalancer.ingress`; every node's proxy has rules for that address, but
only one node must answer ARP for it. That node is chosen by rendezvous hashing over the
Ready nodes, so every agent reaches the same answer from the same Node list without talking
to the others, and a node going away moves only its own addresses.

The chosen node adds the address as a /32 to the interface that holds its node IP, with the
label `<iface>:klb`; the label is how `sync` and `cleanup` tell our addresses from others.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable

from kemu.nodeagent.podnetwork import CommandRunner, run_command

log = logging.getLogger(__name__)
LABEL_SUFFIX = ":klb"


def elected_node(service_key: str, nodes: Iterable[str]) -> str | None:
    """The node that announces `service_key`'s addresses: highest sha256(key, node)."""
    best: tuple[bytes, str] | None = None
    for node in nodes:
        score = hashlib.sha256(f"{service_key}\0{node}".encode()).digest()
        if best is None or score > best[0]:
            best = (score, node)
    return best[1] if best else None


class Announcer:
    """Keeps the set of announced addresses on this node equal to the wanted one."""

    def __init__(self, node_ip: str, run: CommandRunner = run_command) -> None:
        self.node_ip = node_ip
        self._run = run

    def _interfaces(self) -> list[dict[str, object]]:
        return list(json.loads(self._run(["ip", "-j", "-4", "addr", "show"]) or "[]"))

    def _node_interface(self, links: list[dict[str, object]]) -> str | None:
        for link in links:
            for a in link.get("addr_info", []) or []:  # type: ignore[attr-defined]
                if a.get("local") == self.node_ip:
                    return str(link["ifname"])
        return None

    def _ours(self, links: list[dict[str, object]]) -> dict[str, str]:
        """Announced address -> interface, found by label."""
        out: dict[str, str] = {}
        for link in links:
            for a in link.get("addr_info", []) or []:  # type: ignore[attr-defined]
                if str(a.get("label", "")).endswith(LABEL_SUFFIX):
                    out[str(a["local"])] = str(link["ifname"])
        return out

    def sync(self, wanted: Iterable[str]) -> None:
        """Add the wanted addresses, remove our others."""
        links = self._interfaces()
        ours = self._ours(links)
        want = set(wanted)
        iface = self._node_interface(links)
        if want and iface is None:
            log.warning("no interface holds node IP %s: load-balancer addresses %s are not "
                        "announced", self.node_ip, ", ".join(sorted(want)))
            want = set()
        for ip in sorted(want - set(ours)):
            label = f"{iface}{LABEL_SUFFIX}"
            self._run(["ip", "addr", "add", f"{ip}/32", "dev", str(iface), "label", label])
            log.info("announcing load-balancer address %s on %s", ip, iface)
        for ip, dev in sorted(ours.items()):
            if ip not in want:
                self._run(["ip", "addr", "del", f"{ip}/32", "dev", dev], check=False)
                log.info("no longer announcing %s", ip)

    def cleanup(self) -> list[str]:
        """Remove every announced address; the list of those removed."""
        ours = self._ours(self._interfaces())
        for ip, dev in sorted(ours.items()):
            self._run(["ip", "addr", "del", f"{ip}/32", "dev", dev], check=False)
        return sorted(ours)
