"""NodeName: a pod that names its node (spec.nodeName) fits only that node.

Such pods are not the scheduler's to place at all (the queue skips them, as
kube-scheduler does); the filter remains so that the framework gives the right answer
for any pod it is handed, e.g. in simulations and tests.
"""

from __future__ import annotations

from kemu.api.v1 import core_pb2
from kemu.services.scheduler.framework import SKIP, SUCCESS, CycleState, Status, Unschedulable
from kemu.services.scheduler.nodeinfo import NodeInfo, PodInfo

NAME = "NodeName"
REASON = "node(s) didn't match the requested node name"


def is_assigned(pod: core_pb2.Pod) -> bool:
    """The pod already has a node: the scheduler leaves it alone."""
    return bool(pod.spec.node_name)


class NodeName:
    """Reject every node but the one the pod names."""

    name = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status:
        return SUCCESS if pod.pod.spec.node_name else SKIP

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        wanted = pod.pod.spec.node_name
        if not wanted or wanted == node.name:
            return SUCCESS
        return Unschedulable(REASON)
