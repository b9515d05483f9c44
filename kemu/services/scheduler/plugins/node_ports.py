"""NodePorts: a pod's host ports must be free on the node.

Two claims conflict when protocol and port are equal and either hostIP is the wildcard
0.0.0.0 or both are the same address, as in Kubernetes' HostPortInfo. The node's ports in
use are a running count kept by the cache, so the check is O(ports of the pod x ports in
use on the node) and nothing when the pod asks for none (the usual case).
"""

from __future__ import annotations

from collections.abc import Iterable

from kemu.services.scheduler.framework import SKIP, SUCCESS, CycleState, Status, Unschedulable
from kemu.services.scheduler.nodeinfo import ANY_IP, HostPort, NodeInfo, PodInfo

NAME = "NodePorts"
REASON = "node(s) didn't have free ports for the requested pod ports"


def conflicts(want: HostPort, used: Iterable[HostPort]) -> bool:
    protocol, ip, port = want
    for u_protocol, u_ip, u_port in used:
        if u_port == port and u_protocol == protocol and (
                ip in (ANY_IP, u_ip) or u_ip == ANY_IP):
            return True
    return False


def fits_ports(wanted: Iterable[HostPort], used: Iterable[HostPort]) -> bool:
    used = list(used)
    return not any(conflicts(w, used) for w in wanted)


class NodePorts:
    """Reject nodes where a requested host port is taken."""

    name = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status:
        return SUCCESS if pod.ports else SKIP

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        if not pod.ports or not node.used_ports:
            return SUCCESS
        return SUCCESS if fits_ports(pod.ports, node.used_ports) else Unschedulable(REASON)
