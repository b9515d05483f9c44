"""NodeResourcesFit: the pod's requests must fit in the node's allocatable minus what the
pods already there (bound or assumed) request; among fitting nodes, LeastAllocated
prefers the emptier ones.

The arithmetic is in pure functions (`insufficient_reasons`, `least_allocated_score`) over
integers precomputed by the cache, after Kubernetes' noderesources/fit.go and
least_allocated.go: the pod count is checked against allocatable "pods", every resource
the pod requests (cpu, memory, ephemeral-storage, extended resources) against its
allocatable, and scoring uses the non-zero requests (100m / 200Mi for containers that
request nothing) of cpu and memory with equal weights. PreFilter/PreScore extract the
pod's side once per cycle, so the per-node work is a handful of integer operations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
_SCORE_STATE = NAME + "/score"


def reason_for(resource: str) -> str:
    return TOO_MANY_PODS if resource == resources.PODS else f"Insufficient {resource}"


def insufficient_reasons(requests: Mapping[str, int], usage: resources.Usage,
                         allocatable: Mapping[str, int]) -> list[str]:
    """kube-scheduler's reasons why the pod does not fit, or [] when it does."""
    ordered = resources.fit_order(requests)
    return [reason_for(r) for r in resources.insufficient(ordered, usage, allocatable)]


def least_allocated_cpu_memory(pod_cpu: int, pod_memory: int, usage: resources.Usage,
                               allocatable: Mapping[str, int]) -> int:
    """The mean of cpu's and memory's LeastAllocated scores (equal weights) after placing
    a pod with these non-zero requests."""
    cpu = resources.least_allocated(usage.non_zero_cpu + pod_cpu,
                                    allocatable.get(resources.CPU, 0), MAX_NODE_SCORE)
    memory = resources.least_allocated(usage.non_zero_memory + pod_memory,
                                       allocatable.get(resources.MEMORY, 0), MAX_NODE_SCORE)
    return (cpu + memory) // 2


def least_allocated_score(non_zero_requests: Mapping[str, int], usage: resources.Usage,
                          allocatable: Mapping[str, int]) -> int:
    return least_allocated_cpu_memory(non_zero_requests.get(resources.CPU, 0),
                                      non_zero_requests.get(resources.MEMORY, 0), usage,
                                      allocatable)


class NodeResourcesFit:
    """Filter on requests vs free allocatable; score LeastAllocated."""

    name = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status:
        state[NAME] = resources.fit_order(pod.requests)
        return SUCCESS

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        ordered = state.get(NAME)
        if ordered is None:
            ordered = state[NAME] = resources.fit_order(pod.requests)
        # The common case, a pod that fits, inline: this runs for hundreds of nodes per pod,
        # so it reads the node's running free amounts (allocatable minus requested).
        if node.free_pods > 0:
            free = node.free
            for name, want in ordered:
                if want > free.get(name, 0):
                    break
            else:
                return SUCCESS
        short = resources.insufficient(ordered, node.usage, node.allocatable)
        return Unschedulable(*map(reason_for, short)) if short else SUCCESS

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status:
        nz = pod.non_zero_requests
        state[_SCORE_STATE] = (nz.get(resources.CPU, 0), nz.get(resources.MEMORY, 0))
        return SUCCESS

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]
                    ) -> list[int]:
        """`score` for every node in one loop (the same arithmetic, inline)."""
        pod_cpu, pod_memory = state[_SCORE_STATE]
        out: list[int] = []
        append = out.append
        for node in nodes:
            usage = node.usage
            cpu_cap = node.allocatable_cpu
            cpu_req = usage.non_zero_cpu + pod_cpu
            cpu = (cpu_cap - cpu_req) * MAX_NODE_SCORE // cpu_cap \
                if cpu_cap > 0 and cpu_req <= cpu_cap else 0
            mem_cap = node.allocatable_memory
            mem_req = usage.non_zero_memory + pod_memory
            memory = (mem_cap - mem_req) * MAX_NODE_SCORE // mem_cap \
                if mem_cap > 0 and mem_req <= mem_cap else 0
            append((cpu + memory) // 2)
        return out

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        # One node at a time (the framework ranks all nodes with score_nodes): the pure
        # function that score_nodes inlines.
        pod_cpu, pod_memory = state[_SCORE_STATE]
        return least_allocated_cpu_memory(pod_cpu, pod_memory, node.usage, node.allocatable)
