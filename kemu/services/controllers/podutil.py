"""Pod predicates the workload controllers share: active, ready, available, and the order in
which a controller scaling down picks pods to delete.

Kept as pure functions of a Pod and a time so that the ReplicaSet and Deployment
controllers count replicas exactly as Kubernetes' `podutil` and `controller.ActivePods` do:
a replica that is terminating or finished is not a replica, and when there are too many,
the ones that are least far along (unscheduled, pending, not ready, most recently ready,
most restarted, newest) go first, so that a scale-down costs as little availability as it
can.
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.timestamp_pb2 import Timestamp

from kemu.api.v1 import core_pb2, meta_pb2

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
# Kubernetes' podPhaseToOrdinal: phases missing here (Succeeded, Failed, "") rank as Pending.
_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}


def seconds(ts: Timestamp) -> float:
    """A Timestamp as epoch seconds; 0.0 when unset (Kubernetes' zero time)."""
    return ts.seconds + ts.nanos / 1e9


def is_terminating(meta: meta_pb2.ObjectMeta) -> bool:
    return meta.HasField("deletion_timestamp")


def is_active(pod: core_pb2.Pod) -> bool:
    """Counts as a replica: not finished and not being deleted (FilterActivePods)."""
    return pod.status.phase not in TERMINAL_PHASES and not is_terminating(pod.metadata)


def ready_condition(pod: core_pb2.Pod) -> meta_pb2.Condition | None:
    for c in pod.status.conditions:
        if c.type == "Ready":
            return c
    return None


def is_ready(pod: core_pb2.Pod) -> bool:
    c = ready_condition(pod)
    return c is not None and c.status == "True"


def available_at(pod: core_pb2.Pod, min_ready_seconds: int) -> float | None:
    """When a ready pod counts as available (its Ready transition + minReadySeconds); None
    for a pod that is not ready. 0.0 means available already, whatever the time."""
    c = ready_condition(pod)
    if c is None or c.status != "True":
        return None
    if min_ready_seconds <= 0 or not c.HasField("last_transition_time"):
        return 0.0 if min_ready_seconds <= 0 else None
    return seconds(c.last_transition_time) + min_ready_seconds


def is_available(pod: core_pb2.Pod, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least minReadySeconds (podutil.IsPodAvailable: strictly before now)."""
    at = available_at(pod, min_ready_seconds)
    return at is not None and (at == 0.0 or at < now)


def _max_restarts(pod: core_pb2.Pod) -> int:
    return max((s.restart_count for s in pod.status.container_statuses), default=0)


def _zero_then_newest(t: float) -> tuple[int, float]:
    """Kubernetes' afterOrZero as a sort key: unset first, then later times first."""
    return (0, 0.0) if t == 0.0 else (1, -t)


def deletion_rank(pod: core_pb2.Pod) -> tuple[object, ...]:
    """Sort key of `controller.ActivePods`: smaller keys are deleted first."""
    ready = is_ready(pod)
    ready_cond = ready_condition(pod)
    ready_since = seconds(ready_cond.last_transition_time) if ready and ready_cond else 0.0
    return (bool(pod.spec.node_name),
            _PHASE_ORDINAL.get(pod.status.phase, 0),
            ready,
            _zero_then_newest(ready_since) if ready else (0, 0.0),
            -_max_restarts(pod),
            _zero_then_newest(seconds(pod.metadata.creation_timestamp)))


def pods_to_delete(pods: Iterable[core_pb2.Pod], count: int) -> list[core_pb2.Pod]:
    """The `count` pods a scale-down should remove, in ActivePods order."""
    return sorted(pods, key=deletion_rank)[:max(count, 0)]
