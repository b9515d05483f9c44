"""The CronJob controller: create a Job at each schedule time.

A sync follows Kubernetes' CronJob controller (v2, `syncCronJob`): first bring
`status.active` in line with the Jobs this CronJob controls (unfinished ones added,
finished ones removed with a SawCompletedJob event, vanished ones with MissingJob;
lastSuccessfulTime from the newest Complete one), then, unless the CronJob is suspended or
being deleted, find the most recent unhandled schedule time (`cron_schedule.most_recent`):
skip it when it was missed by more than startingDeadlineSeconds (MissSchedule), when its
Job exists already, or under concurrencyPolicy Forbid while a Job runs (JobAlreadyActive);
under Replace delete the running Jobs first; then create `<name>-<minutes since epoch>`
from the jobTemplate with a controller reference, and record it in active and
lastScheduleTime. Finished Jobs beyond successfulJobsHistoryLimit and
failedJobsHistoryLimit are deleted oldest first.

There is no polling: after each sync the CronJob is queued again for exactly its next
schedule time. The clock is injectable (`clock`, epoch seconds) and `speed` says how many
clock seconds pass per real second, so tests can run a minute schedule in a second.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping

from google.protobuf.timestamp_pb2 import Timestamp

from kemu.api.v1 import api_pb2, batch_pb2, meta_pb2
from kemu.client.errors import AlreadyExists, ClientError, Conflict, Forbidden, NotFound
from kemu.client.events import NORMAL, WARNING, ObjectRecorder
from kemu.client.informer import Informer, key_of
from kemu.client.workqueue import WorkQueue
from kemu.services.controllers import cron_schedule as cs
from kemu.services.controllers import job_status as js
from kemu.services.controllers import podutil
from kemu.services.controllers.controllerref import (
    WorkloadClient,
    controller_of,
    resolve_controller,
)
from kemu.services.controllers.job_runner import recorder_for, run_controller
from kemu.services.controllers.requeue import Requeuer

log = logging.getLogger("kemu.controllers.cronjob")

NAME = "cronjob"
INFORMERS = ("cronjobs", "jobs")
KIND = "CronJob"
_SLACK = 0.1  # Kubernetes requeues 100ms after the schedule time
_NAMESPACE_TERMINATING = "because it is being terminated"


class CronJobController:
    """Creates, replaces and cleans up the Jobs of every CronJob."""

    def __init__(self, client: WorkloadClient, informers: Mapping[str, Informer], *,
                 workers: int = 5, clock: Callable[[], float] = time.time,
                 speed: float = 1.0, recorder: ObjectRecorder | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.client = client
        self.cronjobs = informers["cronjobs"]
        self.jobs = informers["jobs"]
        self.workers = workers
        self.clock = clock
        self.speed = speed
        self.recorder, self._own_recorder = recorder_for(client, "cronjob-controller", recorder)
        self.queue: WorkQueue[str] = WorkQueue()
        self.requeue = Requeuer(self.queue)
        self.next_sync: dict[str, float] = {}  # key -> clock time of the next scheduled sync
        # uids of the Jobs this controller created, per CronJob: a sync on a cache that has
        # the new Job but not yet the status naming it must not call it unexpected.
        self._created: dict[str, set[str]] = {}
        self.cronjobs.add_handler(self.on_cronjob)
        self.jobs.add_handler(self.on_job)

    # ---- event handlers ------------------------------------------------------------------

    def on_cronjob(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        if new is None and old is not None:
            self.requeue.forget(key_of(old))
            self.next_sync.pop(key_of(old), None)
            self._created.pop(key_of(old), None)
        obj = new if new is not None else old
        if obj is not None:
            if new is not None and old is not None and \
                    new.cron_job.spec != old.cron_job.spec:
                self.requeue.forget(key_of(obj))  # the schedule may have moved earlier
            self.queue.add(key_of(obj))

    def on_job(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        for obj in (old, new):
            if obj is not None:
                key = resolve_controller(self.cronjobs, KIND, obj.job.metadata)
                if key is not None:
                    self.queue.add(key)

    # ---- reconcile -----------------------------------------------------------------------

    async def run(self) -> None:
        await run_controller(self.cronjobs, self.queue, self.reconcile, self.workers, name=NAME,
                             log=log, recorder=self._own_recorder)

    def _schedule_sync(self, key: str, at: float, now: float) -> None:
        self.next_sync[key] = at
        self.requeue.after(key, max(at - now, 0.0) / self.speed + _SLACK)

    def _children(self, cj: batch_pb2.CronJob) -> list[batch_pb2.Job]:
        out = []
        for o in self.jobs.list():
            m = o.job.metadata
            ref = controller_of(m)
            if m.namespace == cj.metadata.namespace and ref is not None \
                    and ref.uid == cj.metadata.uid:
                out.append(o.job)
        return out

    async def reconcile(self, key: str) -> None:
        """Sync one CronJob from the cache; idempotent."""
        started = time.perf_counter()
        obj = self.cronjobs.get(key)
        if obj is None:
            self.next_sync.pop(key, None)
            return
        cj = obj.cron_job
        now = self.clock()
        status = batch_pb2.CronJobStatus()
        status.CopyFrom(cj.status)
        children = self._children(cj)
        self._track_active(key, cj, status, children)
        error: Exception | None = None
        if not cj.metadata.HasField("deletion_timestamp"):
            try:
                await self._schedule(key, cj, status, children, now)
            except ClientError as e:
                error = e
            await self._cleanup(cj, status, children)
        if status != cj.status:
            out = api_pb2.Object()
            out.CopyFrom(obj)
            out.cron_job.status.CopyFrom(status)
            with contextlib.suppress(NotFound):
                await self.client.update_status(out)
        log.debug("cronjob=%s synced active=%d next=%s duration_ms=%.2f", key,
                  len(status.active), self.next_sync.get(key),
                  (time.perf_counter() - started) * 1000)
        if error is not None:
            raise error

    def _track_active(self, key: str, cj: batch_pb2.CronJob, status: batch_pb2.CronJobStatus,
                      children: list[batch_pb2.Job]) -> None:
        uids = {j.metadata.uid for j in children}
        created = self._created.setdefault(key, set())
        for j in children:
            listed = any(r.uid == j.metadata.uid for r in status.active)
            done = js.finished(j)
            if done is not None:
                created.discard(j.metadata.uid)
            if not listed and done is None and j.metadata.uid in created:
                status.active.append(_job_ref(j))
            elif not listed and done is None:
                self.recorder.emit(KIND, cj, WARNING, "UnexpectedJob",
                                   f"Saw a job that the controller did not create or forgot: "
                                   f"{j.metadata.name}")
                status.active.append(_job_ref(j))
            elif listed and done is not None:
                _drop_active(status, j.metadata.uid)
                self.recorder.emit(KIND, cj, NORMAL, "SawCompletedJob",
                                   f"Saw completed job: {j.metadata.name}, condition: {done}")
            if done == js.COMPLETE and j.status.HasField("completion_time") and \
                    podutil.seconds(j.status.completion_time) > \
                    podutil.seconds(status.last_successful_time):
                status.last_successful_time.CopyFrom(j.status.completion_time)
        for ref in list(status.active):
            if ref.uid in uids:
                continue
            cached = self.jobs.get(f"{ref.namespace}/{ref.name}")
            if cached is None or cached.job.metadata.uid != ref.uid:
                _drop_active(status, ref.uid)
                self.recorder.emit(KIND, cj, NORMAL, "MissingJob",
                                   f"Active job went missing: {ref.name}")

    async def _schedule(self, key: str, cj: batch_pb2.CronJob,
                        status: batch_pb2.CronJobStatus, children: list[batch_pb2.Job],
                        now: float) -> None:
        """Start the Job of the most recent unhandled schedule time, if one is due."""
        try:
            schedule = cs.parse(cj)
        except cs.ScheduleError as e:
            reason = "UnknownTimeZone" if "timeZone" in str(e) else "UnparseableSchedule"
            self.recorder.emit(KIND, cj, WARNING, reason, str(e))
            self.next_sync.pop(key, None)
            return  # nothing to wait for until the CronJob is edited
        if cj.spec.suspend:
            self.next_sync.pop(key, None)
            return
        view = batch_pb2.CronJob()
        view.CopyFrom(cj)
        view.status.CopyFrom(status)
        due = cs.most_recent(view, schedule, now)
        if due.missed > cs.TOO_MANY_MISSED:
            log.info("cronjob=%s too many missed times missed=%d", key, due.missed)
            self.recorder.emit(KIND, cj, WARNING, "TooManyMissedTimes",
                               f"too many missed start times: {due.missed}. Set or decrease "
                               ".spec.startingDeadlineSeconds or check clock skew")
        self._schedule_sync(key, schedule.next_after(now), now)
        scheduled = due.scheduled
        if scheduled is None:
            return
        if cj.spec.HasField("starting_deadline_seconds") and \
                scheduled + cj.spec.starting_deadline_seconds < now:
            self.recorder.emit(KIND, cj, WARNING, "MissSchedule",
                               f"Missed scheduled time to start a job: {cs.rfc1123z(scheduled)}")
            return
        name = cs.job_name(cj, scheduled)
        if any(j.metadata.name == name for j in children) or \
                any(r.name == name for r in status.active) or \
                podutil.seconds(status.last_schedule_time) >= scheduled:
            # Handled already (its status write may have been lost to a conflict).
            if podutil.seconds(status.last_schedule_time) < scheduled:
                _stamp(status.last_schedule_time, scheduled)
            return
        if cj.spec.concurrency_policy == "Forbid" and status.active:
            self.recorder.emit(KIND, cj, NORMAL, "JobAlreadyActive",
                               "Not starting job because prior execution is running and "
                               "concurrency policy is Forbid")
            return
        if cj.spec.concurrency_policy == "Replace":
            for ref in list(status.active):
                await self._delete_job(cj, status, ref.name, ref.uid)
        await self._create(key, cj, status, schedule, scheduled)

    async def _create(self, key: str, cj: batch_pb2.CronJob, status: batch_pb2.CronJobStatus,
                      schedule: cs.Schedule, scheduled: float) -> None:
        job = cs.job_for(cj, scheduled, schedule.zone)
        try:
            created = (await self.client.create(api_pb2.Object(job=job))).job
        except AlreadyExists:
            try:
                created = (await self.client.get("jobs", job.metadata.name,
                                                 job.metadata.namespace)).job
            except NotFound:
                raise Conflict(f"job {job.metadata.name} exists and is gone") from None
            ref = controller_of(created.metadata)
            if ref is None or ref.uid != cj.metadata.uid:
                raise  # another owner's Job holds the name: retry with back-off
        except Forbidden as e:
            if _NAMESPACE_TERMINATING in e.message:
                return
            self.recorder.emit(KIND, cj, WARNING, "FailedCreate",
                               f"Error creating job: {e.message}")
            raise
        except ClientError as e:
            self.recorder.emit(KIND, cj, WARNING, "FailedCreate",
                               f"Error creating job: {e.message}")
            raise
        else:
            self.recorder.emit(KIND, cj, NORMAL, "SuccessfulCreate",
                               f"Created job {created.metadata.name}")
            log.info("cronjob=%s created job=%s scheduled=%s", key, created.metadata.name,
                     cs.rfc1123z(scheduled))
        self._created.setdefault(key, set()).add(created.metadata.uid)
        if js.finished(created) is None and \
                not any(r.uid == created.metadata.uid for r in status.active):
            status.active.append(_job_ref(created))
        _stamp(status.last_schedule_time, scheduled)

    async def _delete_job(self, cj: batch_pb2.CronJob, status: batch_pb2.CronJobStatus,
                          name: str, uid: str) -> None:
        """Delete one Job (dependents in the background) and forget it in active."""
        try:
            await self.client.delete("jobs", name, cj.metadata.namespace, uid=uid,
                                     propagation_policy=api_pb2.BACKGROUND)
        except (NotFound, Conflict):
            pass
        else:
            self.recorder.emit(KIND, cj, NORMAL, "SuccessfulDelete", f"Deleted job {name}")
        _drop_active(status, uid)

    async def _cleanup(self, cj: batch_pb2.CronJob, status: batch_pb2.CronJobStatus,
                       children: list[batch_pb2.Job]) -> None:
        """Delete the oldest finished Jobs beyond the history limits."""
        spec = cj.spec
        limits = ((js.COMPLETE, spec.successful_jobs_history_limit
                   if spec.HasField("successful_jobs_history_limit") else None),
                  (js.FAILED, spec.failed_jobs_history_limit
                   if spec.HasField("failed_jobs_history_limit") else None))
        for kind, limit in limits:
            if limit is None:
                continue
            done = sorted((j for j in children if js.finished(j) == kind), key=_start_order)
            for j in done[:max(len(done) - limit, 0)]:
                await self._delete_job(cj, status, j.metadata.name, j.metadata.uid)


def _start_order(job: batch_pb2.Job) -> tuple[int, float, str]:
    """Kubernetes' byJobStartTime: by startTime, Jobs without one last, then by name."""
    if not job.status.HasField("start_time"):
        return (1, 0.0, job.metadata.name)
    return (0, podutil.seconds(job.status.start_time), job.metadata.name)


def _job_ref(job: batch_pb2.Job) -> meta_pb2.ObjectReference:
    m = job.metadata
    return meta_pb2.ObjectReference(kind="Job", namespace=m.namespace, name=m.name, uid=m.uid,
                                    api_version="batch/v1",
                                    resource_version=m.resource_version)


def _drop_active(status: batch_pb2.CronJobStatus, uid: str) -> None:
    kept = [r for r in status.active if r.uid != uid]
    del status.active[:]
    status.active.extend(kept)


def _stamp(ts: Timestamp, at: float) -> None:
    ts.FromNanoseconds(int(at * 1e9))
