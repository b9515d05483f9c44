"""A DaemonSet sync's arithmetic, as pure functions of nodes, pods and a time.

`node_plan` is Kubernetes' `podsShouldBeOnNode`: create where a pod should run and none
exists (terminating ones count as existing: the new pod waits until the old is gone),
delete failed and succeeded pods and all but the oldest of duplicates, and delete every
pod on a node where it may no longer run. `rolling_deletions` is the maxSurge=0 branch of
`rollingUpdate`: old pods that are not available are replaced at once; available old pods
are replaced only while fewer than maxUnavailable of the nodes that want a pod lack an
available, up-to-date one. The replacement itself is the next sync's create. `status`
counts per node as `updateDaemonSetStatus` does, from the oldest pod of each node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kemu.api.v1 import apps_pb2, core_pb2
from kemu.services.controllers import podutil
from kemu.services.controllers.deploymentutil import scaled_value
from kemu.services.controllers.ds_nodes import Placement, target_node

HASH_LABEL = "controller-revision-hash"  # DefaultDaemonSetUniqueLabelKey

Pods = Mapping[str, Sequence[core_pb2.Pod]]


def pods_by_node(pods: Iterable[core_pb2.Pod]) -> dict[str, list[core_pb2.Pod]]:
    """Daemon pods grouped by the node they are for; pods naming no node are skipped."""
    out: dict[str, list[core_pb2.Pod]] = {}
    for pod in pods:
        node = target_node(pod)
        if node is not None:
            out.setdefault(node, []).append(pod)
    return out


def oldest_first(pods: Iterable[core_pb2.Pod]) -> list[core_pb2.Pod]:
    """podByCreationTimestampAndPhase: scheduled first, then oldest, then by name."""
    return sorted(pods, key=lambda p: (not p.spec.node_name,
                                       podutil.seconds(p.metadata.creation_timestamp),
                                       p.metadata.name))


def is_updated(pod: core_pb2.Pod, revision: str) -> bool:
    return bool(revision) and pod.metadata.labels.get(HASH_LABEL) == revision


@dataclass
class Plan:
    """What `manage` does this sync."""

    create_on: list[str] = field(default_factory=list)  # node names
    delete: list[core_pb2.Pod] = field(default_factory=list)
    failed: list[core_pb2.Pod] = field(default_factory=list)  # for the Warning event


def node_plan(plan: Plan, node: str, where: Placement,
              pods: Sequence[core_pb2.Pod]) -> None:
    """Add to `plan` what node `node` needs (podsShouldBeOnNode without surge)."""
    if where.should_run and not pods:
        plan.create_on.append(node)
    elif where.should_continue:
        running = []
        for pod in pods:
            if podutil.is_terminating(pod.metadata):
                continue
            if pod.status.phase == "Failed":
                plan.failed.append(pod)
                plan.delete.append(pod)
            elif pod.status.phase == "Succeeded":
                plan.delete.append(pod)
            else:
                running.append(pod)
        plan.delete.extend(oldest_first(running)[1:])
    elif pods:
        plan.delete.extend(p for p in pods if not podutil.is_terminating(p.metadata))


def unscheduled_without_node(by_node: Pods, nodes: Iterable[str]) -> list[core_pb2.Pod]:
    """getUnscheduledPodsWithoutNode: unbound pods for nodes that no longer exist (bound
    ones are the pod garbage collector's, as in Kubernetes)."""
    alive = set(nodes)
    return [p for n, pods in sorted(by_node.items()) if n not in alive
            for p in pods if not p.spec.node_name and not podutil.is_terminating(p.metadata)]


def max_unavailable(ds: apps_pb2.DaemonSet, desired: int) -> int:
    """maxUnavailable in nodes, rounded up; never 0 (Kubernetes falls back to 1 when
    surge and unavailability are both 0, and kemu does not surge)."""
    value = ds.spec.update_strategy.rolling_update.max_unavailable
    if value.WhichOneof("kind") is None:
        return 1
    return max(scaled_value(value, desired, round_up=True), 1)


def _current_pods(pods: Sequence[core_pb2.Pod], revision: str
                  ) -> tuple[core_pb2.Pod | None, core_pb2.Pod | None, bool]:
    """findUpdatedPodsOnNode: (new, old, ok); not ok with two of a kind."""
    new = old = None
    for pod in pods:
        if podutil.is_terminating(pod.metadata):
            continue
        if is_updated(pod, revision):
            if new is not None:
                return None, None, False
            new = pod
        else:
            if old is not None:
                return None, None, False
            old = pod
    return new, old, True


def rolling_deletions(by_node: Pods, wanted: Iterable[str], revision: str, max_unavail: int,
                      min_ready: int, now: float) -> list[core_pb2.Pod]:
    """Old pods to delete this sync under a RollingUpdate (surge 0)."""
    nodes = {n: list(by_node.get(n, ())) for n in wanted}
    nodes.update({n: list(p) for n, p in by_node.items() if n not in nodes})
    unavailable = 0
    replace: list[core_pb2.Pod] = []
    candidates: list[core_pb2.Pod] = []
    for name in sorted(nodes):
        new, old, ok = _current_pods(nodes[name], revision)
        if not ok or (new is None) == (old is None):
            unavailable += 1  # manage creates or prunes here; count it unavailable
        elif new is not None:
            unavailable += not podutil.is_available(new, min_ready, now)
        elif old is not None and not podutil.is_available(old, min_ready, now):
            replace.append(old)
            unavailable += 1
        elif old is not None and unavailable < max_unavail:
            candidates.append(old)
    room = min(max(max_unavail - unavailable, 0), len(candidates))
    return replace + candidates[:room]


def status(ds: apps_pb2.DaemonSet, placements: Mapping[str, Placement], by_node: Pods,
           revision: str, now: float) -> apps_pb2.DaemonSetStatus:
    """The DaemonSet's next status (updateDaemonSetStatus)."""
    out = apps_pb2.DaemonSetStatus()
    out.CopyFrom(ds.status)
    desired = current = misscheduled = ready = available = updated = 0
    for node, where in placements.items():
        pods = by_node.get(node, ())
        if not where.should_run:
            misscheduled += bool(pods)
            continue
        desired += 1
        if not pods:
            continue
        current += 1
        pod = oldest_first(pods)[0]
        if podutil.is_ready(pod):
            ready += 1
            available += podutil.is_available(pod, ds.spec.min_ready_seconds, now)
        updated += is_updated(pod, revision)
    out.desired_number_scheduled = desired
    out.current_number_scheduled = current
    out.number_misscheduled = misscheduled
    out.number_ready = ready
    out.number_available = available
    out.updated_number_scheduled = updated
    out.number_unavailable = desired - available
    out.observed_generation = ds.metadata.generation
    return out
