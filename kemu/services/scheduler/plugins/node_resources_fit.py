"""NodeResourcesFit: the pod's requests must fit in the node's allocatable minus what the
pods already there (bound or assumed) request; among fitting nodes, LeastAllocated
prefers the emptier ones.

The arithmetic is in pure functions (`insufficient_reasons`, `least_allocated_score`) over
integers precomputed by the cache, after Kubernetes' noderesources/fit.go and
least_allocated.go: the pod count is checked against allocatable "pods", every resource
the pod requests (cpu, memory, ephemeral-storage, extended resources) against its
allocatable, and scoring uses the non-zero requests (100m / 200Mi for containers that
request nothing) of cpu and memory with equal weights.
"""

from __future__ import annotations

from collections.abc import Mapping

from kemu.services.scheduler import resources
from kemu.services.scheduler.framework import (
    MAX_NODE_SCORE,
    SUCCESS,
    CycleState,
    Status,
    Unschedulable,
)
from kemu.services.scheduler.nodeinfo import NodeInfo, PodInfo

NAME = "NodeResourcesFit"
TOO_MANY_PODS = "Too many pods"
SCORE_WEIGHTS = ((resources.CPU, 1), (resources.MEMORY, 1))


def reason_for(resource: str) -> str:
    return TOO_MANY_PODS if resource == resources.PODS else f"Insufficient {resource}"


def insufficient_reasons(requests: Mapping[str, int], usage: resources.Usage,
                         allocatable: Mapping[str, int]) -> list[str]:
    """kube-scheduler's reasons why the pod does not fit, or [] when it does."""
    return [reason_for(r) for r in resources.insufficient(requests, usage, allocatable)]


def least_allocated_score(non_zero_requests: Mapping[str, int], usage: resources.Usage,
                          allocatable: Mapping[str, int]) -> int:
    """Weighted mean over cpu and memory of the free share left after placing the pod."""
    used = {resources.CPU: usage.non_zero_cpu, resources.MEMORY: usage.non_zero_memory}
    total = weights = 0
    for name, weight in SCORE_WEIGHTS:
        requested = used[name] + non_zero_requests.get(name, 0)
        total += resources.least_allocated(requested, allocatable.get(name, 0),
                                           MAX_NODE_SCORE) * weight
        weights += weight
    return total // weights


class NodeResourcesFit:
    """Filter on requests vs free allocatable; score LeastAllocated."""

    name = NAME

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        reasons = insufficient_reasons(pod.requests, node.usage, node.allocatable)
        return Unschedulable(*reasons) if reasons else SUCCESS

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        return least_allocated_score(pod.non_zero_requests, node.usage, node.allocatable)
