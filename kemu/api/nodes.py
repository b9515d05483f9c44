"""Two questions every component asks of a Node: where is it, and is it Ready.

The agent's Service proxy (routes, LB election), the apiserver's proxy to agents,
`kemu service --url` and `kemu up` all read them the same way, as Kubernetes does: the
InternalIP address, and the Ready condition being "True".
"""

from __future__ import annotations

from kemu.api.v1 import core_pb2


def internal_ip(node: core_pb2.Node) -> str:
    """The node's InternalIP, or '' when it has not reported one."""
    return next((a.address for a in node.status.addresses if a.type == "InternalIP"), "")


def is_ready(node: core_pb2.Node) -> bool:
    """Whether the node's Ready condition is True."""
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
