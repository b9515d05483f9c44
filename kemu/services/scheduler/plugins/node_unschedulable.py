"""NodeUnschedulable: a cordoned node (spec.unschedulable) takes no new pods, unless the
pod tolerates the `node.kubernetes.io/unschedulable:NoSchedule` taint (DaemonSet pods do),
as in Kubernetes."""

from __future__ import annotations

from kemu.services.scheduler.framework import SUCCESS, CycleState, Status, Unschedulable
from kemu.services.scheduler.nodeinfo import NodeInfo, PodInfo
from kemu.services.scheduler.plugins.taint_toleration import tolerated

NAME = "NodeUnschedulable"
TAINT_KEY = "node.kubernetes.io/unschedulable"
REASON = "node(s) were unschedulable"


class NodeUnschedulable:
    """Reject cordoned nodes."""

    name = NAME

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        if not node.unschedulable:
            return SUCCESS
        if tolerated(pod.pod.spec.tolerations, TAINT_KEY, "", "NoSchedule"):
            return SUCCESS
        return Unschedulable(REASON)
