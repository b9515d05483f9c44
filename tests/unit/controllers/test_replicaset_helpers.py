"""The ReplicaSet controller's building blocks: ActivePods deletion order, availability,
slow-start batches and expectations."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kemu.api import manifest
from kemu.api.v1 import core_pb2
from kemu.client.errors import Invalid
from kemu.client.workqueue import WorkQueue
from kemu.services.controllers import podutil
from kemu.services.controllers.expectations import Expectations
from kemu.services.controllers.podcontrol import NoLabels, pod_from_template, slow_start_batch
from kemu.services.controllers.requeue import Requeuer

T0 = "2026-01-01T00:00:00Z"


def pod(name: str, *, node: str = "n1", phase: str = "Running", ready: bool | None = True,
        ready_at: str = T0, created: str = T0, restarts: int = 0, deleting: bool = False
        ) -> core_pb2.Pod:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = T0
    status: dict[str, Any] = {"phase": phase,
                              "containerStatuses": [{"name": "c", "restartCount": restarts}]}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False",
                                 "lastTransitionTime": ready_at}]
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "x"}]}
    if node:
        spec["nodeName"] = node
    return manifest.from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                               "spec": spec, "status": status}).pod


@pytest.mark.parametrize(("pods", "first"), [
    pytest.param([pod("assigned"), pod("unassigned", node="")], "unassigned",
                 id="unassigned-first"),
    pytest.param([pod("running"), pod("unknown", phase="Unknown"),
                  pod("pending", phase="Pending")], "pending", id="pending-unknown-running"),
    pytest.param([pod("running"), pod("unknown", phase="Unknown")], "unknown",
                 id="unknown-before-running"),
    pytest.param([pod("ready"), pod("not-ready", ready=False)], "not-ready",
                 id="not-ready-first"),
    pytest.param([pod("long", ready_at="2026-01-01T00:00:00Z"),
                  pod("recent", ready_at="2026-01-01T00:05:00Z")], "recent",
                 id="most-recently-ready-first"),
    pytest.param([pod("calm"), pod("crashy", restarts=5)], "crashy",
                 id="more-restarts-first"),
    pytest.param([pod("old", created="2026-01-01T00:00:00Z"),
                  pod("new", created="2026-01-01T01:00:00Z")], "new", id="newer-first"),
    pytest.param([pod("ready-pending-node", node=""), pod("not-ready", ready=False)],
                 "ready-pending-node", id="assignment-beats-readiness"),
])
def test_deletion_order(pods: list[core_pb2.Pod], first: str) -> None:
    assert podutil.pods_to_delete(pods, 1)[0].metadata.name == first


def test_pods_to_delete_takes_count() -> None:
    pods = [pod("a"), pod("b", node=""), pod("c", ready=False)]
    assert [p.metadata.name for p in podutil.pods_to_delete(pods, 2)] == ["b", "c"]
    assert podutil.pods_to_delete(pods, 0) == []


@pytest.mark.parametrize(("p", "min_ready", "now", "want"), [
    pytest.param(pod("a"), 0, 0.0, True, id="ready-no-min"),
    pytest.param(pod("a", ready=False), 0, 0.0, False, id="not-ready"),
    pytest.param(pod("a", ready=None), 0, 0.0, False, id="no-condition"),
    pytest.param(pod("a"), 10, 1767225600.0 + 5, False, id="ready-too-short"),
    pytest.param(pod("a"), 10, 1767225600.0 + 11, True, id="ready-long-enough"),
])
def test_available(p: core_pb2.Pod, min_ready: int, now: float, want: bool) -> None:
    assert podutil.is_available(p, min_ready, now) is want


def test_active_excludes_terminating_and_finished() -> None:
    assert podutil.is_active(pod("a"))
    assert not podutil.is_active(pod("a", deleting=True))
    assert not podutil.is_active(pod("a", phase="Succeeded"))
    assert not podutil.is_active(pod("a", phase="Failed"))


@pytest.mark.parametrize(("count", "fail_at", "want_calls", "want_ok", "failed"), [
    pytest.param(10, None, [1, 2, 4, 3], 10, False, id="all-succeed"),
    pytest.param(10, 5, [1, 2, 4], 6, True, id="third-batch-fails-stop"),
    pytest.param(10, 1, [1], 0, True, id="first-fails"),
    pytest.param(0, None, [], 0, False, id="nothing"),
])
async def test_slow_start_batch(count: int, fail_at: int | None, want_calls: list[int],
                                want_ok: int, failed: bool) -> None:
    calls = 0
    in_flight = 0
    seen: list[int] = []  # concurrency as each call resumes: 4,3,2,1 for a batch of 4

    async def fn() -> None:
        nonlocal calls, in_flight
        calls += 1
        n = calls
        in_flight += 1
        await asyncio.sleep(0)
        seen.append(in_flight)
        in_flight -= 1
        if n == fail_at:
            raise Invalid("nope")

    ok, err = await slow_start_batch(count, fn)
    assert ok == want_ok and (err is not None) is failed
    batches = [n for i, n in enumerate(seen) if i == 0 or n > seen[i - 1]]
    assert batches == want_calls and calls == sum(want_calls)


def test_expectations_count_down_and_expire() -> None:
    clock = [0.0]
    exp = Expectations(timeout=60, clock=lambda: clock[0])
    assert exp.satisfied("ns/a")
    exp.expect_creations("ns/a", 2)
    assert not exp.satisfied("ns/a")
    exp.creation_observed("ns/a")
    assert exp.pending("ns/a") == (1, 0) and not exp.satisfied("ns/a")
    exp.creation_observed("ns/a")
    assert exp.satisfied("ns/a")
    exp.expect_creations("ns/a", 1)
    clock[0] = 61
    assert exp.satisfied("ns/a"), "an expired record must not block the owner"


def test_expectations_count_each_deleted_pod_once() -> None:
    exp = Expectations()
    exp.expect_deletions("ns/a", ["u1", "u2"])
    exp.deletion_observed("ns/a", "u1")
    exp.deletion_observed("ns/a", "u1")  # terminating update, then the delete
    exp.deletion_observed("ns/a", "other")
    assert exp.pending("ns/a") == (0, 1)
    exp.deletion_observed("ns/a", "u2")
    assert exp.satisfied("ns/a")
    exp.forget("ns/a")
    assert exp.pending("ns/a") == (0, 0)


def test_pod_from_template() -> None:
    template = core_pb2.PodTemplateSpec()
    template.metadata.labels["app"] = "web"
    template.metadata.annotations["note"] = "x"
    template.spec.containers.add(name="c", image="img")
    p = pod_from_template(template, "ns", "web", None)
    assert (p.metadata.generate_name, p.metadata.namespace, dict(p.metadata.labels),
            dict(p.metadata.annotations)) == ("web-", "ns", {"app": "web"}, {"note": "x"})
    assert p.spec.containers[0].image == "img" and not p.metadata.owner_references
    del template.metadata.labels["app"]
    with pytest.raises(NoLabels):
        pod_from_template(template, "ns", "web", None)


async def test_requeuer_keeps_the_earliest_pending_wake_up() -> None:
    clock = [0.0]
    queue: WorkQueue[str] = WorkQueue()
    r = Requeuer(queue, clock=lambda: clock[0])
    assert r.after("k", 10)
    assert not r.after("k", 20), "a later one is covered by the pending one"
    assert r.after("k", 5), "an earlier one is scheduled"
    clock[0] = 6
    assert r.after("k", 10), "the pending one has fired"
    r.forget("k")
    assert r.after("k", 30)
    assert len(queue._timers) == 4
    for handle in queue._timers:
        handle.cancel()
