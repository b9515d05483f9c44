"""A DaemonSet sync's arithmetic, as pure functions of nodes, pods and a time.

`node_plan` is Kubernetes' `podsShouldBeOnNode`: create where a pod should run and none
exists (terminating ones count as existing: the new pod waits until the old is gone),
delete failed and succeeded pods and all but the oldest of duplicates (with maxSurge, an
old and a new pod may share a node until the new one is available), and delete every
pod on a node where it may no longer run. `rolling_deletions` is the maxSurge=0 branch of
`rollingUpdate`: old pods that are not available are replaced at once; available old pods
are replaced only while fewer than maxUnavailable of the nodes that want a pod lack an
available, up-to-date one; the replacement itself is the next sync's create.
`surge_plan` is the maxSurge branch: a new pod is created beside the old one on at most
maxSurge nodes at a time, and the old one is deleted once the new one is available.
`status` counts per node as `updateDaemonSetStatus` does, from the oldest pod of each node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from google.protobuf import struct_pb2

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


@dataclass(frozen=True)
class Surge:
    """A surging rollout's view of a node: the revision and when pods count available."""

    revision: str
    min_ready: int
    now: float


def node_plan(plan: Plan, node: str, where: Placement, pods: Sequence[core_pb2.Pod],
              surge: Surge | None = None) -> None:
    """Add to `plan` what node `node` needs (podsShouldBeOnNode)."""
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
        if surge is None:
            plan.delete.extend(oldest_first(running)[1:])
        else:
            plan.delete.extend(_surge_extras(oldest_first(running), surge))
    elif pods:
        plan.delete.extend(p for p in pods if not podutil.is_terminating(p.metadata))


def _surge_extras(running: list[core_pb2.Pod], surge: Surge) -> list[core_pb2.Pod]:
    """Keep the oldest new and the oldest old pod; the old one too only while it is ready
    and the new one is not yet available."""
    extras: list[core_pb2.Pod] = []
    oldest_new = oldest_old = None
    for pod in running:
        if is_updated(pod, surge.revision) and oldest_new is None:
            oldest_new = pod
        elif not is_updated(pod, surge.revision) and oldest_old is None:
            oldest_old = pod
        else:
            extras.append(pod)
    if oldest_new is not None and oldest_old is not None and (
            not podutil.is_ready(oldest_old)
            or podutil.is_available(oldest_new, surge.min_ready, surge.now)):
        extras.append(oldest_old)
    return extras


def unscheduled_without_node(by_node: Pods, nodes: Iterable[str]) -> list[core_pb2.Pod]:
    """getUnscheduledPodsWithoutNode: unbound pods for nodes that no longer exist (bound
    ones are the pod garbage collector's, as in Kubernetes)."""
    alive = set(nodes)
    return [p for n, pods in sorted(by_node.items()) if n not in alive
            for p in pods if not p.spec.node_name and not podutil.is_terminating(p.metadata)]


def _scaled(value: struct_pb2.Value, total: int, unset: int) -> int:
    if value.WhichOneof("kind") is None:
        return unset
    return scaled_value(value, total, round_up=True)


def fenceposts(ds: apps_pb2.DaemonSet, desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in nodes, rounded up (updatedDesiredNodeCounts); when both
    are 0, Kubernetes accepts one unavailable node."""
    ru = ds.spec.update_strategy.rolling_update
    surge = _scaled(ru.max_surge, desired, 0)
    unavailable = _scaled(ru.max_unavailable, desired, 1)
    if desired > 0 and surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def allows_surge(ds: apps_pb2.DaemonSet) -> bool:
    """util.AllowsSurge: a RollingUpdate whose maxSurge is not 0."""
    return ds.spec.update_strategy.type in ("", "RollingUpdate") and \
        _scaled(ds.spec.update_strategy.rolling_update.max_surge, 1, 0) != 0


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


def surge_plan(by_node: Pods, placements: Mapping[str, Placement], max_surge: int,
               surge: Surge) -> tuple[list[core_pb2.Pod], list[str]]:
    """(old pods to delete, nodes to create a new pod on) under a surging RollingUpdate."""
    surging = 0
    delete: list[core_pb2.Pod] = []
    allowed: list[str] = []
    candidates: list[str] = []
    for name in sorted(by_node):
        new, old, ok = _current_pods(by_node[name], surge.revision)
        if not ok:
            surging += 1  # manage prunes this node first
        elif old is None:
            continue
        elif new is None and not podutil.is_available(old, surge.min_ready, surge.now):
            where = placements.get(name)
            if where is None or not where.should_run:
                delete.append(old)
            else:
                allowed.append(name)
        elif new is None:
            if surging < max_surge:
                candidates.append(name)
        elif not podutil.is_available(new, surge.min_ready, surge.now):
            surging += 1
        else:
            delete.append(old)
    room = min(max(max_surge - surging, 0), len(candidates))
    return delete, allowed + candidates[:room]


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
