"""The scheduling loop with a fake API client: handlers fed directly, binds and status
writes recorded. Covers assumed pods under a burst, failures (condition + aggregated
event), retries on cluster changes, bind conflicts and errors."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest

from kemu.api.v1 import core_pb2
from kemu.client.errors import Conflict, Unavailable
from kemu.services.scheduler.config import SchedulerConfig
from kemu.services.scheduler.scheduler import (
    Scheduler,
    node_scheduling_changed,
    pod_scheduling_changed,
    set_unscheduled,
)
from tests.unit.scheduler.sched_builders import (
    FakeClient,
    node,
    pod,
    wrap_node,
    wrap_pod,
)

CONFIG = SchedulerConfig(pod_initial_backoff_seconds=0.01, pod_max_backoff_seconds=0.05,
                         seed=7)


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def running(client: FakeClient, config: SchedulerConfig = CONFIG
                  ) -> AsyncIterator[Scheduler]:
    sched = Scheduler(config, client)
    task = asyncio.create_task(sched.run())
    try:
        yield sched
    finally:
        await sched.queue.shut_down()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sched.drain(1)


def add_node(sched: Scheduler, n: core_pb2.Node) -> None:
    sched.on_node(None, wrap_node(n))


def add_pod(sched: Scheduler, p: core_pb2.Pod) -> None:
    sched.on_pod(None, wrap_pod(p))


async def test_burst_never_overcommits_with_slow_binds() -> None:
    client = FakeClient(bind_delay=0.02)
    async with running(client) as sched:
        for i in range(5):
            add_node(sched, node(f"n{i}", cpu="2"))
        for i in range(50):
            add_pod(sched, pod(f"p{i}", cpu="300m"))
        await until(lambda: len(client.binds) == 30 and sched.queue.unschedulable == 20)
        await asyncio.sleep(0.05)
        per_node = Counter(n for _, _, n in client.binds)
        assert per_node == {f"n{i}": 6 for i in range(5)}
        assert len(client.binds) == 30


async def test_unfit_pod_gets_condition_and_one_aggregated_event() -> None:
    client = FakeClient()
    async with running(client) as sched:
        n = node("small", cpu="1")
        add_node(sched, n)
        add_pod(sched, pod("big", cpu="2"))
        msg = "0/1 nodes are available: 1 Insufficient cpu."
        await until(lambda: len(client.statuses) == 1 and len(client.events) == 1)
        cond = client.statuses[0].status.conditions[0]
        assert (cond.type, cond.status, cond.reason, cond.message) == \
            ("PodScheduled", "False", "Unschedulable", msg)
        # A relevant node change retries the pod: same message -> same event, count 2,
        # and the condition is not written again.
        relabelled = node("small", cpu="1", labels={"x": "y"})
        sched.on_node(wrap_node(n), wrap_node(relabelled))
        await until(lambda: next(iter(client.events.values())).event.count == 2)
        assert len(client.events) == 1
        assert len(client.statuses) == 1
        assert client.binds == []


async def test_parked_pod_scheduled_when_big_node_added() -> None:
    client = FakeClient()
    async with running(client) as sched:
        add_node(sched, node("small", cpu="1"))
        add_pod(sched, pod("big", cpu="2"))
        await until(lambda: sched.queue.unschedulable == 1)
        add_node(sched, node("large", cpu="4"))
        await until(lambda: client.binds == [("default", "big", "large")])
        await sched.drain(1)
        reasons = sorted(e.event.reason for e in client.events.values())
        assert reasons == ["FailedScheduling", "Scheduled"]


async def test_heartbeat_does_not_retry_parked_pods() -> None:
    old = node("a", cpu="1")
    new = node("a", cpu="1")
    new.status.conditions[0].last_heartbeat_time.FromSeconds(12345)
    new.status.images.add(names=["busybox"])
    assert not node_scheduling_changed(old, new)
    client = FakeClient()
    async with running(client) as sched:
        add_node(sched, old)
        add_pod(sched, pod("big", cpu="2"))
        await until(lambda: sched.queue.unschedulable == 1)
        sched.on_node(wrap_node(old), wrap_node(new))
        assert sched.queue.unschedulable == 1


@pytest.mark.parametrize(("change", "expected"), [
    pytest.param(lambda n: setattr(n.spec, "unschedulable", True), True, id="cordon"),
    pytest.param(lambda n: n.status.allocatable.update({"cpu": "8"}), True, id="allocatable"),
    pytest.param(lambda n: n.metadata.labels.update({"a": "b"}), True, id="labels"),
    pytest.param(lambda n: n.spec.taints.add(key="k", effect="NoSchedule"), True, id="taint"),
    pytest.param(lambda n: setattr(n.status.conditions[0], "status", "False"), True,
                 id="ready-flips"),
    pytest.param(lambda n: n.status.addresses.add(type="InternalIP", address="10.0.0.1"),
                 False, id="addresses"),
])
def test_node_scheduling_changed(change: Callable[[core_pb2.Node], object],
                                 expected: bool) -> None:
    old, new = node("a"), node("a")
    change(new)
    assert node_scheduling_changed(old, new) is expected


def test_pod_scheduling_changed_ignores_status() -> None:
    old = pod("p", cpu="1")
    new = pod("p", cpu="1")
    set_unscheduled(new, "Unschedulable", "0/1 nodes are available", 0)
    new.metadata.resource_version = "99"
    assert not pod_scheduling_changed(old, new)
    new.metadata.labels["app"] = "x"
    assert pod_scheduling_changed(old, new)


def test_set_unscheduled_is_idempotent() -> None:
    p = pod("p")
    assert set_unscheduled(p, "Unschedulable", "m", 10)
    assert not set_unscheduled(p, "Unschedulable", "m", 20)
    assert set_unscheduled(p, "Unschedulable", "m2", 30)
    [cond] = p.status.conditions
    assert cond.last_transition_time.seconds == 10  # status stayed False


async def test_bind_conflict_drops_assumption_without_retry() -> None:
    client = FakeClient(bind_errors={"taken": Conflict("already assigned")})
    async with running(client) as sched:
        add_node(sched, node("a", cpu="1"))
        add_pod(sched, pod("taken", cpu="800m"))
        await until(lambda: client.bind_attempts == 1 and not sched._bind_tasks)
        assert sched.cache.assumed_count == 0 and sched.bound == 0
        await asyncio.sleep(0.1)
        assert client.bind_attempts == 1  # not retried
        assert sched.cache.nodes["a"].usage.pods == 0
        # Someone else bound it: the informer shows it assigned; it is counted, not queued.
        add_pod(sched, pod("taken", cpu="800m", node_name="a"))
        assert sched.cache.nodes["a"].usage.requested["cpu"] == 800
        assert "default/taken" not in sched.pending


async def test_bind_error_retries_with_backoff() -> None:
    client = FakeClient(bind_errors={"flaky": Unavailable("apiserver restarting")})
    async with running(client) as sched:
        add_node(sched, node("a"))
        add_pod(sched, pod("flaky"))
        await until(lambda: sched.queue._attempts.get("default/flaky", 0) >= 1)
        del client.bind_errors["flaky"]
        await until(lambda: client.binds == [("default", "flaky", "a")])


async def test_deleting_an_assigned_pod_retries_parked_pods() -> None:
    client = FakeClient()
    async with running(client) as sched:
        add_node(sched, node("a", cpu="1"))
        running_pod = pod("old", cpu="1", node_name="a")
        add_pod(sched, running_pod)
        add_pod(sched, pod("new", cpu="1"))
        await until(lambda: sched.queue.unschedulable == 1)
        sched.on_pod(wrap_pod(running_pod), None)
        await until(lambda: client.binds == [("default", "new", "a")])


async def test_finished_pods_free_their_resources() -> None:
    client = FakeClient()
    async with running(client) as sched:
        add_node(sched, node("a", cpu="1"))
        done = pod("job", cpu="1", node_name="a")
        add_pod(sched, done)
        add_pod(sched, pod("next", cpu="1"))
        await until(lambda: sched.queue.unschedulable == 1)
        finished = pod("job", cpu="1", node_name="a")
        finished.status.phase = "Succeeded"
        sched.on_pod(wrap_pod(done), wrap_pod(finished))
        await until(lambda: client.binds == [("default", "next", "a")])


@pytest.mark.parametrize("mutate", [
    pytest.param(lambda p: setattr(p.spec, "scheduler_name", "other-scheduler"),
                 id="other-scheduler"),
    pytest.param(lambda p: p.metadata.deletion_timestamp.FromSeconds(1), id="terminating"),
    pytest.param(lambda p: setattr(p.status, "phase", "Failed"), id="finished"),
])
async def test_pods_not_ours_are_left_alone(mutate: Callable[[core_pb2.Pod], object]) -> None:
    client = FakeClient()
    async with running(client) as sched:
        add_node(sched, node("a"))
        p = pod("p")
        mutate(p)
        add_pod(sched, p)
        add_pod(sched, pod("mine"))
        await until(lambda: len(client.binds) == 1)
        assert client.binds == [("default", "mine", "a")]


async def test_no_nodes_message() -> None:
    client = FakeClient()
    async with running(client) as sched:
        add_pod(sched, pod("lonely"))
        await until(lambda: len(client.statuses) == 1)
        assert client.statuses[0].status.conditions[0].message == \
            "no nodes available to schedule pods"


async def test_scheduling_gates_hold_the_pod() -> None:
    client = FakeClient()
    async with running(client) as sched:
        add_node(sched, node("a"))
        gated = pod("gated")
        gated.spec.scheduling_gates.add(name="example.com/wait")
        add_pod(sched, gated)
        await until(lambda: len(client.statuses) == 1)
        cond = client.statuses[0].status.conditions[0]
        assert (cond.reason, cond.message) == (
            "SchedulingGated", "Scheduling is blocked due to non-empty scheduling gates")
        assert client.events == {}
        ungated = pod("gated")
        sched.on_pod(wrap_pod(gated), wrap_pod(ungated))
        await until(lambda: client.binds == [("default", "gated", "a")])


async def test_replicas_spread_evenly() -> None:
    client = FakeClient(bind_delay=0.01)
    async with running(client) as sched:
        for name in ("a", "b", "c"):
            add_node(sched, node(name))
        for i in range(6):
            add_pod(sched, pod(f"web-{i}", owner="web", cpu="100m"))
        await until(lambda: len(client.binds) == 6)
        assert Counter(n for _, _, n in client.binds) == {"a": 2, "b": 2, "c": 2}
