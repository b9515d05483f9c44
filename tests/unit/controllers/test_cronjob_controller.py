"""The CronJob sync against the in-memory API with a driven clock: a Job per schedule time
named in minutes since the epoch, the re-sync set for exactly the next schedule time,
status active/lastScheduleTime/lastSuccessfulTime, concurrencyPolicy Allow/Forbid/Replace,
suspend, startingDeadlineSeconds, too many missed times, history limits and bad
schedules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kemu.api import manifest
from kemu.api.v1 import api_pb2
from kemu.services.controllers import cronjob as cjc
from tests.unit.controllers.test_job_controller import Clock, Events
from tests.unit.controllers.test_replicaset_fakeapi import FakeAPI, informers

NS = "ns"
T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()  # a minute boundary


def cronjob(schedule: str = "* * * * *", **spec: Any) -> api_pb2.Object:
    body = {"schedule": schedule, "concurrencyPolicy": "Allow", "suspend": False,
            "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1}
    body.update(spec)
    body["jobTemplate"] = {"spec": {"template": {"spec": {
        "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "x"}]}}}}
    return manifest.from_dict({"apiVersion": "batch/v1", "kind": "CronJob",
                               "metadata": {"name": "tick", "namespace": NS},
                               "spec": body})


def setup(**spec: Any) -> tuple[cjc.CronJobController, FakeAPI, Events, Clock]:
    api = FakeAPI(now=T0 + 5)  # created 5 s past a minute
    infs = informers(api, *cjc.INFORMERS)
    events, clock = Events(), Clock()
    clock.now = T0 + 5
    ctrl = cjc.CronJobController(api, infs, clock=clock, recorder=events)
    api.put(cronjob(**spec))
    return ctrl, api, events, clock


def status(api: FakeAPI) -> Any:
    return api.objects[("cronjobs", f"{NS}/tick")].cron_job.status


def jobs(api: FakeAPI) -> list[str]:
    return [o.job.metadata.name for o in api.list("jobs", NS)]


def finish(api: FakeAPI, name: str, kind: str, at: float) -> None:
    obj = api.objects[("jobs", f"{NS}/{name}")]
    obj.job.status.start_time.FromSeconds(int(at) - 10)
    c = obj.job.status.conditions.add(type=kind, status="True")
    c.last_transition_time.FromSeconds(int(at))
    if kind == "Complete":
        obj.job.status.completion_time.FromSeconds(int(at))
    api.put(obj)


async def sync(ctrl: cjc.CronJobController) -> None:
    await ctrl.reconcile(f"{NS}/tick")


def name_at(t: float) -> str:
    return f"tick-{int(t) // 60}"


async def test_fires_at_each_schedule_time_and_requeues_for_the_next() -> None:
    ctrl, api, events, clock = setup()
    await sync(ctrl)
    assert jobs(api) == [] and ctrl.next_sync[f"{NS}/tick"] == T0 + 60
    clock.now = T0 + 60
    await sync(ctrl)
    assert jobs(api) == [name_at(T0 + 60)]
    job = api.list("jobs", NS)[0].job
    ref = job.metadata.owner_references[0]
    assert (ref.kind, ref.name, ref.controller) == ("CronJob", "tick", True)
    st = status(api)
    assert [r.name for r in st.active] == [name_at(T0 + 60)]
    assert st.active[0].kind == "Job" and st.active[0].uid == job.metadata.uid
    assert st.last_schedule_time.seconds == int(T0 + 60)
    assert ctrl.next_sync[f"{NS}/tick"] == T0 + 120
    assert events.seen[-1][3:] == ("SuccessfulCreate", f"Created job {name_at(T0 + 60)}")
    await sync(ctrl)  # same minute again: nothing new
    assert len(jobs(api)) == 1


async def test_completed_job_leaves_active_and_sets_last_successful_time() -> None:
    ctrl, api, events, clock = setup()
    clock.now = T0 + 60
    await sync(ctrl)
    finish(api, name_at(T0 + 60), "Complete", T0 + 80)
    clock.now = T0 + 90
    await sync(ctrl)
    st = status(api)
    assert list(st.active) == [] and st.last_successful_time.seconds == int(T0 + 80)
    assert ("SawCompletedJob", f"Saw completed job: {name_at(T0 + 60)}, condition: Complete") \
        in [e[3:] for e in events.seen]


async def test_allow_runs_concurrently() -> None:
    ctrl, api, _, clock = setup()
    for minute in (1, 2):
        clock.now = T0 + 60 * minute
        await sync(ctrl)
    assert len(jobs(api)) == 2 and len(status(api).active) == 2


async def test_forbid_skips_while_one_is_active() -> None:
    ctrl, api, events, clock = setup(concurrencyPolicy="Forbid")
    clock.now = T0 + 60
    await sync(ctrl)
    clock.now = T0 + 120
    await sync(ctrl)
    assert len(jobs(api)) == 1 and "JobAlreadyActive" in events.reasons()
    assert ctrl.next_sync[f"{NS}/tick"] == T0 + 180


async def test_replace_deletes_the_active_job_first() -> None:
    ctrl, api, events, clock = setup(concurrencyPolicy="Replace")
    clock.now = T0 + 60
    await sync(ctrl)
    clock.now = T0 + 120
    await sync(ctrl)
    assert jobs(api) == [name_at(T0 + 120)]
    assert [r.name for r in status(api).active] == [name_at(T0 + 120)]
    assert ("SuccessfulDelete", f"Deleted job {name_at(T0 + 60)}") in \
        [e[3:] for e in events.seen]


async def test_suspended_creates_nothing() -> None:
    ctrl, api, _, clock = setup(suspend=True)
    clock.now = T0 + 60
    await sync(ctrl)
    assert jobs(api) == [] and f"{NS}/tick" not in ctrl.next_sync


async def test_starting_deadline_skips_a_late_start() -> None:
    ctrl, api, events, clock = setup(startingDeadlineSeconds=10)
    clock.now = T0 + 75  # 15 s late for the 00:01 run
    await sync(ctrl)
    assert jobs(api) == []
    assert not [e for e in events.seen if e[3] == "MissSchedule"]  # outside the window
    clock.now = T0 + 125  # within 10 s of 00:02
    await sync(ctrl)
    assert jobs(api) == [name_at(T0 + 120)]


async def test_late_start_within_the_deadline_still_runs() -> None:
    ctrl, api, _events, clock = setup(startingDeadlineSeconds=30)
    obj = api.objects[("cronjobs", f"{NS}/tick")]
    obj.cron_job.status.last_schedule_time.FromSeconds(int(T0))
    api.put(obj)
    clock.now = T0 + 60 + 20  # 00:01 is 20 s late: still allowed
    await sync(ctrl)
    assert jobs(api) == [name_at(T0 + 60)]


async def test_too_many_missed_times_starts_only_the_latest() -> None:
    ctrl, api, events, clock = setup()
    clock.now = T0 + 3 * 3600 + 5
    await sync(ctrl)
    assert jobs(api) == [name_at(T0 + 3 * 3600)]
    (warning,) = [e for e in events.seen if e[3] == "TooManyMissedTimes"]
    assert warning[2] == "Warning" and "too many missed start times: 180" in warning[4]


async def test_history_limits_delete_the_oldest_finished_jobs() -> None:
    ctrl, api, _, clock = setup(successfulJobsHistoryLimit=1, failedJobsHistoryLimit=1)
    for minute in (1, 2, 3, 4):
        clock.now = T0 + 60 * minute
        await sync(ctrl)
    finish(api, name_at(T0 + 60), "Complete", T0 + 250)
    finish(api, name_at(T0 + 120), "Complete", T0 + 251)
    finish(api, name_at(T0 + 180), "Failed", T0 + 252)
    finish(api, name_at(T0 + 240), "Failed", T0 + 253)
    clock.now = T0 + 260
    await sync(ctrl)
    assert jobs(api) == [name_at(T0 + 120), name_at(T0 + 240)]
    assert list(status(api).active) == []


async def test_bad_time_zone_is_an_event_and_no_requeue() -> None:
    ctrl, api, events, clock = setup(timeZone="Mars/Olympus")
    clock.now = T0 + 60
    await sync(ctrl)
    assert jobs(api) == [] and "UnknownTimeZone" in events.reasons()
    assert f"{NS}/tick" not in ctrl.next_sync


async def test_time_zone_schedule() -> None:
    ctrl, _api, _, _clock = setup(schedule="0 1 * * *", timeZone="Europe/Paris")
    await sync(ctrl)
    assert ctrl.next_sync[f"{NS}/tick"] == T0 + 86400  # 01:00 Paris is 00:00 UTC


async def test_manual_job_is_tracked_and_missing_jobs_dropped() -> None:
    ctrl, api, events, _clock = setup()
    cj = api.objects[("cronjobs", f"{NS}/tick")].cron_job
    manual = manifest.from_dict({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "by-hand", "namespace": NS,
                     "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                     "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                                          "name": "tick", "uid": cj.metadata.uid,
                                          "controller": True}]},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
                                       "containers": [{"name": "c", "image": "x"}]}}}})
    api.put(manual)
    await sync(ctrl)
    assert [r.name for r in status(api).active] == ["by-hand"]
    assert "UnexpectedJob" in events.reasons()
    await api.delete("jobs", "by-hand", NS)
    await sync(ctrl)
    assert list(status(api).active) == [] and "MissingJob" in events.reasons()


async def test_job_events_wake_the_owner() -> None:
    ctrl, api, _, clock = setup()
    clock.now = T0 + 60
    await sync(ctrl)
    while len(ctrl.queue):
        ctrl.queue.done(await ctrl.queue.get())
    finish(api, name_at(T0 + 60), "Complete", T0 + 70)
    assert len(ctrl.queue) == 1


async def test_lost_status_write_is_repaired_without_a_second_job() -> None:
    ctrl, api, events, clock = setup()
    clock.now = T0 + 60
    await sync(ctrl)
    obj = api.objects[("cronjobs", f"{NS}/tick")]
    obj.cron_job.status.Clear()  # as if the status write had been lost
    api.put(obj)
    finish(api, name_at(T0 + 60), "Complete", T0 + 70)
    clock.now = T0 + 80
    await sync(ctrl)
    assert jobs(api) == [name_at(T0 + 60)] and api.count("create", "jobs") == 1
    st = status(api)
    assert st.last_schedule_time.seconds == int(T0 + 60) and list(st.active) == []
    assert events.reasons().count("SuccessfulCreate") == 1
