"""The cache (assume / confirm / forget, placeholder nodes) and the scheduling queue
(back-off, parking, moving back to active) with a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from kemu.services.scheduler.cache import Cache
from kemu.services.scheduler.nodeinfo import PodInfo
from kemu.services.scheduler.queue import SchedulingQueue
from tests.unit.scheduler.sched_builders import node, pod


def test_assumed_pod_counts_until_forgotten() -> None:
    cache = Cache()
    cache.set_node(node("a", cpu="2"))
    info = PodInfo.of(pod("p", cpu="1500m"))
    cache.assume(info, "a")
    assert cache.is_assumed("default/p")
    assert cache.nodes["a"].usage.requested["cpu"] == 1500
    cache.forget("default/p")
    assert cache.nodes["a"].usage.requested["cpu"] == 0
    assert cache.nodes["a"].usage.pods == 0


def test_confirmation_replaces_assumption_and_forget_is_then_a_no_op() -> None:
    cache = Cache()
    cache.set_node(node("a"))
    cache.assume(PodInfo.of(pod("p", cpu="1")), "a")
    cache.add_pod(PodInfo.of(pod("p", cpu="1", node_name="a")), "a")
    assert not cache.is_assumed("default/p")
    cache.forget("default/p")
    assert cache.nodes["a"].usage.requested["cpu"] == 1000
    assert cache.nodes["a"].usage.pods == 1


def test_pod_moves_when_confirmed_elsewhere() -> None:
    cache = Cache()
    cache.set_node(node("a"))
    cache.set_node(node("b"))
    cache.assume(PodInfo.of(pod("p", cpu="1")), "a")
    cache.add_pod(PodInfo.of(pod("p", cpu="1", node_name="b")), "b")
    assert cache.nodes["a"].usage.pods == 0
    assert cache.nodes["b"].usage.pods == 1
    assert cache.node_of("default/p") == "b"


def test_pods_on_unknown_node_count_once_it_appears() -> None:
    cache = Cache()
    cache.add_pod(PodInfo.of(pod("p", cpu="1", node_name="late")), "late")
    assert cache.node_list() == []
    cache.set_node(node("late", cpu="2"))
    assert [n.name for n in cache.node_list()] == ["late"]
    assert cache.nodes["late"].usage.requested["cpu"] == 1000


def test_removed_node_keeps_accounting_until_its_pods_go() -> None:
    cache = Cache()
    cache.set_node(node("a"))
    cache.add_pod(PodInfo.of(pod("p", cpu="1", node_name="a")), "a")
    cache.remove_node("a")
    assert cache.node_list() == []
    assert "a" in cache.nodes
    assert cache.remove_pod("default/p")
    assert "a" not in cache.nodes
    assert not cache.remove_pod("default/p")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_queue_backoff_doubles_and_caps() -> None:
    clock = Clock()
    q = SchedulingQueue(initial_backoff=1, max_backoff=10, clock=clock)
    durations = []
    for _ in range(6):
        q.mark_unschedulable("k")
        durations.append(q.backoff_duration("k"))
    assert durations == [1, 2, 4, 8, 10, 10]
    clock.now += 4
    assert q.backoff_remaining("k") == pytest.approx(6)
    q.forget("k")
    assert q.backoff_duration("k") == 0
    await q.shut_down()


async def test_parked_pod_moves_back_when_something_changes() -> None:
    clock = Clock()
    q = SchedulingQueue(initial_backoff=0.01, clock=clock)
    q.add("ns/a")
    assert await q.pop() == "ns/a"
    q.mark_unschedulable("ns/a")
    q.done("ns/a")
    assert q.unschedulable == 1 and len(q) == 0
    clock.now += 1  # back-off over
    assert q.move_all_to_active() == 1
    assert await asyncio.wait_for(q.pop(), 1) == "ns/a"
    assert q.unschedulable == 0
    await q.shut_down()


async def test_move_respects_remaining_backoff() -> None:
    q = SchedulingQueue(initial_backoff=0.2, max_backoff=1)
    q.mark_unschedulable("ns/a")
    q.move_all_to_active()
    assert len(q) == 0  # still backing off
    assert await asyncio.wait_for(q.pop(), 2) == "ns/a"
    await q.shut_down()


async def test_flush_leftover_retries_only_long_parked_pods() -> None:
    clock = Clock()
    q = SchedulingQueue(initial_backoff=0.001, max_unschedulable=30, clock=clock)
    q.mark_unschedulable("ns/old")
    clock.now += 20
    q.mark_unschedulable("ns/new")
    clock.now += 15
    assert q.flush_leftover() == 1
    assert await asyncio.wait_for(q.pop(), 1) == "ns/old"
    assert q.is_unschedulable("ns/new")
    await q.shut_down()


async def test_error_retries_after_backoff() -> None:
    q = SchedulingQueue(initial_backoff=0.05)
    q.mark_error("ns/a")
    assert len(q) == 0
    assert await asyncio.wait_for(q.pop(), 1) == "ns/a"
    await q.shut_down()
