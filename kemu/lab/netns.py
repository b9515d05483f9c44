"""Network namespaces that play the lab's VMs, and the address plan of the lab /24.

Naming and addressing are pure functions (unit-tested); the rest shells out to `ip`.
Each node is a namespace `kemu-lab-<cluster>-<n>` with `lo` up and one veth whose inside
end is `eth0` (as on a VM) and whose other end is a port of the lab bridge, in the switch
namespace (see bridge.py for why the bridge is not in the host namespace). Namespaces
get no default route: nodes need no internet, and a packet must never leave toward the
host's uplink (DESIGN.md, "Safety").
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from kemu.lab._run import LabError, run

#: The default lab subnet: in 198.18.0.0/15, the range reserved for network testing
#: (RFC 2544), so it collides neither with Docker's default address pools (172.17-31/16,
#: 192.168/16, which other bridges on this dockerd draw from), nor with kemu's cluster and
#: service CIDRs (10.96/12, 10.244-255/16), nor with the usual LANs.
#: `check_subnet_free` verifies it on the host.
DEFAULT_SUBNET = "198.18.250.0/24"
#: Node n (1-based) gets host number FIRST_NODE_HOST + n - 1; .1 is the bridge.
FIRST_NODE_HOST = 11
NETNS_DIR = Path("/run/netns")
IFNAMSIZ = 15
_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def validate_cluster_name(cluster: str) -> None:
    """Reject names that would make odd paths or interface names (DNS-label style)."""
    if not _NAME_RE.match(cluster) or len(cluster) > 40:
        raise ValueError(f"lab name {cluster!r}: use 1-40 of [a-z0-9-], not starting with -")


def short_id(cluster: str, length: int = 6) -> str:
    """A stable short hash of the cluster name, for interface names capped at 15 chars."""
    return hashlib.sha256(cluster.encode()).hexdigest()[:length]


def netns_name(cluster: str, n: int) -> str:
    """The namespace of node n (1-based): `kemu-lab-<cluster>-<n>`."""
    validate_cluster_name(cluster)
    if n < 1:
        raise ValueError("nodes are numbered from 1")
    return f"kemu-lab-{cluster}-{n}"


def veth_port_name(cluster: str, n: int) -> str:
    """The switch end of node n's veth: `klv<hash6>-<n>`, within IFNAMSIZ (15)."""
    name = f"klv{short_id(cluster)}-{n}"
    if len(name) > IFNAMSIZ:
        raise ValueError(f"interface name {name!r} is longer than {IFNAMSIZ}")
    return name


@dataclass(frozen=True)
class AddressPlan:
    """Addresses in the lab /24: the bridge is .1, node n is .(10+n)."""

    subnet: ipaddress.IPv4Network

    @classmethod
    def parse(cls, subnet: str = DEFAULT_SUBNET) -> AddressPlan:
        """Parse and check a /24 (smaller would not hold a useful lab, larger is waste)."""
        net = ipaddress.IPv4Network(subnet, strict=True)
        if net.prefixlen != 24:
            raise ValueError(f"lab subnet {subnet} must be a /24")
        if not net.is_private:
            raise ValueError(f"lab subnet {subnet} must be private")
        return cls(net)

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        """The bridge's address (.1); nodes do not route through it, it only lets the
        host reach the nodes."""
        return self.subnet.network_address + 1

    @property
    def max_nodes(self) -> int:
        """How many nodes fit before the broadcast address."""
        return 254 - FIRST_NODE_HOST + 1

    def node_ip(self, n: int) -> ipaddress.IPv4Address:
        """Node n's (1-based) address."""
        if not 1 <= n <= self.max_nodes:
            raise ValueError(f"node {n} is outside 1..{self.max_nodes}")
        return self.subnet.network_address + FIRST_NODE_HOST + n - 1

    def node_cidr(self, n: int) -> str:
        """Node n's address with the prefix, as `ip addr add` wants it."""
        return f"{self.node_ip(n)}/{self.subnet.prefixlen}"


_ROUTE_TYPES = frozenset(
    {"unicast", "local", "broadcast", "multicast", "anycast", "unreachable", "blackhole",
     "prohibit", "throw", "nat"}
)


def routes_overlapping(subnet: ipaddress.IPv4Network, ip_route_output: str) -> list[str]:
    """The lines of `ip -4 route` whose destination overlaps `subnet` (default excluded)."""
    hits: list[str] = []
    for line in ip_route_output.splitlines():
        fields = line.split()
        if fields and fields[0] in _ROUTE_TYPES:
            fields = fields[1:]
        if not fields or fields[0] == "default":
            continue
        try:
            net = ipaddress.IPv4Network(fields[0], strict=False)
        except ValueError:
            continue
        if net.overlaps(subnet):
            hits.append(line)
    return hits


def check_subnet_free(subnet: ipaddress.IPv4Network) -> None:
    """Refuse to build a lab on a /24 that the host already routes somewhere."""
    hits = routes_overlapping(subnet, run(["ip", "-4", "route", "show", "table", "all"]))
    if hits:
        raise LabError(f"lab subnet {subnet} collides with host routes: {hits}")


def exists(name: str) -> bool:
    """Whether the named namespace exists (its bind mount under /run/netns)."""
    return (NETNS_DIR / name).exists()


def path(name: str) -> str:
    """The file nsenter --net= wants."""
    return str(NETNS_DIR / name)


def create(name: str, veth_port: str, address_cidr: str, switch_ns: str,
           switch_bridge: str) -> None:
    """Make the namespace with lo up and eth0 (address_cidr), whose peer `veth_port` is a
    port of `switch_bridge` in namespace `switch_ns`.

    The veth is created inside the switch namespace with its other end directly in the
    node's, so neither end ever appears in the host namespace. On failure, what was made
    is removed.
    """
    run(["ip", "netns", "add", name])
    try:
        run(["ip", "-n", switch_ns, "link", "add", veth_port, "type", "veth", "peer", "name",
             "eth0", "netns", name])
        run(["ip", "-n", switch_ns, "link", "set", veth_port, "master", switch_bridge])
        run(["ip", "-n", switch_ns, "link", "set", veth_port, "up"])
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        run(["ip", "-n", name, "addr", "add", address_cidr, "dev", "eth0"])
        run(["ip", "-n", name, "link", "set", "eth0", "up"])
    except BaseException:
        delete(name)
        raise


def delete(name: str) -> None:
    """Remove the namespace; idempotent. Its eth0 goes with it, and so the veth's port on
    the bridge."""
    if exists(name):
        run(["ip", "netns", "delete", name], check=False)
