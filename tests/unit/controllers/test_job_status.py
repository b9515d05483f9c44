"""The Job arithmetic on its own: how many pods should run (parallelism, completions, the
work-queue rule, suspend), when a Job is complete, past its backoffLimit (failed pods, or
OnFailure restarts of pending and running pods), past its deadline, and due for its
TTL."""

from __future__ import annotations

from typing import Any

import pytest

from kemu.api import manifest
from kemu.api.v1 import batch_pb2, core_pb2
from kemu.services.controllers import job_status as js


def job(restart: str = "Never", **spec: Any) -> batch_pb2.Job:
    return manifest.from_dict({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "n"},
        "spec": {**spec, "template": {"spec": {"restartPolicy": restart, "containers": [
            {"name": "c", "image": "x"}]}}}}).job


def pod(phase: str, restarts: int = 0, init_restarts: int = 0) -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.status.phase = phase
    p.status.container_statuses.add(name="c", restart_count=restarts)
    p.status.init_container_statuses.add(name="i", restart_count=init_restarts)
    return p


@pytest.mark.parametrize(("spec", "succeeded", "active", "want"), [
    pytest.param({"completions": 5, "parallelism": 3}, 0, 0, 3, id="parallelism-bound"),
    pytest.param({"completions": 5, "parallelism": 3}, 4, 1, 1, id="remaining-bound"),
    pytest.param({"completions": 5, "parallelism": 3}, 6, 0, 0, id="over"),
    pytest.param({"parallelism": 2}, 0, 1, 2, id="work-queue-before-success"),
    pytest.param({"parallelism": 2}, 1, 1, 1, id="work-queue-after-success"),
    pytest.param({"completions": 2, "parallelism": 2, "suspend": True}, 0, 2, 0, id="suspended"),
    pytest.param({"completions": 2}, 0, 0, 1, id="parallelism-unset-is-1"),
])
def test_wanted_active(spec: dict[str, Any], succeeded: int, active: int, want: int) -> None:
    assert js.wanted_active(job(**spec), succeeded, active) == want


@pytest.mark.parametrize(("spec", "succeeded", "active", "done"), [
    pytest.param({"completions": 2}, 2, 0, True, id="reached"),
    pytest.param({"completions": 2}, 2, 1, False, id="still-running"),
    pytest.param({"completions": 0}, 0, 0, True, id="zero-completions"),
    pytest.param({"parallelism": 3}, 1, 0, True, id="work-queue"),
    pytest.param({"parallelism": 3}, 0, 0, False, id="work-queue-no-success"),
])
def test_complete(spec: dict[str, Any], succeeded: int, active: int, done: bool) -> None:
    assert js.complete(job(**spec), succeeded, active) is done


@pytest.mark.parametrize(("restart", "limit", "pods", "past"), [
    pytest.param("Never", 1, [pod("Failed")], False, id="never-at-limit"),
    pytest.param("Never", 1, [pod("Failed"), pod("Failed")], True, id="never-over"),
    pytest.param("OnFailure", 3, [pod("Running", 1, 1)], False, id="on-failure-below"),
    pytest.param("OnFailure", 3, [pod("Running", 2, 1)], True, id="on-failure-init-counts"),
    pytest.param("OnFailure", 0, [pod("Pending", 1)], True, id="on-failure-limit-0"),
    pytest.param("OnFailure", 1, [pod("Succeeded", 5)], False,
                 id="on-failure-finished-pods-ignored"),
    pytest.param("Never", 1, [pod("Running", 5)], False, id="never-ignores-restarts"),
])
def test_past_backoff_limit(restart: str, limit: int, pods: list[core_pb2.Pod],
                            past: bool) -> None:
    j = job(restart, backoffLimit=limit)
    assert js.past_backoff_limit(j, js.count_pods(j, pods)) is past


def test_counts_never_go_below_status() -> None:
    j = job()
    j.status.succeeded, j.status.failed = 3, 2
    counts = js.count_pods(j, [pod("Succeeded"), pod("Running")])
    assert (counts.succeeded, counts.failed, len(counts.active)) == (3, 2, 1)


def test_deadline_and_ttl() -> None:
    j = job(activeDeadlineSeconds=30, ttlSecondsAfterFinished=100)
    status = batch_pb2.JobStatus()
    assert js.deadline_at(j, status) is None  # not started
    status.start_time.FromSeconds(1000)
    assert js.deadline_at(j, status) == 1030
    j.spec.suspend = True
    assert js.deadline_at(j, status) is None
    assert js.ttl_expires_at(j) is None  # not finished
    j.status.conditions.append(js.new_condition(js.FAILED, "True", "x", "y", 2000))
    assert js.finished(j) == js.FAILED and js.ttl_expires_at(j) == 2100


def test_set_condition_keeps_transition_time_for_the_same_status() -> None:
    status = batch_pb2.JobStatus()
    assert js.set_condition(status, js.new_condition("Suspended", "True", "a", "m", 10))
    assert not js.set_condition(status, js.new_condition("Suspended", "True", "a", "m", 20))
    assert js.set_condition(status, js.new_condition("Suspended", "True", "b", "m", 30))
    assert status.conditions[0].last_transition_time.seconds == 10
    assert js.set_condition(status, js.new_condition("Suspended", "False", "c", "m", 40))
    assert status.conditions[0].last_transition_time.seconds == 40
    assert len(status.conditions) == 1


def test_managed_by() -> None:
    assert not js.managed_elsewhere(job())
    assert not js.managed_elsewhere(job(managedBy="kubernetes.io/job-controller"))
    assert js.managed_elsewhere(job(managedBy="kueue.x-k8s.io/multikueue"))
