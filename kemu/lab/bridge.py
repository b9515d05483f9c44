"""The lab "switch": a Linux bridge in its own namespace, and the host's port on it.

Why a namespace of its own: with br_netfilter loaded and `bridge-nf-call-iptables=1` (as
Docker sets it on the host), every frame bridged in the host namespace goes through the
host's iptables FORWARD chain, whose policy Docker sets to DROP. Node-to-node traffic
would then need an ACCEPT rule in the host's tables, which the lab must never add. In a
namespace of its own the bridge sees that namespace's (empty, ACCEPT) tables; the
br_netfilter sysctls are per namespace on current kernels.

The host gets one veth into the switch, `kemulab-<hash7>` with the lab's .1, so tests and
a registry on the host can reach the nodes. Host-originated traffic takes OUTPUT/INPUT,
never FORWARD, and no route or NAT toward the uplink is added anywhere.
"""

from __future__ import annotations

from pathlib import Path

from kemu.lab._run import run
from kemu.lab.netns import IFNAMSIZ, short_id, validate_cluster_name

#: The bridge's name inside the switch namespace (it is alone there).
SWITCH_BRIDGE = "br0"
#: The switch end of the host's veth.
SWITCH_UPLINK = "host0"


def bridge_name(cluster: str) -> str:
    """The host's port on the lab: `kemulab-<hash7>`, exactly 15 characters (IFNAMSIZ)."""
    validate_cluster_name(cluster)
    name = f"kemulab-{short_id(cluster, 7)}"
    assert len(name) <= IFNAMSIZ
    return name


def switch_netns_name(cluster: str) -> str:
    """The namespace that holds the lab bridge: `kemu-lab-<cluster>-sw`."""
    validate_cluster_name(cluster)
    return f"kemu-lab-{cluster}-sw"


def link_exists(name: str) -> bool:
    """Whether a link of this name exists in the host namespace."""
    return Path(f"/sys/class/net/{name}").exists()


def netns_exists(name: str) -> bool:
    """Whether the named namespace exists."""
    return Path(f"/run/netns/{name}").exists()


def create(cluster: str, gateway_cidr: str) -> None:
    """Make the switch namespace with its bridge up, and the host's port with .1; undo on
    failure."""
    sw = switch_netns_name(cluster)
    host_if = bridge_name(cluster)
    run(["ip", "netns", "add", sw])
    try:
        run(["ip", "-n", sw, "link", "set", "lo", "up"])
        run(["ip", "-n", sw, "link", "add", SWITCH_BRIDGE, "type", "bridge"])
        run(["ip", "-n", sw, "link", "set", SWITCH_BRIDGE, "up"])
        run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", SWITCH_UPLINK,
             "netns", sw])
        run(["ip", "-n", sw, "link", "set", SWITCH_UPLINK, "master", SWITCH_BRIDGE])
        run(["ip", "-n", sw, "link", "set", SWITCH_UPLINK, "up"])
        run(["ip", "addr", "add", gateway_cidr, "dev", host_if])
        run(["ip", "link", "set", host_if, "up"])
    except BaseException:
        delete(cluster)
        raise


def delete(cluster: str) -> None:
    """Remove the switch namespace (which destroys the bridge and every veth end in it, and
    so the host's port) and the host's port explicitly if it survived; idempotent."""
    sw = switch_netns_name(cluster)
    host_if = bridge_name(cluster)
    if netns_exists(sw):
        run(["ip", "netns", "delete", sw], check=False)
    if link_exists(host_if):
        run(["ip", "link", "delete", host_if], check=False)
