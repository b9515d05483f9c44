"""Schedules as the CronJob controller reads them: 5-field lines and macros in a time zone,
the most recent unhandled schedule time (with startingDeadlineSeconds and many misses),
Job names in minutes since the epoch, and the Job made from the template."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from kemu.api import manifest
from kemu.api.v1 import batch_pb2
from kemu.services.controllers import cron_schedule as cs


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def cronjob(schedule: str = "* * * * *", *, created: str = "2026-01-01T00:00:00",
            last: str | None = None, **spec: Any) -> batch_pb2.CronJob:
    obj = manifest.from_dict({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "tick", "namespace": "ns", "uid": "uid-tick"},
        "spec": {"schedule": schedule, **spec,
                 "jobTemplate": {"metadata": {"labels": {"team": "a"}},
                                 "spec": {"template": {"spec": {
                                     "restartPolicy": "Never",
                                     "containers": [{"name": "c", "image": "x"}]}}}}}})
    cj = obj.cron_job
    cj.metadata.creation_timestamp.FromSeconds(int(ts(created)))
    if last is not None:
        cj.status.last_schedule_time.FromSeconds(int(ts(last)))
    return cj


@pytest.mark.parametrize(("schedule", "zone", "after", "expected"), [
    pytest.param("*/5 * * * *", None, "2026-01-01T00:02:00", "2026-01-01T00:05:00",
                 id="every-5"),
    pytest.param("@hourly", None, "2026-01-01T00:00:00", "2026-01-01T01:00:00", id="hourly"),
    pytest.param("@daily", None, "2026-01-01T10:00:00", "2026-01-02T00:00:00", id="daily"),
    pytest.param("@midnight", None, "2026-01-01T10:00:00", "2026-01-02T00:00:00",
                 id="midnight"),
    pytest.param("0 9 * * *", "Europe/Paris", "2026-01-01T00:00:00", "2026-01-01T08:00:00",
                 id="time-zone"),
])
def test_next_after(schedule: str, zone: str | None, after: str, expected: str) -> None:
    extra = {"timeZone": zone} if zone else {}
    sched = cs.parse(cronjob(schedule, **extra))
    assert sched.next_after(ts(after)) == ts(expected)


@pytest.mark.parametrize(("schedule", "zone", "message"), [
    pytest.param("61 * * * *", None, "unparseable schedule", id="bad-minute"),
    pytest.param("@sometimes", None, "unparseable schedule", id="bad-macro"),
    pytest.param("* * * *", None, "unparseable schedule", id="four-fields"),
    pytest.param("* * * * *", "Mars/Olympus", "invalid timeZone", id="bad-zone"),
])
def test_parse_errors(schedule: str, zone: str | None, message: str) -> None:
    extra = {"timeZone": zone} if zone else {}
    with pytest.raises(cs.ScheduleError, match=message):
        cs.parse(cronjob(schedule, **extra))


@pytest.mark.parametrize(("last", "now", "deadline", "scheduled", "missed"), [
    pytest.param(None, "2026-01-01T00:00:30", None, None, 0, id="not-yet"),
    pytest.param(None, "2026-01-01T00:01:00", None, "2026-01-01T00:01:00", 1, id="on-time"),
    pytest.param("2026-01-01T00:01:00", "2026-01-01T00:01:40", None, None, 0,
                 id="handled"),
    pytest.param(None, "2026-01-01T00:05:10", None, "2026-01-01T00:05:00", 5,
                 id="missed-some-latest-only"),
    pytest.param(None, "2026-01-01T03:00:10", None, "2026-01-01T03:00:00", 180,
                 id="too-many"),
    pytest.param(None, "2026-01-01T03:00:10", 120, "2026-01-01T03:00:00", 2,
                 id="deadline-bounds-the-count"),
])
def test_most_recent(last: str | None, now: str, deadline: int | None,
                     scheduled: str | None, missed: int) -> None:
    extra: dict[str, Any] = {"startingDeadlineSeconds": deadline} if deadline is not None \
        else {}
    cj = cronjob(last=last, **extra)
    due = cs.most_recent(cj, cs.parse(cj), ts(now))
    assert due.scheduled == (ts(scheduled) if scheduled else None)
    assert due.missed == missed


def test_most_recent_irregular_monthly() -> None:
    cj = cronjob("0 0 31 * *")
    due = cs.most_recent(cj, cs.parse(cj), ts("2026-06-15T00:00:00"))
    assert due.scheduled == ts("2026-05-31T00:00:00")


def test_job_from_template() -> None:
    cj = cronjob()
    at = ts("2026-01-01T00:01:00")
    job = cs.job_for(cj, at, cs.parse(cj).zone)
    assert job.metadata.name == f"tick-{int(at) // 60}"
    assert dict(job.metadata.labels) == {"team": "a"}
    ref = job.metadata.owner_references[0]
    assert (ref.kind, ref.api_version, ref.name, ref.uid, ref.controller) == \
        ("CronJob", "batch/v1", "tick", "uid-tick", True)
    assert job.metadata.annotations[cs.SCHEDULED_TIMESTAMP] == "2026-01-01T00:01:00+00:00"
    assert job.spec.template.spec.restart_policy == "Never"
    assert cs.rfc1123z(at) == "Thu, 01 Jan 2026 00:01:00 +0000"
