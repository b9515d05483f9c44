"""CronJob schedules and the Jobs they make, as pure functions of a CronJob and a time.

Schedules are the standard 5-field cron lines and the @yearly/@monthly/@weekly/@daily/
@midnight/@hourly macros, read by croniter in the CronJob's `timeZone` (UTC without one).
`most_recent` is Kubernetes' `mostRecentScheduleTime`: the latest schedule time not after
now and after the last one handled (lastScheduleTime, else the CronJob's creation, moved
up to now - startingDeadlineSeconds when that is later), and how many were missed; a
controller that was down for a day does not start a day of Jobs, only the latest one. A
Job's name is `<cronjob>-<scheduled time in minutes since the epoch>`, so a repeated sync
for one schedule time cannot create a second Job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from kemu.api.v1 import batch_pb2, meta_pb2
from kemu.services.controllers import podutil

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
TOO_MANY_MISSED = 100  # Kubernetes logs and records TooManyMissedTimes above this


class ScheduleError(ValueError):
    """The schedule or the time zone cannot be used."""


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule in its time zone."""

    expr: str
    zone: tzinfo

    def next_after(self, t: float) -> float:
        """The first schedule time strictly after `t` (epoch seconds)."""
        start = datetime.fromtimestamp(t, self.zone)
        nxt: datetime = croniter(self.expr, start).get_next(datetime)
        return nxt.timestamp()


def zone_of(cj: batch_pb2.CronJob) -> tzinfo:
    if not cj.spec.HasField("time_zone") or not cj.spec.time_zone:
        return UTC
    try:
        return ZoneInfo(cj.spec.time_zone)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ScheduleError(f"invalid timeZone: {cj.spec.time_zone!r}: unknown time zone "
                            f"{cj.spec.time_zone}") from e


def parse(cj: batch_pb2.CronJob) -> Schedule:
    zone = zone_of(cj)
    expr = cj.spec.schedule.strip()
    if expr == "@midnight":
        expr = "@daily"
    if expr.startswith("@"):
        if expr not in ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly"):
            raise ScheduleError(f"unparseable schedule: {cj.spec.schedule}")
    elif len(expr.split()) != 5 or not croniter.is_valid(expr):
        raise ScheduleError(f"unparseable schedule: {cj.spec.schedule}")
    return Schedule(expr, zone)


@dataclass(frozen=True)
class Due:
    """The schedule time to act on now (None: none due) and how many were missed."""

    scheduled: float | None
    missed: int


def earliest(cj: batch_pb2.CronJob, now: float) -> float:
    """After which moment schedule times are still to be handled."""
    t = podutil.seconds(cj.status.last_schedule_time) or \
        podutil.seconds(cj.metadata.creation_timestamp)
    if cj.spec.HasField("starting_deadline_seconds"):
        t = max(t, now - cj.spec.starting_deadline_seconds)
    return t


def most_recent(cj: batch_pb2.CronJob, schedule: Schedule, now: float) -> Due:
    """mostRecentScheduleTime with startingDeadlineSeconds taken into account."""
    t1 = schedule.next_after(earliest(cj, now))
    if t1 > now:
        return Due(None, 0)
    t2 = schedule.next_after(t1)
    if t2 > now:
        return Due(t1, 1)
    period = t2 - t1
    missed = int((now - t1) // period) + 1 if period > 0 else 2
    # Jump close to now by the period, then walk: irregular schedules (months, DST) drift
    # from the estimate, so a jump that overshoots falls back to walking from t1.
    latest = t1
    probe = t1 + (missed - 2) * period
    if probe > t1 and (cand := schedule.next_after(probe - 1)) <= now:
        latest = cand
    while (nxt := schedule.next_after(latest)) <= now:
        latest = nxt
    return Due(latest, max(missed, 2))


def job_name(cj: batch_pb2.CronJob, scheduled: float) -> str:
    return f"{cj.metadata.name}-{int(scheduled // 60)}"


def controller_ref(cj: batch_pb2.CronJob) -> meta_pb2.OwnerReference:
    return meta_pb2.OwnerReference(api_version="batch/v1", kind="CronJob",
                                   name=cj.metadata.name, uid=cj.metadata.uid,
                                   controller=True, block_owner_deletion=True)


def job_for(cj: batch_pb2.CronJob, scheduled: float, zone: tzinfo) -> batch_pb2.Job:
    """The Job for one schedule time (getJobFromTemplate2)."""
    job = batch_pb2.Job()
    m = job.metadata
    m.name = job_name(cj, scheduled)
    m.namespace = cj.metadata.namespace
    tmpl = cj.spec.job_template
    m.labels.update(tmpl.metadata.labels)
    m.annotations.update(tmpl.metadata.annotations)
    m.annotations[SCHEDULED_TIMESTAMP] = datetime.fromtimestamp(scheduled, zone).isoformat()
    m.owner_references.append(controller_ref(cj))
    job.spec.CopyFrom(tmpl.spec)
    return job


def rfc1123z(t: float) -> str:
    """Go's time.RFC1123Z in UTC, as Kubernetes words missed schedule times."""
    return datetime.fromtimestamp(t, UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
