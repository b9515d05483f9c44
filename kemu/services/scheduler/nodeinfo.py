"""Per-pod and per-node facts precomputed once, so that a scheduling cycle is cheap.

A cycle looks at every node for every pod; parsing quantities, walking containers or
counting pods there would make it O(nodes x pods). Instead a `PodInfo` is built once per
pod (effective requests, host ports, tolerations, spread key) and a `NodeInfo` keeps
running sums of the pods placed on it (requests, ports in use, pods per spread key),
updated as pods are added, assumed and removed. Plugins read these; they never walk the
pods of a node.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from kemu.api.v1 import core_pb2
from kemu.services.scheduler import resources

HostPort = tuple[str, str, int]  # (protocol, hostIP, port)
ANY_IP = "0.0.0.0"


def pod_key(pod: core_pb2.Pod) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def controller_uid(pod: core_pb2.Pod) -> str:
    """The uid of the pod's controlling owner (ReplicaSet, StatefulSet, Job...), or ''."""
    for ref in pod.metadata.owner_references:
        if ref.HasField("controller") and ref.controller:
            return ref.uid
    return ""


def spread_key(pod: core_pb2.Pod) -> str:
    """What makes pods "the same" for spreading: the controlling owner, else the exact
    label set within the namespace; '' (no spreading) for an unlabelled bare pod."""
    owner = controller_uid(pod)
    if owner:
        return f"owner:{owner}"
    labels = pod.metadata.labels
    if not labels:
        return ""
    items = ",".join(f"{k}={labels[k]}" for k in sorted(labels))
    return f"labels:{pod.metadata.namespace}:{items}"


def host_ports(spec: core_pb2.PodSpec) -> tuple[HostPort, ...]:
    """The host ports the pod's containers claim (protocol defaults to TCP, IP to any)."""
    out: list[HostPort] = []
    for c in spec.containers:
        for p in c.ports:
            if p.host_port > 0:
                out.append((p.protocol or "TCP", p.host_ip or ANY_IP, p.host_port))
    return tuple(out)


@dataclass(slots=True)
class PodInfo:
    """A pod with what the scheduler needs from it, computed once."""

    key: str
    pod: core_pb2.Pod
    requests: dict[str, int]
    non_zero_requests: dict[str, int]
    ports: tuple[HostPort, ...]
    spread: str

    @classmethod
    def of(cls, pod: core_pb2.Pod) -> PodInfo:
        """Build from a pod; raises quantity.QuantityError on a malformed request."""
        return cls(key=pod_key(pod), pod=pod,
                   requests=resources.pod_requests(pod.spec),
                   non_zero_requests=resources.pod_requests(pod.spec, non_zero=True),
                   ports=host_ports(pod.spec), spread=spread_key(pod))

    @property
    def uid(self) -> str:
        return self.pod.metadata.uid


def ready_status(node: core_pb2.Node) -> str:
    """The status of the node's Ready condition: True, False, Unknown, or '' if absent."""
    for cond in node.status.conditions:
        if cond.type == "Ready":
            return cond.status
    return ""


@dataclass(slots=True)
class NodeInfo:
    """A node and the running sums of the pods counted on it (bound or assumed).

    `present` is False while the cache knows pods bound to a node it has not seen (or no
    longer sees): their requests are kept, but the node is not offered to the filters."""

    name: str
    node: core_pb2.Node = field(default_factory=core_pb2.Node)
    present: bool = False
    allocatable: dict[str, int] = field(default_factory=dict)
    usage: resources.Usage = field(default_factory=resources.Usage)
    pods: dict[str, PodInfo] = field(default_factory=dict)
    used_ports: Counter[HostPort] = field(default_factory=Counter)
    spread_counts: Counter[str] = field(default_factory=Counter)
    ready: str = ""
    # Read by the filters for every pod: plain attributes, not protobuf field walks.
    unschedulable: bool = False
    taints: tuple[core_pb2.Taint, ...] = ()
    prefer_no_schedule: tuple[core_pb2.Taint, ...] = ()
    # allocatable minus requested, per resource named in either, and pods still allowed:
    # kept in step with `usage` so the fit check is one lookup per requested resource.
    free: dict[str, int] = field(default_factory=dict)
    free_pods: int = 0
    # allocatable cpu and memory, read by the LeastAllocated score of every feasible node.
    allocatable_cpu: int = 0
    allocatable_memory: int = 0

    def set_node(self, node: core_pb2.Node) -> None:
        self.node = node
        self.present = True
        self.allocatable = resources.node_allocatable(node.status)
        self.allocatable_cpu = self.allocatable.get(resources.CPU, 0)
        self.allocatable_memory = self.allocatable.get(resources.MEMORY, 0)
        self.ready = ready_status(node)
        self.unschedulable = node.spec.unschedulable
        self.taints = tuple(node.spec.taints)
        self.prefer_no_schedule = tuple(t for t in self.taints
                                        if t.effect == "PreferNoSchedule")
        self._recompute_free()

    def _recompute_free(self) -> None:
        allocatable, requested = self.allocatable, self.usage.requested
        self.free = {name: allocatable.get(name, 0) - requested.get(name, 0)
                     for name in allocatable.keys() | requested.keys()}
        self.free_pods = allocatable.get(resources.PODS, 0) - self.usage.pods

    @property
    def labels(self) -> Mapping[str, str]:
        return self.node.metadata.labels

    def add_pod(self, info: PodInfo) -> None:
        if info.key in self.pods:
            self.remove_pod(info.key)
        self.pods[info.key] = info
        self.usage.add(info.requests, info.non_zero_requests)
        free = self.free
        for name, value in info.requests.items():
            free[name] = free.get(name, 0) - value
        self.free_pods -= 1
        self.used_ports.update(info.ports)
        if info.spread:
            self.spread_counts[info.spread] += 1

    def remove_pod(self, key: str) -> PodInfo | None:
        info = self.pods.pop(key, None)
        if info is None:
            return None
        self.usage.add(info.requests, info.non_zero_requests, sign=-1)
        free = self.free
        for name, value in info.requests.items():
            free[name] = free.get(name, 0) + value
        self.free_pods += 1
        self.used_ports.subtract(info.ports)
        for port in info.ports:
            if self.used_ports[port] <= 0:
                del self.used_ports[port]
        if info.spread:
            self.spread_counts[info.spread] -= 1
            if self.spread_counts[info.spread] <= 0:
                del self.spread_counts[info.spread]
        return info
