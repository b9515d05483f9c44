"""Indexed Jobs (completionMode: Indexed): each of `completions` indexes succeeds once.

As Kubernetes does, a pod of an Indexed Job carries its completion index in the
annotation and label `batch.kubernetes.io/job-completion-index`, in the environment
variable JOB_COMPLETION_INDEX of every container, and in its hostname `<job>-<index>`, so
that the work it does can depend on its index. The Job counts as succeeded the indexes
with a succeeded pod (kept in `status.completedIndexes`, written as `1,3-5,7`); pods are
created for the lowest indexes neither succeeded nor running, at most parallelism at once;
an active pod whose index already succeeded, or whose index another active pod has, is
deleted. Per-index back-off limits (backoffLimitPerIndex) are not implemented.
"""

from __future__ import annotations

from dataclasses import dataclass

from kemu.api.v1 import batch_pb2, core_pb2
from kemu.services.controllers import podutil

INDEX_KEY = "batch.kubernetes.io/job-completion-index"
INDEX_ENV = "JOB_COMPLETION_INDEX"


def is_indexed(job: batch_pb2.Job) -> bool:
    """Indexed with a completion count (the apiserver requires one for Indexed)."""
    return job.spec.completion_mode == "Indexed" and job.spec.HasField("completions")


def index_of(pod: core_pb2.Pod, completions: int) -> int | None:
    """The pod's completion index, None when missing or out of range."""
    text = pod.metadata.annotations.get(INDEX_KEY, "")
    if not text.isdigit():
        return None
    i = int(text)
    return i if i < completions else None


def parse_indexes(text: str) -> set[int]:
    """`1,3-5,7` -> {1, 3, 4, 5, 7}; malformed parts are skipped."""
    out: set[int] = set()
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        if lo.isdigit() and (not sep or hi.isdigit()):
            out.update(range(int(lo), int(hi if sep else lo) + 1))
    return out


def format_indexes(indexes: set[int]) -> str:
    """{1, 3, 4, 5, 7} -> `1,3-5,7` (status.completedIndexes)."""
    parts: list[str] = []
    ordered = sorted(indexes)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def succeeded_indexes(job: batch_pb2.Job, pods: list[core_pb2.Pod]) -> set[int]:
    completions = job.spec.completions
    done = {i for i in parse_indexes(job.status.completed_indexes) if i < completions}
    for p in pods:
        if p.status.phase == "Succeeded" and (i := index_of(p, completions)) is not None:
            done.add(i)
    return done


@dataclass(frozen=True)
class Plan:
    """What to do for an Indexed Job: indexes to start, pods to delete."""

    create: list[int]
    delete: list[core_pb2.Pod]


def plan(job: batch_pb2.Job, active: list[core_pb2.Pod], done: set[int], want: int) -> Plan:
    """Start the lowest free indexes up to `want` running; drop duplicates, pods of
    finished or invalid indexes, and the highest indexes beyond `want`."""
    completions = job.spec.completions
    keep: dict[int, core_pb2.Pod] = {}
    delete: list[core_pb2.Pod] = []
    for p in sorted(active, key=podutil.deletion_rank, reverse=True):  # the best kept
        i = index_of(p, completions)
        if i is None or i in done or i in keep:
            delete.append(p)
        else:
            keep[i] = p
    if len(keep) > want:
        for i in sorted(keep, reverse=True)[:len(keep) - want]:
            delete.append(keep.pop(i))
        return Plan([], delete)
    free = [i for i in range(completions) if i not in done and i not in keep]
    return Plan(free[:want - len(keep)], delete)


def template_for(job: batch_pb2.Job, index: int) -> core_pb2.PodTemplateSpec:
    """The pod template of one index (Kubernetes' addCompletionIndexEnvVariables and
    addCompletionIndexAnnotation, and the hostname `<job>-<index>`)."""
    tmpl = core_pb2.PodTemplateSpec()
    tmpl.CopyFrom(job.spec.template)
    tmpl.metadata.annotations[INDEX_KEY] = str(index)
    tmpl.metadata.labels[INDEX_KEY] = str(index)
    if not tmpl.spec.hostname:
        tmpl.spec.hostname = f"{job.metadata.name}-{index}"
    for c in (*tmpl.spec.init_containers, *tmpl.spec.containers):
        if not any(e.name == INDEX_ENV for e in c.env):
            c.env.add(name=INDEX_ENV, value=str(index))
    return tmpl
