"""The Job controller: run pods until enough succeed, or fail the Job.

A sync follows Kubernetes' `syncJob` (Indexed Jobs: `job_indexed`): claim the pods the
Job's selector matches (the apiserver generates it from the Job's uid), count them
(`job_status`), and then, in order: fail the Job when it is past backoffLimit
(BackoffLimitExceeded) or activeDeadlineSeconds (DeadlineExceeded), recording the failure
before deleting its active pods, which count as failed; otherwise, unless creates or
deletes this controller issued are still unseen (`Expectations`), bring the active pods
to `min(parallelism, completions - succeeded)` (zero while `spec.suspend`), creating in
slow-start batches after the pod failure back-off, and mark the Job Complete once enough
pods succeeded and none is left running. Status (active, ready, terminating, succeeded,
failed, startTime, completionTime, completedIndexes, conditions) is written when it
changed.

A finished Job is not touched again except for `ttlSecondsAfterFinished`: the Job is
deleted with propagationPolicy Background once the TTL has passed since it finished (the
work of Kubernetes' TTL-after-finished controller, kept here as the Job is already
watched). Moments no event marks (the active deadline, the end of a back-off, a TTL) are
re-syncs scheduled for exactly then.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from google.protobuf.timestamp_pb2 import Timestamp

from kemu.api import labels as labelsel
from kemu.api.v1 import api_pb2, batch_pb2, core_pb2, meta_pb2
from kemu.client.errors import Conflict, Forbidden, NotFound
from kemu.client.events import NORMAL, WARNING, ObjectRecorder
from kemu.client.informer import Informer, key_of
from kemu.client.workqueue import WorkQueue
from kemu.services.controllers import job_indexed as ji
from kemu.services.controllers import job_status as js
from kemu.services.controllers import podutil
from kemu.services.controllers.controllerref import (
    Owner,
    RefManager,
    WorkloadClient,
    claim_candidates,
    controller_of,
    matching_owners,
    owner_check,
    resolve_controller,
)
from kemu.services.controllers.expectations import Expectations
from kemu.services.controllers.job_runner import recorder_for, run_controller
from kemu.services.controllers.podcontrol import PodControl, slow_start_batch
from kemu.services.controllers.requeue import Requeuer

log = logging.getLogger("kemu.controllers.job")

NAME = "job"
INFORMERS = ("jobs", "pods")
KIND, API_VERSION = "Job", "batch/v1"
BURST = 500  # pod creates or deletes per sync at most
_NAMESPACE_TERMINATING = "because it is being terminated"
_SLACK = 0.05  # wake a little after a due time, never just before it


def _selector(job: batch_pb2.Job) -> labelsel.Selector:
    return labelsel.from_label_selector(job.spec.selector)


@dataclass
class _Backoff:
    """Pod failures seen since the Job's last success, and when the last one was seen.

    Pods are remembered by uid, so a sync repeated on a stale cache (after a status write
    conflict) does not count one failure twice."""

    failures: int = 0
    last: float = 0.0
    seen: set[str] = field(default_factory=set)


class JobController:
    """Drives every Job to completion or failure."""

    def __init__(self, client: WorkloadClient, informers: Mapping[str, Informer], *,
                 workers: int = 5, clock: Callable[[], float] = time.time,
                 expectations: Expectations | None = None,
                 recorder: ObjectRecorder | None = None,
                 pod_failure_backoff: float = js.POD_FAILURE_BACKOFF,
                 max_pod_failure_backoff: float = js.MAX_POD_FAILURE_BACKOFF) -> None:
        self.client = client
        self.jobs = informers["jobs"]
        self.pods = informers["pods"]
        self.workers = workers
        self.clock = clock
        self.expectations = expectations or Expectations()
        self.recorder, self._own_recorder = recorder_for(client, "job-controller", recorder)
        self.pod_failure_backoff = pod_failure_backoff
        self.max_pod_failure_backoff = max_pod_failure_backoff
        self.pod_control = PodControl(client)
        self.queue: WorkQueue[str] = WorkQueue()
        self.requeue = Requeuer(self.queue)
        self._backoff: dict[str, _Backoff] = {}
        self.jobs.add_handler(self.on_job)
        self.pods.add_handler(self.on_pod)

    # ---- event handlers ------------------------------------------------------------------

    def on_job(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        if new is None and old is not None:
            key = key_of(old)
            self.expectations.forget(key)
            self.requeue.forget(key)
            self._backoff.pop(key, None)
        obj = new if new is not None else old
        if obj is not None:
            self.queue.add(key_of(obj))

    def _owner_key(self, pod: core_pb2.Pod) -> str | None:
        return resolve_controller(self.jobs, KIND, pod.metadata)

    def on_pod(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        if new is None:
            if old is not None:
                self._pod_gone(old.pod)
            return
        pod = new.pod
        key = self._owner_key(pod)
        if old is None:
            if key is not None:
                self.expectations.creation_observed(key)
        elif podutil.is_terminating(pod.metadata):
            self._pod_gone(pod)  # counts as deleted from now on
        else:
            old_key = self._owner_key(old.pod)
            if old_key is not None and old_key != key:
                self.queue.add(old_key)
        if key is not None:
            self.queue.add(key)
        elif controller_of(pod.metadata) is None and not podutil.is_terminating(pod.metadata):
            for k in matching_owners(self.jobs, lambda o: _selector(o.job), pod.metadata):
                self.queue.add(k)

    def _pod_gone(self, pod: core_pb2.Pod) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.deletion_observed(key, pod.metadata.uid)
            self.queue.add(key)

    # ---- reconcile -----------------------------------------------------------------------

    async def run(self) -> None:
        await run_controller(self.jobs, self.queue, self.reconcile, self.workers, name=NAME,
                             log=log, recorder=self._own_recorder)

    def _wake(self, key: str, at: float | None, now: float) -> None:
        if at is not None:
            self.requeue.after(key, max(at - now, 0.0) + _SLACK)

    async def reconcile(self, key: str) -> None:
        """Sync one Job from the cache; idempotent."""
        started = time.perf_counter()
        obj = self.jobs.get(key)
        if obj is None:
            self.expectations.forget(key)
            return
        job = obj.job
        if js.managed_elsewhere(job):
            return
        now = self.clock()
        if js.finished(job) is not None:
            if js.finished(job) == js.FAILED:
                await self._delete_leftovers(key, job)
            await self._expire(key, job, now)
            return
        try:
            selector = _selector(job)
        except labelsel.SelectorError as e:
            log.error("job=%s has an invalid selector: %s", key, e)
            return
        needs_sync = self.expectations.satisfied(key)
        owner = Owner(KIND, API_VERSION, _copy_meta(job.metadata))
        pods = await self._claim(owner, selector)
        counts = js.count_pods(job, pods)
        self._note_outcomes(key, job, pods, now)
        status = js.copy_status(job)
        done: set[int] = set()
        if ji.is_indexed(job):
            done = ji.succeeded_indexes(job, pods)
            counts = dataclasses.replace(counts, succeeded=len(done))
            status.completed_indexes = ji.format_indexes(done)
        if not status.HasField("start_time") and not job.spec.suspend:
            _stamp(status.start_time, now)
        active, failed = len(counts.active), counts.failed
        error: Exception | None = None
        self._suspend_condition(job, status, now)  # a resume restarts the deadline first
        failure = self._failure(job, status, counts, now)
        if failure is not None:
            # Kubernetes' order: record the failure first (no sync may then start a pod for
            # this Job), then delete its active pods, which count as failed.
            reason, message = failure
            failed += active
            active = 0
            for type_ in (js.FAILURE_TARGET, js.FAILED):  # as Kubernetes 1.31+ records
                js.set_condition(status, js.new_condition(type_, "True", reason, message, now))
        else:
            if needs_sync and not owner.deleting:
                active, error = await self._manage(key, job, owner, counts, done, now)
            if job.spec.suspend and active == 0:
                status.ClearField("start_time")  # a suspended Job has not started
            if error is None and js.complete(job, counts.succeeded, active):
                for type_ in (js.SUCCESS_CRITERIA_MET, js.COMPLETE):  # as Kubernetes 1.33
                    js.set_condition(status, js.new_condition(
                        type_, "True", js.COMPLETIONS_REACHED, js.COMPLETIONS_MESSAGE, now))
                _stamp(status.completion_time, now)
                self.recorder.emit(KIND, job, NORMAL, "Completed", "Job completed")
        status.active, status.succeeded, status.failed = active, counts.succeeded, failed
        status.ready = min(counts.ready, active)
        status.terminating = counts.terminating
        if failure is not None:
            # The active pods go before Failed is written, so whoever sees a Failed Job
            # finds its pods terminating (Kubernetes writes Failed once they are gone).
            self.recorder.emit(KIND, job, WARNING, failure[0], failure[1])
            _, error = await self._delete(key, job, counts.active, len(counts.active))
        if status != job.status:
            await self._write_status(obj, status)
        if any(c.type in (js.COMPLETE, js.FAILED) and c.status == "True"
               for c in status.conditions):
            if job.spec.HasField("ttl_seconds_after_finished"):
                self._wake(key, now + job.spec.ttl_seconds_after_finished, now)
        else:
            self._wake(key, js.deadline_at(job, status), now)
        log.debug("job=%s synced active=%d succeeded=%d failed=%d expectations=%s "
                  "duration_ms=%.2f", key, active, counts.succeeded, failed,
                  self.expectations.pending(key), (time.perf_counter() - started) * 1000)
        if error is not None:
            raise error

    def _failure(self, job: batch_pb2.Job, status: batch_pb2.JobStatus,
                 counts: js.PodCounts, now: float) -> tuple[str, str] | None:
        if js.past_backoff_limit(job, counts):
            return js.BACKOFF_LIMIT_EXCEEDED, js.BACKOFF_MESSAGE
        deadline = js.deadline_at(job, status)
        if deadline is not None and now >= deadline:
            return js.DEADLINE_EXCEEDED, js.DEADLINE_MESSAGE
        return None

    def _suspend_condition(self, job: batch_pb2.Job, status: batch_pb2.JobStatus,
                           now: float) -> None:
        """Suspended True while spec.suspend; False (JobResumed, startTime reset so the
        active deadline counts continuous activity) once it is lifted."""
        if job.spec.suspend:
            if js.set_condition(status, js.new_condition(js.SUSPENDED, "True", "JobSuspended",
                                                         "Job suspended", now)):
                self.recorder.emit(KIND, job, NORMAL, "Suspended", "Job suspended")
        elif js.has_true(job, js.SUSPENDED):
            js.set_condition(status, js.new_condition(js.SUSPENDED, "False", "JobResumed",
                                                      "Job resumed", now))
            _stamp(status.start_time, now)
            self.recorder.emit(KIND, job, NORMAL, "Resumed", "Job resumed")

    def _note_outcomes(self, key: str, job: batch_pb2.Job, pods: list[core_pb2.Pod],
                       now: float) -> None:
        """Track failures since the last success for the pod failure back-off (with
        OnFailure the kubelet restarts in place and backs off itself)."""
        rec = self._backoff.setdefault(key, _Backoff())
        for p in pods:
            uid, phase = p.metadata.uid, p.status.phase
            if phase not in podutil.TERMINAL_PHASES or uid in rec.seen:
                continue
            rec.seen.add(uid)
            if phase == "Succeeded":
                rec.failures, rec.last = 0, 0.0
            elif job.spec.template.spec.restart_policy != "OnFailure":
                rec.failures += 1
                rec.last = now

    def _backoff_until(self, key: str) -> float:
        rec = self._backoff.get(key)
        if rec is None or rec.failures == 0:
            return 0.0
        return rec.last + js.pod_backoff(rec.failures, base=self.pod_failure_backoff,
                                         cap=self.max_pod_failure_backoff)

    async def _claim(self, owner: Owner, selector: labelsel.Selector) -> list[core_pb2.Pod]:
        candidates = claim_candidates(self.pods, owner)
        manager = RefManager(self.client, owner, selector, "pods",
                             owner_check(self.client, "jobs", owner))
        return [o.pod for o in await manager.claim(candidates)]

    async def _manage(self, key: str, job: batch_pb2.Job, owner: Owner,
                      counts: js.PodCounts, done: set[int], now: float
                      ) -> tuple[int, Exception | None]:
        """Create or delete pods toward wantActive; the active count after it."""
        active = len(counts.active)
        want = js.wanted_active(job, counts.succeeded, active)
        indexes: list[int | None]
        if ji.is_indexed(job):
            plan = ji.plan(job, counts.active, done, want)
            victims, indexes = plan.delete, list(plan.create)
        else:
            victims = podutil.pods_to_delete(counts.active, active - want)
            indexes = [None] * max(want - active, 0)
        if victims:
            deleted, error = await self._delete(key, job, victims[:BURST], len(victims[:BURST]))
            active -= deleted
            if error is not None or not indexes:
                return active, error
        missing = len(indexes)
        if job.spec.pod_replacement_policy == "Failed":
            missing -= counts.terminating  # replace a pod only once it has fully ended
        if missing <= 0:
            return active, None
        until = self._backoff_until(key)
        if until > now:
            self._wake(key, until, now)
            return active, None
        created, error = await self._create(key, job, owner, indexes[:min(missing, BURST)])
        return active + created, error

    async def _create(self, key: str, job: batch_pb2.Job, owner: Owner,
                      indexes: list[int | None]) -> tuple[int, Exception | None]:
        """Create one pod per entry: from the template, or for that completion index."""
        count = len(indexes)
        self.expectations.expect_creations(key, count)
        ref = owner.controller_ref()
        namespace, name = owner.meta.namespace, owner.meta.name
        todo = iter(indexes)

        async def create_one() -> None:
            index = next(todo)
            template = job.spec.template if index is None else ji.template_for(job, index)
            prefix = name if index is None else f"{name}-{index}"
            try:
                pod = await self.pod_control.create(namespace, template, prefix, ref)
            except Forbidden as e:
                if _NAMESPACE_TERMINATING not in e.message:
                    raise
                return
            self.recorder.emit(KIND, job, NORMAL, "SuccessfulCreate",
                               f"Created pod: {pod.pod.metadata.name}")
        created, error = await slow_start_batch(count, create_one)
        for _ in range(count - created):
            self.expectations.creation_observed(key)  # never coming: not created
        log.info("job=%s created pods=%d of %d", key, created, count)
        return created, error

    async def _delete(self, key: str, job: batch_pb2.Job, pods: list[core_pb2.Pod],
                      count: int) -> tuple[int, Exception | None]:
        """Delete `count` pods in ActivePods order; (deleted or already gone, first error)."""
        victims = podutil.pods_to_delete(pods, count)
        if not victims:
            return 0, None
        self.expectations.expect_deletions(key, [p.metadata.uid for p in victims])
        results = await asyncio.gather(
            *(self.pod_control.delete(p.metadata.namespace, p.metadata.name, p.metadata.uid)
              for p in victims), return_exceptions=True)
        errors: list[Exception] = []
        gone = 0
        for pod, result in zip(victims, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                errors.append(result)
                self.expectations.deletion_observed(key, pod.metadata.uid)
                continue
            gone += 1
            if result is True:
                self.recorder.emit(KIND, job, NORMAL, "SuccessfulDelete",
                                   f"Deleted pod: {pod.metadata.name}")
            else:
                self.expectations.deletion_observed(key, pod.metadata.uid)
        log.info("job=%s deleted pods=%s", key, ",".join(p.metadata.name for p in victims))
        return gone, errors[0] if errors else None

    async def _delete_leftovers(self, key: str, job: batch_pb2.Job) -> None:
        """Active pods of a failed Job: their deletion failed after the Job was marked."""
        uid = job.metadata.uid
        pods = [o.pod for o in self.pods.list()
                if o.pod.metadata.namespace == job.metadata.namespace
                and podutil.is_active(o.pod)
                and (ref := controller_of(o.pod.metadata)) is not None and ref.uid == uid]
        _, error = await self._delete(key, job, pods, len(pods))
        if error is not None:
            raise error

    async def _expire(self, key: str, job: batch_pb2.Job, now: float) -> None:
        """ttlSecondsAfterFinished: delete the finished Job (Background) once due."""
        due = js.ttl_expires_at(job)
        if due is None:
            return
        if now < due:
            self._wake(key, due, now)
            return
        with contextlib.suppress(NotFound, Conflict):  # gone, or replaced by another uid
            await self.client.delete("jobs", job.metadata.name, job.metadata.namespace,
                                     uid=job.metadata.uid,
                                     propagation_policy=api_pb2.BACKGROUND)
            log.info("job=%s deleted: ttlSecondsAfterFinished=%d passed", key,
                     job.spec.ttl_seconds_after_finished)

    async def _write_status(self, obj: api_pb2.Object, status: batch_pb2.JobStatus) -> None:
        out = api_pb2.Object()
        out.CopyFrom(obj)
        out.job.status.CopyFrom(status)
        # A Conflict propagates: the queue retries once the cache has the newer object.
        with contextlib.suppress(NotFound):
            await self.client.update_status(out)


def _stamp(ts: Timestamp, now: float) -> None:
    ts.FromNanoseconds(int(now * 1e9))


def _copy_meta(meta: meta_pb2.ObjectMeta) -> meta_pb2.ObjectMeta:
    out = meta_pb2.ObjectMeta()
    out.CopyFrom(meta)
    return out

