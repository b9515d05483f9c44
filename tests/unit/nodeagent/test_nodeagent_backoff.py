"""Back-off arithmetic of the kubelet's crash-loop and image-pull back-off."""

from __future__ import annotations

import pytest

from kemu.nodeagent.backoff import Backoff
from kemu.nodeagent.clock import FakeClock


def crash(b: Backoff, clock: FakeClock, key: str = "uid/app") -> float:
    """A container of `key` died now: seconds until the agent restarts it (0: at once),
    recording the restart as the pod worker does."""
    now = clock.monotonic()
    wait = b.remaining(key, now)
    clock.advance(wait)
    b.next(key, now)
    return wait


def test_first_restart_immediate_then_doubling_to_the_cap() -> None:
    clock = FakeClock()
    b = Backoff(clock, initial=10, maximum=300)
    waits = [crash(b, clock) for _ in range(8)]
    assert waits == [0, 10, 20, 40, 80, 160, 300, 300]


def test_running_long_enough_resets() -> None:
    clock = FakeClock()
    b = Backoff(clock, initial=10, maximum=300)
    for _ in range(4):
        crash(b, clock)
    assert b.get("uid/app") == 80
    clock.advance(601)  # ran for more than 2 x max (10 min)
    assert crash(b, clock) == 0
    assert b.get("uid/app") == 10


@pytest.mark.parametrize(("elapsed", "in_backoff"), [
    pytest.param(0, True, id="just-died"),
    pytest.param(9.9, True, id="before-10s"),
    pytest.param(10.1, False, id="after-10s"),
])
def test_in_backoff_since_the_container_finished(elapsed: float, in_backoff: bool) -> None:
    clock = FakeClock()
    b = Backoff(clock, initial=10, maximum=300)
    b.next("k", clock.monotonic())
    died = clock.monotonic()
    clock.advance(elapsed)
    assert b.in_backoff_since("k", died) is in_backoff


def test_keys_are_independent_and_forget_by_pod() -> None:
    clock = FakeClock()
    b = Backoff(clock, initial=1, maximum=8)
    b.next("u1/a", clock.monotonic())
    b.next("u1/a", clock.monotonic())
    b.next("u2/a", clock.monotonic())
    assert (b.get("u1/a"), b.get("u2/a")) == (2, 1)
    b.forget_prefix("u1/")
    assert (b.get("u1/a"), b.get("u2/a")) == (0, 1)


def test_seed_restores_after_agent_restart() -> None:
    clock = FakeClock()
    b = Backoff(clock, initial=10, maximum=300)
    b.seed("k", 40, clock.monotonic())
    clock.advance(30)
    assert b.remaining("k", clock.monotonic() - 30) == pytest.approx(10)
    b.seed("k2", 10_000, clock.monotonic())
    assert b.get("k2") == 300


def test_remaining_since_update_for_image_pulls() -> None:
    clock = FakeClock()
    b = Backoff(clock, initial=10, maximum=300)
    assert b.remaining_since_update("img", clock.monotonic()) == 0
    b.next("img", clock.monotonic())
    clock.advance(4)
    assert b.remaining_since_update("img", clock.monotonic()) == pytest.approx(6)
    clock.advance(7)
    assert b.remaining_since_update("img", clock.monotonic()) == 0
    b.next("img", clock.monotonic())
    assert b.remaining_since_update("img", clock.monotonic()) == pytest.approx(20)
