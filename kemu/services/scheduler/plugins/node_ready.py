"""NodeReady: only nodes whose Ready condition is True take new pods.

Kubernetes gets this effect from taints that the node lifecycle controller puts on nodes
(`node.kubernetes.io/not-ready` when Ready is False or missing, `.../unreachable` when it
is Unknown); kemu checks the condition directly so that it holds even before a controller
has tainted the node, and honours the same tolerations, so DaemonSet-style pods that
tolerate those taints still land on a not-ready node.
"""

from __future__ import annotations

from kemu.services.scheduler.framework import SUCCESS, CycleState, Status, Unschedulable
from kemu.services.scheduler.nodeinfo import NodeInfo, PodInfo
from kemu.services.scheduler.plugins.taint_toleration import tolerated

NAME = "NodeReady"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
REASON = "node(s) were not ready"


class NodeReady:
    """Reject nodes whose Ready condition is not True."""

    name = NAME

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        if node.ready == "True":
            return SUCCESS
        key = UNREACHABLE_TAINT if node.ready == "Unknown" else NOT_READY_TAINT
        if tolerated(pod.pod.spec.tolerations, key, "", "NoSchedule"):
            return SUCCESS
        return Unschedulable(REASON)
