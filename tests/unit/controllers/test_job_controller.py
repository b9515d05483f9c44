"""The Job sync against the in-memory API: pods created with controller references up to
parallelism, completions (and the work-queue rule without them), backoffLimit with
Never (failed pods) and OnFailure (restarts in place), activeDeadlineSeconds, suspend
and resume, the pod failure back-off, ttlSecondsAfterFinished and the events."""

from __future__ import annotations

from typing import Any

import pytest

from kemu.api import manifest
from kemu.api.v1 import api_pb2
from kemu.client.errors import Invalid
from kemu.services.controllers import job as jobc
from kemu.services.controllers import job_status as js
from tests.unit.controllers.test_replicaset_fakeapi import Failure, FakeAPI, informers

NS = "ns"
NOW = 1_700_000_000.0


class Events:
    """A recorder that keeps (kind, name, type, reason, message)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, str, str]] = []

    def emit(self, kind: str, obj: Any, type_: str, reason: str, message: str, *,
             field_path: str = "") -> None:
        self.seen.append((kind, obj.metadata.name, type_, reason, message))

    def reasons(self) -> list[str]:
        return [r for _, _, _, r, _ in self.seen]


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def job(name: str = "pi", *, spec: dict[str, Any] | None = None,
        restart: str = "Never") -> api_pb2.Object:
    """A Job as the apiserver stores it: defaulted, with its uid selector and labels."""
    uid = f"uid-{name}"
    labels = {"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid,
              "batch.kubernetes.io/job-name": name, "job-name": name}
    body: dict[str, Any] = {"parallelism": 1, "backoffLimit": 6,
                            "completionMode": "NonIndexed", "suspend": False}
    body.update(spec or {"completions": 1})
    body["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    body["template"] = {"metadata": {"labels": labels},
                        "spec": {"restartPolicy": restart,
                                 "containers": [{"name": "c", "image": "x"}]}}
    return manifest.from_dict({"apiVersion": "batch/v1", "kind": "Job",
                               "metadata": {"name": name, "namespace": NS, "uid": uid},
                               "spec": body})


def setup(**kw: Any) -> tuple[jobc.JobController, FakeAPI, Events, Clock]:
    api = FakeAPI(now=NOW)
    infs = informers(api, *jobc.INFORMERS)
    events, clock = Events(), Clock()
    kw.setdefault("pod_failure_backoff", 0.0)
    ctrl = jobc.JobController(api, infs, clock=clock, recorder=events, **kw)
    return ctrl, api, events, clock


def pods(api: FakeAPI, phase: str | None = None) -> list[api_pb2.Object]:
    return [o for o in api.list("pods", NS) if phase is None or o.pod.status.phase == phase]


def get_job(api: FakeAPI, name: str = "pi") -> Any:
    return api.objects[("jobs", f"{NS}/{name}")].job


def finish(api: FakeAPI, obj: api_pb2.Object, phase: str, *, restarts: int = 0) -> None:
    fresh = api.objects[("pods", f"{NS}/{obj.pod.metadata.name}")]
    fresh.pod.status.phase = phase
    if restarts:
        fresh.pod.status.container_statuses.add(name="c", restart_count=restarts)
    api.put(fresh)


def conditions(api: FakeAPI, name: str = "pi") -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in get_job(api, name).status.conditions}


async def sync(ctrl: jobc.JobController, name: str = "pi") -> None:
    await ctrl.reconcile(f"{NS}/{name}")


async def test_one_pod_with_owner_labels_then_complete() -> None:
    ctrl, api, events, clock = setup()
    api.put(job())
    await sync(ctrl)
    (p,) = pods(api)
    ref = p.pod.metadata.owner_references[0]
    assert (ref.kind, ref.api_version, ref.name, ref.uid, ref.controller) == \
        ("Job", "batch/v1", "pi", "uid-pi", True)
    assert p.pod.metadata.labels["batch.kubernetes.io/job-name"] == "pi"
    assert p.pod.metadata.labels["job-name"] == "pi"
    status = get_job(api).status
    assert status.active == 1 and status.start_time.seconds == int(NOW)
    clock.now += 30
    finish(api, p, "Succeeded")
    await sync(ctrl)
    status = get_job(api).status
    assert (status.active, status.succeeded, status.failed) == (0, 1, 0)
    assert conditions(api)["Complete"] == ("True", "CompletionsReached")
    assert conditions(api)["SuccessCriteriaMet"] == ("True", "CompletionsReached")
    assert [c.type for c in get_job(api).status.conditions] == ["SuccessCriteriaMet",
                                                                 "Complete"]
    assert status.completion_time.seconds == int(NOW + 30)
    assert events.reasons() == ["SuccessfulCreate", "Completed"]
    assert events.seen[0][4] == f"Created pod: {p.pod.metadata.name}"
    await sync(ctrl)  # finished: nothing more happens
    assert api.count("create", "pods") == 1 and events.reasons()[-1] == "Completed"


async def test_parallelism_bounded_by_remaining_completions() -> None:
    ctrl, api, _, _ = setup()
    api.put(job(spec={"completions": 5, "parallelism": 3}))
    await sync(ctrl)
    assert len(pods(api)) == 3
    for p in pods(api)[:2]:
        finish(api, p, "Succeeded")
    await sync(ctrl)  # 2 done, 3 to go: 1 running + 2 new
    assert len(pods(api, "Running")) + len(pods(api, "")) == 3
    for p in [o for o in pods(api) if o.pod.status.phase != "Succeeded"][:2]:
        finish(api, p, "Succeeded")
    await sync(ctrl)  # 4 done, 1 to go: the one running, no new pod
    assert get_job(api).status.succeeded == 4 and get_job(api).status.active == 1
    assert len(pods(api)) == 5
    (last,) = [o for o in pods(api) if o.pod.status.phase != "Succeeded"]
    finish(api, last, "Succeeded")
    await sync(ctrl)
    assert get_job(api).status.succeeded == 5 and "Complete" in conditions(api)


async def test_work_queue_without_completions() -> None:
    ctrl, api, _, _ = setup()
    api.put(job(spec={"parallelism": 2}))
    await sync(ctrl)
    first, second = pods(api)
    finish(api, first, "Succeeded")
    await sync(ctrl)  # one success: no new pods, wait for the other
    assert len(pods(api)) == 2 and "Complete" not in conditions(api)
    finish(api, second, "Failed")
    await sync(ctrl)
    status = get_job(api).status
    assert (status.succeeded, status.failed, status.active) == (1, 1, 0)
    assert conditions(api)["Complete"][0] == "True"


async def test_never_failed_pods_replaced_until_backoff_limit() -> None:
    ctrl, api, events, _ = setup()
    api.put(job(spec={"completions": 1, "backoffLimit": 1}))
    await sync(ctrl)
    finish(api, pods(api)[0], "Failed")
    await sync(ctrl)  # one failure <= backoffLimit 1: a new pod
    assert len(pods(api)) == 2 and get_job(api).status.failed == 1
    (running,) = [o for o in pods(api) if o.pod.status.phase != "Failed"]
    finish(api, running, "Failed")
    await sync(ctrl)
    status = get_job(api).status
    assert status.failed == 2 and status.active == 0
    assert conditions(api)["Failed"] == ("True", "BackoffLimitExceeded")
    assert conditions(api)["FailureTarget"] == ("True", "BackoffLimitExceeded")
    assert ("Job", "pi", "Warning", "BackoffLimitExceeded",
            "Job has reached the specified backoff limit") in events.seen
    assert not status.HasField("completion_time")


async def test_backoff_limit_deletes_remaining_active_pods() -> None:
    ctrl, api, _, _ = setup()
    api.put(job(spec={"completions": 3, "parallelism": 3, "backoffLimit": 0}))
    await sync(ctrl)
    finish(api, pods(api)[0], "Failed")
    await sync(ctrl)
    assert pods(api, "Failed") and len(pods(api)) == 1  # the two active ones deleted
    status = get_job(api).status
    assert (status.failed, status.active) == (3, 0)  # deleted active pods count as failed
    assert conditions(api)["Failed"][1] == "BackoffLimitExceeded"


async def test_on_failure_counts_restarts_in_place() -> None:
    ctrl, api, _, _ = setup()
    api.put(job(spec={"completions": 1, "backoffLimit": 2}, restart="OnFailure"))
    await sync(ctrl)
    (p,) = pods(api)
    finish(api, p, "Running", restarts=1)
    await sync(ctrl)
    assert "Failed" not in conditions(api) and len(pods(api)) == 1
    finish(api, p, "Running", restarts=2)
    await sync(ctrl)
    assert conditions(api)["Failed"] == ("True", "BackoffLimitExceeded")
    assert pods(api) == [] and get_job(api).status.failed == 1


async def test_active_deadline_fails_the_job_and_requeues_for_it() -> None:
    ctrl, api, events, clock = setup()
    api.put(job(spec={"completions": 1, "activeDeadlineSeconds": 30}))
    await sync(ctrl)
    assert ctrl.requeue._due  # a re-sync is scheduled for the deadline
    clock.now += 30
    await sync(ctrl)
    assert conditions(api)["Failed"] == ("True", "DeadlineExceeded")
    assert pods(api) == [] and get_job(api).status.failed == 1
    assert "DeadlineExceeded" in events.reasons()


async def test_suspend_deletes_pods_and_resume_restarts_the_clock() -> None:
    ctrl, api, events, clock = setup()
    obj = api.put(job(spec={"completions": 2, "parallelism": 2}))
    await sync(ctrl)
    assert len(pods(api)) == 2
    obj = api.objects[("jobs", f"{NS}/pi")]
    obj.job.spec.suspend = True
    api.put(obj)
    await sync(ctrl)
    assert pods(api) == [] and conditions(api)["Suspended"] == ("True", "JobSuspended")
    assert get_job(api).status.failed == 0  # suspension is not failure
    assert not get_job(api).status.HasField("start_time")
    await sync(ctrl)
    assert pods(api) == []
    clock.now += 100
    obj = api.objects[("jobs", f"{NS}/pi")]
    obj.job.spec.suspend = False
    api.put(obj)
    await sync(ctrl)
    assert len(pods(api)) == 2 and conditions(api)["Suspended"] == ("False", "JobResumed")
    assert get_job(api).status.start_time.seconds == int(clock.now)
    assert events.reasons().count("Suspended") == 1 and "Resumed" in events.reasons()


async def test_resume_does_not_count_suspended_time_toward_the_deadline() -> None:
    ctrl, api, _, clock = setup()
    api.put(job(spec={"completions": 1, "activeDeadlineSeconds": 60}))
    await sync(ctrl)
    obj = api.objects[("jobs", f"{NS}/pi")]
    obj.job.spec.suspend = True
    api.put(obj)
    await sync(ctrl)
    clock.now += 600
    obj = api.objects[("jobs", f"{NS}/pi")]
    obj.job.spec.suspend = False
    api.put(obj)
    await sync(ctrl)
    assert "Failed" not in conditions(api) and len(pods(api)) == 1
    clock.now += 60
    await sync(ctrl)
    assert conditions(api)["Failed"] == ("True", "DeadlineExceeded")


async def test_created_suspended_has_no_start_time() -> None:
    ctrl, api, _, _ = setup()
    api.put(job(spec={"completions": 1, "suspend": True}))
    await sync(ctrl)
    assert pods(api) == [] and not get_job(api).status.HasField("start_time")


async def test_pod_failure_backoff_delays_the_replacement() -> None:
    ctrl, api, _, clock = setup(pod_failure_backoff=10.0)
    api.put(job(spec={"completions": 1, "backoffLimit": 5}))
    await sync(ctrl)
    finish(api, pods(api)[0], "Failed")
    await sync(ctrl)
    assert len(pods(api)) == 1  # waits 10 s first
    clock.now += 10
    await sync(ctrl)
    assert len(pods(api)) == 2
    (p,) = [o for o in pods(api) if o.pod.status.phase != "Failed"]
    finish(api, p, "Failed")
    await sync(ctrl)
    clock.now += 10
    await sync(ctrl)
    assert len(pods(api)) == 2  # the second failure doubles it: 20 s
    clock.now += 10
    await sync(ctrl)
    assert len(pods(api)) == 3


@pytest.mark.parametrize(("failures", "expected"), [
    pytest.param(0, 0.0, id="none"), pytest.param(1, 10.0, id="first"),
    pytest.param(3, 40.0, id="doubles"), pytest.param(20, 360.0, id="capped")])
def test_pod_backoff(failures: int, expected: float) -> None:
    assert js.pod_backoff(failures) == expected


async def test_ttl_after_finished_deletes_in_background() -> None:
    ctrl, api, _, clock = setup()
    api.put(job(spec={"completions": 1, "ttlSecondsAfterFinished": 60}))
    await sync(ctrl)
    finish(api, pods(api)[0], "Succeeded")
    await sync(ctrl)
    assert "Complete" in conditions(api)
    clock.now += 59
    await sync(ctrl)
    assert ("jobs", f"{NS}/pi") in api.objects
    clock.now += 1
    await sync(ctrl)
    assert ("jobs", f"{NS}/pi") not in api.objects
    assert ("delete", "jobs", "pi") in api.calls


async def test_managed_by_another_controller_is_left_alone() -> None:
    ctrl, api, _, _ = setup()
    api.put(job(spec={"completions": 1, "managedBy": "example.com/other"}))
    await sync(ctrl)
    assert pods(api) == [] and api.count("update_status") == 0


async def test_no_status_write_when_nothing_changed() -> None:
    ctrl, api, _, _ = setup()
    api.put(job())
    await sync(ctrl)
    writes = api.count("update_status")
    await sync(ctrl)
    assert api.count("update_status") == writes


async def test_counts_survive_deleted_finished_pods() -> None:
    ctrl, api, _, _ = setup()
    api.put(job(spec={"completions": 2, "parallelism": 1}))
    await sync(ctrl)
    (p,) = pods(api)
    finish(api, p, "Succeeded")
    await sync(ctrl)
    await api.delete("pods", p.pod.metadata.name, NS)
    await sync(ctrl)
    assert get_job(api).status.succeeded == 1 and len(pods(api)) == 1


async def test_no_duplicate_pods_while_creates_are_unseen() -> None:
    api = FakeAPI(now=NOW, mirror=False)
    infs = informers(api, *jobc.INFORMERS)
    ctrl = jobc.JobController(api, infs, clock=Clock(), recorder=Events(),
                              pod_failure_backoff=0.0)
    api.put(job(spec={"completions": 4, "parallelism": 2}))
    await sync(ctrl)
    api.cache(api.objects[("jobs", f"{NS}/pi")])  # only the status write is seen
    await sync(ctrl)  # the cache still shows no pods
    assert api.count("create", "pods") == 2
    for p in pods(api):
        api.cache(p)
    assert ctrl.expectations.pending(f"{NS}/pi") == (0, 0)


async def test_create_errors_stop_the_batch_and_retry() -> None:
    ctrl, api, events, _ = setup()
    api.fail[("create", "pods")] = Failure(Invalid("pods is invalid"), after=1)
    api.put(job(spec={"completions": 8, "parallelism": 8}))
    with pytest.raises(Invalid):
        await sync(ctrl)
    assert api.count("create", "pods") == 3  # batches of 1, then 2 with one failing
    assert len(pods(api)) == 1 and events.reasons() == ["SuccessfulCreate"]
    assert ctrl.expectations.satisfied(f"{NS}/pi")
    del api.fail[("create", "pods")]
    await sync(ctrl)
    assert len(pods(api)) == 8


async def test_orphan_with_matching_labels_is_adopted() -> None:
    ctrl, api, _, _ = setup()
    owner = api.put(job())
    orphan = manifest.from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "stray", "namespace": NS,
                     "labels": dict(owner.job.spec.template.metadata.labels)},
        "spec": {"containers": [{"name": "c", "image": "x"}]}, "status": {"phase": "Running"}})
    api.put(orphan)
    await sync(ctrl)
    (p,) = pods(api)
    assert p.pod.metadata.name == "stray" and p.pod.metadata.owner_references[0].uid == "uid-pi"
    assert api.count("create", "pods") == 0


@pytest.mark.parametrize(("policy", "replaced"), [
    pytest.param("TerminatingOrFailed", True, id="terminating-or-failed"),
    pytest.param("Failed", False, id="failed")])
async def test_pod_replacement_policy(policy: str, replaced: bool) -> None:
    ctrl, api, _, _ = setup()
    api.put(job(spec={"completions": 1, "podReplacementPolicy": policy}))
    await sync(ctrl)
    (p,) = pods(api)
    terminating = api.objects[("pods", f"{NS}/{p.pod.metadata.name}")]
    terminating.pod.metadata.deletion_timestamp.FromSeconds(int(NOW))
    api.put(terminating)
    await sync(ctrl)
    assert (len(pods(api)) == 2) is replaced
    assert get_job(api).status.terminating == 1


async def test_failure_is_written_before_pods_are_deleted_and_leftovers_go() -> None:
    ctrl, api, _, _ = setup()
    api.put(job(spec={"completions": 2, "parallelism": 2, "backoffLimit": 0}))
    await sync(ctrl)
    api.fail[("delete", "pods")] = Failure(Invalid("no"))
    finish(api, pods(api)[0], "Failed")
    with pytest.raises(Invalid):
        await sync(ctrl)
    verbs = [(v, r) for v, r, _ in api.calls]
    assert verbs.index(("update_status", "jobs"), 2) < verbs.index(("delete", "pods"))
    assert conditions(api)["Failed"][0] == "True" and len(pods(api)) == 2
    del api.fail[("delete", "pods")]
    await sync(ctrl)  # a finished, failed Job: its leftover active pod is deleted
    assert [p.pod.status.phase for p in pods(api)] == ["Failed"]
