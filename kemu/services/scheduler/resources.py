"""Resource arithmetic: what a pod requests and what a node offers, as integers.

Kept apart from the plugins because the cache needs the same numbers (every pod's effective
request is computed once, when the pod enters the cache, and summed per node), and because
Kubernetes' rules for init containers and sidecars are subtle enough to deserve their own
table-driven tests. CPU is counted in millicores; every other resource (memory,
ephemeral-storage, extended resources such as example.com/gpu) in whole units, rounded up,
as Kubernetes' `Quantity.Value()` does.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kemu.api import quantity
from kemu.api.v1 import core_pb2

CPU = "cpu"
MEMORY = "memory"
PODS = "pods"
EPHEMERAL_STORAGE = "ephemeral-storage"

# Kubernetes' defaults for containers that request nothing, used for scoring only
# (pkg/scheduler/util: DefaultMilliCPURequest, DefaultMemoryRequest).
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024


@functools.lru_cache(maxsize=4096)
def amount(resource: str, text: str) -> int:
    """One quantity as an integer: millicores for cpu, whole units for the rest."""
    if resource == CPU:
        return quantity.millicores(text)
    return quantity.to_bytes(text)


def parse_list(resources: Mapping[str, str]) -> dict[str, int]:
    """A ResourceList (`{"cpu": "500m", "memory": "128Mi"}`) as integers."""
    return {name: amount(name, text) for name, text in resources.items()}


def add(total: dict[str, int], more: Mapping[str, int]) -> None:
    """total += more, per resource."""
    for name, value in more.items():
        total[name] = total.get(name, 0) + value


def max_into(total: dict[str, int], other: Mapping[str, int]) -> None:
    """total = max(total, other), per resource."""
    for name, value in other.items():
        if value > total.get(name, 0):
            total[name] = value


def _container_requests(c: core_pb2.Container, *, non_zero: bool) -> dict[str, int]:
    req = parse_list(c.resources.requests)
    if non_zero:
        req.setdefault(CPU, DEFAULT_MILLI_CPU_REQUEST)
        req.setdefault(MEMORY, DEFAULT_MEMORY_REQUEST)
    return req


def _is_sidecar(c: core_pb2.Container) -> bool:
    return c.HasField("restart_policy") and c.restart_policy == "Always"


def pod_requests(spec: core_pb2.PodSpec, *, non_zero: bool = False) -> dict[str, int]:
    """The pod's effective requests, as Kubernetes computes them (`resourcehelper.PodRequests`).

    The app containers run together, so their requests add up. Init containers run one at a
    time before them, so only the largest counts, unless it is larger than the app
    containers' sum. Sidecars (init containers with restartPolicy Always) keep running:
    they add to the app containers and to every init container started after them.
    Pod overhead is added on top; pod-level `spec.resources.requests` (cpu, memory) replace
    the containers' sum. With `non_zero`, containers that request no cpu or memory count as
    100m and 200Mi, which is what the scoring plugins use so that BestEffort pods still
    spread.
    """
    reqs: dict[str, int] = {}
    for c in spec.containers:
        add(reqs, _container_requests(c, non_zero=non_zero))
    sidecars: dict[str, int] = {}
    init_max: dict[str, int] = {}
    for c in spec.init_containers:
        creq = _container_requests(c, non_zero=non_zero)
        if _is_sidecar(c):
            add(reqs, creq)
            add(sidecars, creq)
            step = dict(sidecars)
        else:
            step = dict(creq)
            add(step, sidecars)
        max_into(init_max, step)
    max_into(reqs, init_max)
    pod_level = parse_list(spec.resources.requests)
    for name in (CPU, MEMORY):
        if name in pod_level:
            reqs[name] = pod_level[name]
    add(reqs, parse_list(spec.overhead))
    return reqs


def node_allocatable(status: core_pb2.NodeStatus) -> dict[str, int]:
    """What the node offers: status.allocatable, falling back per resource to capacity
    (the kubelet's allocatable is capacity minus reservations, so capacity is the honest
    default when a node reports only that). Unparsable values count as zero."""
    out: dict[str, int] = {}
    for source in (status.capacity, status.allocatable):
        for name, text in source.items():
            try:
                out[name] = amount(name, text)
            except quantity.QuantityError:
                out[name] = 0
    return out


@dataclass(slots=True)
class Usage:
    """Requests summed over the pods on a node; `non_zero_*` are the scoring sums."""

    requested: dict[str, int] = field(default_factory=dict)
    non_zero_cpu: int = 0
    non_zero_memory: int = 0
    pods: int = 0

    def add(self, requests: Mapping[str, int], non_zero: Mapping[str, int], sign: int = 1
            ) -> None:
        for name, value in requests.items():
            self.requested[name] = self.requested.get(name, 0) + sign * value
        self.non_zero_cpu += sign * non_zero.get(CPU, 0)
        self.non_zero_memory += sign * non_zero.get(MEMORY, 0)
        self.pods += sign


def fit_order(requests: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    """The requests a fit check looks at: non-zero ones (a resource the pod requests none
    of never fails, as in Kubernetes), cpu, memory and ephemeral-storage first, then the
    rest by name, which is the order kube-scheduler reports them in."""
    first = (CPU, MEMORY, EPHEMERAL_STORAGE)
    rest = sorted(set(requests) - set(first) - {PODS})
    return tuple((name, requests[name]) for name in (*first, *rest)
                 if requests.get(name, 0) > 0)


def insufficient(ordered: Sequence[tuple[str, int]], usage: Usage,
                 allocatable: Mapping[str, int]) -> list[str]:
    """The resources the pod does not fit in: "pods" first when the node is full, then
    those of `ordered` (see fit_order) that exceed what is left."""
    short: list[str] = []
    if usage.pods + 1 > allocatable.get(PODS, 0):
        short.append(PODS)
    requested = usage.requested
    for name, want in ordered:
        if want > allocatable.get(name, 0) - requested.get(name, 0):
            short.append(name)
    return short


def least_allocated(requested: int, allocatable: int, max_score: int = 100) -> int:
    """Kubernetes' LeastAllocated score of one resource: the free share after placing the
    pod, 0..max_score; a node with nothing to give, or overcommitted, scores 0."""
    if allocatable <= 0 or requested > allocatable:
        return 0
    return (allocatable - requested) * max_score // allocatable
