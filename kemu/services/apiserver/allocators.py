"""ClusterIP and NodePort allocation, held in the store as claim keys.

Each allocated address or port is one key, `/registry/ranges/serviceips/<ip>` or
`/registry/ranges/servicenodeports/<port>`, whose value is the owning Service's uid. The
claim is created in the same transaction as the Service (compare: key absent), so two
Services can never hold one address, even with several apiservers, and a delete frees
it in the same transaction. This is Kubernetes' newer IPAddress-object design.

As in Kubernetes, dynamic allocation prefers the upper part of each range, leaving the
lower band (10.96.0.0-10.96.0.255, ports 30000-30127) for values users ask for by hand,
such as the cluster DNS address 10.96.0.10.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field
from typing import Any

from kemu.services.apiserver.errors import FieldError, invalid

IP_PREFIX = "/registry/ranges/serviceips/"
PORT_PREFIX = "/registry/ranges/servicenodeports/"
DEFAULT_SERVICE_CIDR = ipaddress.IPv4Network("10.96.0.0/12")


@dataclass(frozen=True)
class Ranges:
    """The ranges the apiserver allocates from."""

    service_cidr: ipaddress.IPv4Network = DEFAULT_SERVICE_CIDR
    node_port_low: int = 30000
    node_port_high: int = 32767

    def static_ip_band(self) -> int:
        return min(max(16, self.service_cidr.num_addresses // 16), 256)

    def static_port_band(self) -> int:
        size = self.node_port_high - self.node_port_low + 1
        return min(max(16, size // 32), 128)


@dataclass
class Claims:
    """What a Service holds: wanted claims, and which of them the user asked for by value."""

    keys: dict[str, str] = field(default_factory=dict)  # claim key -> path for errors
    requested: set[str] = field(default_factory=set)


def wants_cluster_ip(spec: Any) -> bool:
    return bool(spec.type != "ExternalName" and spec.cluster_ip != "None")


def wants_node_ports(spec: Any) -> bool:
    return bool(spec.type in ("NodePort", "LoadBalancer"))


def check_requested(spec: Any, ranges: Ranges) -> list[FieldError]:
    """Values the user set must lie in the ranges."""
    errs: list[FieldError] = []
    if spec.cluster_ip and spec.cluster_ip != "None":
        try:
            ip = ipaddress.ip_address(spec.cluster_ip)
        except ValueError:
            ip = None
        if ip is not None and (ip not in ranges.service_cidr
                               or ip in (ranges.service_cidr.network_address,
                                         ranges.service_cidr.broadcast_address)):
            errs.append(invalid("spec.clusterIPs", [spec.cluster_ip],
                                f"failed to allocate IP {spec.cluster_ip}: the provided IP "
                                f"({spec.cluster_ip}) is not in the valid range. The range of "
                                f"valid IPs is {ranges.service_cidr}"))
    for i, port in enumerate(spec.ports):
        if port.node_port and not ranges.node_port_low <= port.node_port <= ranges.node_port_high:
            errs.append(invalid(f"spec.ports[{i}].nodePort", port.node_port,
                                f"provided port is not in the valid range. The range of valid "
                                f"ports is {ranges.node_port_low}-{ranges.node_port_high}"))
    return errs


def carry_over(new_spec: Any, old_spec: Any) -> None:
    """On update, keep allocated values the new spec leaves unset (as Kubernetes does)."""
    if wants_cluster_ip(new_spec) and wants_cluster_ip(old_spec) and not new_spec.cluster_ip:
        new_spec.cluster_ip = old_spec.cluster_ip
        del new_spec.cluster_ips[:]
        new_spec.cluster_ips.extend(old_spec.cluster_ips)
    if wants_node_ports(new_spec) and wants_node_ports(old_spec):
        old_ports = {(p.port, p.protocol): p.node_port for p in old_spec.ports}
        old_by_name = {p.name: p.node_port for p in old_spec.ports if p.name}
        for p in new_spec.ports:
            if not p.node_port:
                p.node_port = old_ports.get((p.port, p.protocol)) or old_by_name.get(p.name, 0)


def assign(spec: Any, ranges: Ranges, taken_ips: set[str], taken_ports: set[int],
           rng: random.Random) -> Claims:
    """Fill unset clusterIP and nodePorts with free values and list the claims to hold."""
    claims = Claims()
    if wants_cluster_ip(spec):
        if spec.cluster_ip:
            claims.requested.add(IP_PREFIX + spec.cluster_ip)
        else:
            spec.cluster_ip = _free_ip(ranges, taken_ips, rng)
        del spec.cluster_ips[:]
        spec.cluster_ips.append(spec.cluster_ip)
        claims.keys[IP_PREFIX + spec.cluster_ip] = "spec.clusterIPs"
    elif spec.cluster_ip == "None":
        del spec.cluster_ips[:]
        spec.cluster_ips.append("None")
    else:
        spec.cluster_ip = ""
        del spec.cluster_ips[:]
    if wants_node_ports(spec):
        used = {p.node_port for p in spec.ports if p.node_port}
        for i, p in enumerate(spec.ports):
            if p.node_port:
                if PORT_PREFIX + str(p.node_port) not in claims.keys:
                    claims.requested.add(PORT_PREFIX + str(p.node_port))
            else:
                p.node_port = _free_port(ranges, taken_ports | used, rng)
                used.add(p.node_port)
            claims.keys.setdefault(PORT_PREFIX + str(p.node_port), f"spec.ports[{i}].nodePort")
    else:
        for p in spec.ports:
            p.node_port = 0
    return claims


def _free_ip(ranges: Ranges, taken: set[str], rng: random.Random) -> str:
    net = ranges.service_cidr
    low = int(net.network_address) + ranges.static_ip_band()
    high = int(net.broadcast_address) - 1
    for _ in range(64):
        candidate = str(ipaddress.IPv4Address(rng.randint(low, high)))
        if candidate not in taken:
            return candidate
    for value in range(low, high + 1):  # nearly full: scan
        candidate = str(ipaddress.IPv4Address(value))
        if candidate not in taken:
            return candidate
    for value in range(int(net.network_address) + 1, low):
        candidate = str(ipaddress.IPv4Address(value))
        if candidate not in taken:
            return candidate
    raise RangeFull(f"range is full: no free ClusterIP in {net}")


def _free_port(ranges: Ranges, taken: set[int], rng: random.Random) -> int:
    low = ranges.node_port_low + ranges.static_port_band()
    candidates = [p for p in range(low, ranges.node_port_high + 1) if p not in taken]
    if not candidates:
        candidates = [p for p in range(ranges.node_port_low, low) if p not in taken]
    if not candidates:
        raise RangeFull(f"range is full: no free NodePort in "
                        f"{ranges.node_port_low}-{ranges.node_port_high}")
    return rng.choice(candidates)


class RangeFull(Exception):
    """Every address or port of a range is allocated."""
