"""The Job controller's arithmetic, as pure functions of a Job, its pods and a time.

Kept apart from the controller so that the rules Kubernetes' `syncJob` applies can be
read and tested on their own: which pods count as succeeded, failed and active; when a
Job is past its backoffLimit (failed pods, or with restartPolicy OnFailure the container
restarts the kubelet made in place) or its activeDeadlineSeconds; how many pods should
run (`min(parallelism, completions - succeeded)`, or with no completions the work-queue
rule: keep parallelism running until one pod succeeds, then start no more); when it is
complete; how long a failed pod's replacement waits (10 s doubling per failure since the
last success, at most 6 minutes: `DefaultJobPodFailureBackOff`); and when a finished Job's
ttlSecondsAfterFinished runs out.

Counting: kemu does not put the `batch.kubernetes.io/job-tracking` finalizer on pods, so
finished pods are counted from the cache, as Kubernetes did before finalizer tracking;
the counts never go below what status already says, so a finished pod that someone
deletes keeps counting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kemu.api.v1 import batch_pb2, core_pb2, meta_pb2
from kemu.services.controllers import podutil

COMPLETE, FAILED, SUSPENDED = "Complete", "Failed", "Suspended"
SUCCESS_CRITERIA_MET, FAILURE_TARGET = "SuccessCriteriaMet", "FailureTarget"
BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
DEADLINE_EXCEEDED = "DeadlineExceeded"
BACKOFF_MESSAGE = "Job has reached the specified backoff limit"
DEADLINE_MESSAGE = "Job was active longer than specified deadline"
COMPLETIONS_REACHED = "CompletionsReached"
COMPLETIONS_MESSAGE = "Reached expected number of succeeded pods"
DEFAULT_BACKOFF_LIMIT = 6
POD_FAILURE_BACKOFF = 10.0  # DefaultJobPodFailureBackOff
MAX_POD_FAILURE_BACKOFF = 360.0  # MaxJobPodFailureBackOff
BUILTIN_MANAGER = "kubernetes.io/job-controller"


def condition(job: batch_pb2.Job, type_: str) -> meta_pb2.Condition | None:
    for c in job.status.conditions:
        if c.type == type_:
            return c
    return None


def has_true(job: batch_pb2.Job, type_: str) -> bool:
    c = condition(job, type_)
    return c is not None and c.status == "True"


def finished(job: batch_pb2.Job) -> str | None:
    """"Complete" or "Failed" when the Job has finished (IsJobFinished), else None."""
    for type_ in (COMPLETE, FAILED):
        if has_true(job, type_):
            return type_
    return None


def finished_at(job: batch_pb2.Job) -> float | None:
    """When the Job finished: its Complete or Failed condition's transition time."""
    kind = finished(job)
    if kind is None:
        return None
    c = condition(job, kind)
    assert c is not None
    return podutil.seconds(c.last_transition_time) or None


def ttl_expires_at(job: batch_pb2.Job) -> float | None:
    """When a finished Job with ttlSecondsAfterFinished is due for deletion."""
    if not job.spec.HasField("ttl_seconds_after_finished"):
        return None
    at = finished_at(job)
    return None if at is None else at + job.spec.ttl_seconds_after_finished


def managed_elsewhere(job: batch_pb2.Job) -> bool:
    """spec.managedBy names another controller: this one leaves the Job alone."""
    return job.spec.HasField("managed_by") and job.spec.managed_by not in ("", BUILTIN_MANAGER)


def backoff_limit(job: batch_pb2.Job) -> int:
    return job.spec.backoff_limit if job.spec.HasField("backoff_limit") \
        else DEFAULT_BACKOFF_LIMIT


def parallelism(job: batch_pb2.Job) -> int:
    return job.spec.parallelism if job.spec.HasField("parallelism") else 1


@dataclass(frozen=True)
class PodCounts:
    """The Job's pods as its status counts them."""

    active: list[core_pb2.Pod]
    succeeded: int
    failed: int
    ready: int
    terminating: int


def count_pods(job: batch_pb2.Job, pods: list[core_pb2.Pod]) -> PodCounts:
    active = [p for p in pods if podutil.is_active(p)]
    succeeded = [p for p in pods if p.status.phase == "Succeeded"]
    failed = sum(p.status.phase == "Failed" for p in pods)
    terminating = sum(podutil.is_terminating(p.metadata)
                      and p.status.phase not in podutil.TERMINAL_PHASES for p in pods)
    return PodCounts(
        active=active,
        succeeded=max(job.status.succeeded, len(succeeded)),
        failed=max(job.status.failed, failed),
        ready=sum(podutil.is_ready(p) for p in active),
        terminating=terminating)


def restarts(pods: list[core_pb2.Pod]) -> int:
    """Container restarts of the pending and running pods (pastBackoffLimitOnFailure)."""
    total = 0
    for p in pods:
        if p.status.phase in ("Running", "Pending"):
            total += sum(s.restart_count for s in p.status.init_container_statuses)
            total += sum(s.restart_count for s in p.status.container_statuses)
    return total


def past_backoff_limit(job: batch_pb2.Job, counts: PodCounts) -> bool:
    """More failed pods than backoffLimit, or (OnFailure) as many restarts in place."""
    limit = backoff_limit(job)
    if counts.failed > limit:
        return True
    if job.spec.template.spec.restart_policy != "OnFailure":
        return False
    n = restarts(counts.active)
    return n > 0 if limit == 0 else n >= limit


def deadline_at(job: batch_pb2.Job, status: batch_pb2.JobStatus) -> float | None:
    """When activeDeadlineSeconds (counted from the status' startTime) runs out; None
    without one, before the start, and while suspended (pastActiveDeadline)."""
    if not job.spec.HasField("active_deadline_seconds") or job.spec.suspend \
            or not status.HasField("start_time"):
        return None
    return podutil.seconds(status.start_time) + job.spec.active_deadline_seconds


def wanted_active(job: batch_pb2.Job, succeeded: int, active: int) -> int:
    """How many pods should be running now (manageJob's wantActive)."""
    if job.spec.suspend:
        return 0
    par = parallelism(job)
    if not job.spec.HasField("completions"):
        return active if succeeded > 0 else par  # work queue: stop starting after a success
    return max(0, min(job.spec.completions - succeeded, par))


def complete(job: batch_pb2.Job, succeeded: int, active: int) -> bool:
    if active > 0 or job.spec.suspend:
        return False
    if not job.spec.HasField("completions"):
        return succeeded > 0
    return succeeded >= job.spec.completions


def pod_backoff(failures_since_success: int, *, base: float = POD_FAILURE_BACKOFF,
                cap: float = MAX_POD_FAILURE_BACKOFF) -> float:
    """The wait before creating pods after that many failures since the last success."""
    if failures_since_success <= 0 or base <= 0:
        return 0.0
    return float(min(base * 2.0 ** (failures_since_success - 1), cap))


def new_condition(type_: str, status: str, reason: str, message: str,
                  now: float) -> meta_pb2.Condition:
    c = meta_pb2.Condition(type=type_, status=status, reason=reason, message=message)
    c.last_probe_time.FromNanoseconds(int(now * 1e9))
    c.last_transition_time.FromNanoseconds(int(now * 1e9))
    return c


def set_condition(status: batch_pb2.JobStatus, cond: meta_pb2.Condition) -> bool:
    """Add or update a condition; True when something changed (the transition time is
    kept when only the reason or message changes, as Kubernetes does)."""
    for c in status.conditions:
        if c.type != cond.type:
            continue
        if (c.status, c.reason, c.message) == (cond.status, cond.reason, cond.message):
            return False
        if c.status == cond.status:
            cond.last_transition_time.CopyFrom(c.last_transition_time)
        c.CopyFrom(cond)
        return True
    status.conditions.append(cond)
    return True


def copy_status(job: Any) -> batch_pb2.JobStatus:
    out = batch_pb2.JobStatus()
    out.CopyFrom(job.status)
    return out
