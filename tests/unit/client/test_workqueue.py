"""The work queue's client-go semantics."""

from __future__ import annotations

import asyncio

import pytest

from kemu.client.workqueue import ShutDown, WorkQueue, run_workers


async def test_keys_are_deduplicated_while_waiting() -> None:
    q: WorkQueue[str] = WorkQueue()
    for key in ("a", "b", "a", "a"):
        q.add(key)
    assert len(q) == 2
    assert [await q.get(), await q.get()] == ["a", "b"]


async def test_a_key_is_never_processed_twice_at_once() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")  # re-added while processing: parked until done
    assert len(q) == 0
    q.done(key)
    assert len(q) == 1
    assert await q.get() == "a"


async def test_rate_limited_requeue_backs_off_and_forget_resets() -> None:
    q: WorkQueue[str] = WorkQueue(base_delay=0.01)
    q.add_rate_limited("a")
    q.add_rate_limited("a")
    assert q.num_requeues("a") == 2
    assert await asyncio.wait_for(q.get(), 1) == "a"
    q.forget("a")
    assert q.num_requeues("a") == 0


async def test_workers_retry_failures_then_stop_on_shutdown() -> None:
    q: WorkQueue[str] = WorkQueue(base_delay=0.001)
    attempts: list[str] = []
    finished = asyncio.Event()

    async def reconcile(key: str) -> None:
        attempts.append(key)
        if len(attempts) < 3:
            raise RuntimeError("transient")
        finished.set()

    q.add("x")
    runner = asyncio.create_task(run_workers(q, reconcile, 2))
    await asyncio.wait_for(finished.wait(), 2)
    await q.shut_down()
    await asyncio.wait_for(runner, 2)
    assert attempts == ["x", "x", "x"]
    with pytest.raises(ShutDown):
        await q.get()
