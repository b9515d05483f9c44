"""Deployment status and conditions (Kubernetes' `deployment/progress.go` and `sync.go`).

The status sums what the ReplicaSet controller reports for the Deployment's ReplicaSets;
`Available` says whether at least replicas - maxUnavailable pods are available;
`Progressing` tells a rollout's story: a new ReplicaSet created or found, pods updated, the
new ReplicaSet complete and available, or no progress for progressDeadlineSeconds
(ProgressDeadlineExceeded). Progress is measured against the last written status, so the
deadline restarts whenever more pods are updated, ready or available. Timestamps are whole
seconds, as Kubernetes' metav1.Time, so an unchanged status compares equal and is not
written again.
"""

from __future__ import annotations

from collections.abc import Sequence

from kemu.api.v1 import apps_pb2, meta_pb2
from kemu.services.controllers import deploymentutil as du

AVAILABLE = "Available"
PROGRESSING = "Progressing"
REPLICA_FAILURE = "ReplicaFailure"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
FAILED_RS_CREATE = "ReplicaSetCreateError"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"

Status = apps_pb2.DeploymentStatus


def condition(type_: str, status: str, reason: str, message: str, now: float
              ) -> meta_pb2.Condition:
    c = meta_pb2.Condition(type=type_, status=status, reason=reason, message=message)
    c.last_update_time.FromSeconds(int(now))
    c.last_transition_time.FromSeconds(int(now))
    return c


def get_condition(status: Status, type_: str) -> meta_pb2.Condition | None:
    for c in status.conditions:
        if c.type == type_:
            return c
    return None


def remove_condition(status: Status, type_: str) -> None:
    kept = [c for c in status.conditions if c.type != type_]
    del status.conditions[:]
    status.conditions.extend(kept)


def set_condition(status: Status, cond: meta_pb2.Condition) -> None:
    """SetDeploymentCondition: same status and reason is no change; the transition time
    is kept while the status stays the same."""
    current = get_condition(status, cond.type)
    if current is not None and current.status == cond.status and current.reason == cond.reason:
        return
    if current is not None and current.status == cond.status:
        cond.last_transition_time.CopyFrom(current.last_transition_time)
    remove_condition(status, cond.type)
    status.conditions.append(cond)


def has_progress_deadline(d: du.Deployment) -> bool:
    return d.spec.HasField("progress_deadline_seconds") and \
        d.spec.progress_deadline_seconds != du.NO_DEADLINE


def calculate_status(d: du.Deployment, all_rss: Sequence[du.RS | None], new: du.RS | None,
                     now: float) -> Status:
    """Counts from the ReplicaSets and the Available condition (calculateStatus)."""
    available = du.available_replicas(all_rss)
    status = Status(observed_generation=d.metadata.generation,
                    replicas=du.status_replicas(all_rss),
                    updated_replicas=du.status_replicas([new]),
                    ready_replicas=du.ready_replicas(all_rss),
                    available_replicas=available,
                    unavailable_replicas=max(du.spec_replicas(all_rss) - available, 0))
    if d.status.HasField("collision_count"):
        status.collision_count = d.status.collision_count
    status.conditions.extend(d.status.conditions)
    if available >= d.spec.replicas - du.max_unavailable(d):
        set_condition(status, condition(AVAILABLE, "True", MIN_AVAILABLE,
                                        "Deployment has minimum availability.", now))
    else:
        set_condition(status, condition(AVAILABLE, "False", MIN_UNAVAILABLE,
                                        "Deployment does not have minimum availability.", now))
    return status


def complete(d: du.Deployment, status: Status) -> bool:
    """Every replica updated and available, and this generation observed."""
    want = d.spec.replicas
    return (status.updated_replicas == want and status.replicas == want
            and status.available_replicas == want
            and status.observed_generation >= d.metadata.generation)


def progressing(d: du.Deployment, status: Status) -> bool:
    """More updated, fewer old, more ready or more available pods than last written."""
    old = d.status
    return (status.updated_replicas > old.updated_replicas
            or status.replicas - status.updated_replicas < old.replicas - old.updated_replicas
            or status.ready_replicas > old.ready_replicas
            or status.available_replicas > old.available_replicas)


def timed_out(d: du.Deployment, status: Status, now: float) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = get_condition(status, PROGRESSING)
    if cond is None or cond.reason == NEW_RS_AVAILABLE:
        return False
    if cond.reason == TIMED_OUT:
        return True
    return cond.last_update_time.seconds + d.spec.progress_deadline_seconds < now


def _rs_name(d: du.Deployment, new: du.RS | None) -> str:
    return f'ReplicaSet "{new.metadata.name}"' if new is not None \
        else f'Deployment "{d.metadata.name}"'


def replica_failure(all_rss: Sequence[du.RS | None], new: du.RS | None
                    ) -> meta_pb2.Condition | None:
    """The new ReplicaSet's ReplicaFailure condition, else any old one's."""
    for group in ([new], list(all_rss)):
        for rs in du.present(group):
            for c in rs.status.conditions:
                if c.type == REPLICA_FAILURE:
                    out = meta_pb2.Condition(type=c.type, status=c.status, reason=c.reason,
                                             message=c.message)
                    out.last_update_time.CopyFrom(c.last_transition_time)
                    out.last_transition_time.CopyFrom(c.last_transition_time)
                    return out
    return None


def rollout_status(d: du.Deployment, all_rss: Sequence[du.RS | None], new: du.RS | None,
                   now: float) -> Status:
    """The status with Progressing brought up to date (syncRolloutStatus)."""
    status = calculate_status(d, all_rss, new, now)
    if not has_progress_deadline(d):
        remove_condition(status, PROGRESSING)
    current = get_condition(d.status, PROGRESSING)
    done = (status.replicas == status.updated_replicas and current is not None
            and current.reason == NEW_RS_AVAILABLE)
    if has_progress_deadline(d) and not done:
        _update_progressing(d, status, new, current, now)
    failure = replica_failure(all_rss, new)
    if failure is not None:
        set_condition(status, failure)
    else:
        remove_condition(status, REPLICA_FAILURE)
    return status


def _update_progressing(d: du.Deployment, status: Status, new: du.RS | None,
                        current: meta_pb2.Condition | None, now: float) -> None:
    name = _rs_name(d, new)
    if complete(d, status):
        set_condition(status, condition(PROGRESSING, "True", NEW_RS_AVAILABLE,
                                        f"{name} has successfully progressed.", now))
    elif progressing(d, status):
        # Progress refreshes lastUpdateTime even with the same reason (the deadline
        # counts from it), keeping the transition time while the status stays True.
        cond = condition(PROGRESSING, "True", RS_UPDATED, f"{name} is progressing.", now)
        if current is not None and current.status == "True":
            cond.last_transition_time.CopyFrom(current.last_transition_time)
        remove_condition(status, PROGRESSING)
        set_condition(status, cond)
    elif timed_out(d, status, now):
        set_condition(status, condition(PROGRESSING, "False", TIMED_OUT,
                                        f"{name} has timed out progressing.", now))


def requeue_after(d: du.Deployment, status: Status, now: float) -> float | None:
    """Seconds until the progress deadline will have passed, to check it then; None when
    no check is due (requeueStuckDeployment, with a second of margin as there)."""
    cond = get_condition(status, PROGRESSING)
    if not has_progress_deadline(d) or cond is None:
        return None
    if complete(d, status) or cond.reason == TIMED_OUT:
        return None
    after = cond.last_update_time.seconds + d.spec.progress_deadline_seconds - now
    return max(after, 0.0) + 1.0


def paused_condition(d: du.Deployment, now: float) -> meta_pb2.Condition | None:
    """The Progressing condition that pausing or resuming sets (checkPausedConditions)."""
    if not has_progress_deadline(d):
        return None
    cond = get_condition(d.status, PROGRESSING)
    if cond is not None and cond.reason == TIMED_OUT:
        return None
    paused = cond is not None and cond.reason == PAUSED
    if d.spec.paused and not paused:
        return condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused", now)
    if not d.spec.paused and paused:
        return condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed", now)
    return None
