"""The Lease elector against a fake client and a fake clock: create, hold off while the
record is fresh by our own clock, take over once it is stale, lose a write race, release,
and give up (LeaderElectionLost) when renewal fails for the renew deadline."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from kemu.api.v1 import api_pb2
from kemu.client.errors import AlreadyExists, Conflict, NotFound, Unavailable
from kemu.client.leaderelection import (
    LEADER_ELECTION,
    LeaderElectionConfig,
    LeaderElectionLost,
    LeaderElector,
)
from kemu.util.leaderflags import add_leader_election_flags, leader_election_options


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)


class FakeLeases:
    """Leases in a dict, with resourceVersion conflicts as the apiserver makes them."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], api_pb2.Object] = {}
        self.rv = 0
        self.down = False
        self.after_get: Callable[[], object] | None = None
        self.writes = 0

    def _check(self) -> None:
        if self.down:
            raise Unavailable("connection refused")

    async def get(self, resource: str, name: str, namespace: str = "") -> api_pb2.Object:
        self._check()
        assert resource == "leases"
        obj = self.objects.get((namespace, name))
        if obj is None:
            raise NotFound(f'leases "{name}" not found')
        out = api_pb2.Object()
        out.CopyFrom(obj)
        if self.after_get is not None:
            hook, self.after_get = self.after_get, None
            await hook()  # type: ignore[misc]
        return out

    def _store(self, obj: api_pb2.Object) -> api_pb2.Object:
        self.rv += 1
        self.writes += 1
        obj.lease.metadata.resource_version = str(self.rv)
        key = (obj.lease.metadata.namespace, obj.lease.metadata.name)
        self.objects[key] = api_pb2.Object()
        self.objects[key].CopyFrom(obj)
        return obj

    async def create(self, obj: api_pb2.Object) -> api_pb2.Object:
        self._check()
        key = (obj.lease.metadata.namespace, obj.lease.metadata.name)
        if key in self.objects:
            raise AlreadyExists("exists")
        return self._store(obj)

    async def update(self, obj: api_pb2.Object) -> api_pb2.Object:
        self._check()
        key = (obj.lease.metadata.namespace, obj.lease.metadata.name)
        current = self.objects[key]
        if current.lease.metadata.resource_version != obj.lease.metadata.resource_version:
            raise Conflict("the object has been modified")
        return self._store(obj)

    def lease(self, name: str = "sched") -> api_pb2.Object:
        return self.objects[("kube-system", name)]


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def emit(self, kind: str, obj: object, type_: str, reason: str, message: str, *,
             field_path: str = "") -> None:
        self.seen.append((kind, reason, message))


def config(identity: str, **kw: float) -> LeaderElectionConfig:
    return LeaderElectionConfig(resource_name="sched", identity=identity, **kw)  # type: ignore[arg-type]


def elector(leases: FakeLeases, clock: FakeClock, identity: str,
            events: Events | None = None) -> LeaderElector:
    return LeaderElector(leases, config(identity), clock=clock, events=events)


async def test_first_candidate_creates_then_renews_keeping_acquire_time() -> None:
    leases, clock, events = FakeLeases(), FakeClock(), Events()
    a = elector(leases, clock, "host_a", events)
    assert await a.try_acquire_or_renew()
    spec = leases.lease().lease.spec
    assert (spec.holder_identity, spec.lease_duration_seconds, spec.lease_transitions) == (
        "host_a", 15, 0)
    acquired = spec.acquire_time.ToSeconds()
    assert a.is_leader
    clock.t += 2
    assert await a.try_acquire_or_renew()
    spec = leases.lease().lease.spec
    assert spec.acquire_time.ToSeconds() == acquired
    assert spec.renew_time.ToSeconds() == acquired + 2
    assert spec.lease_transitions == 0
    assert events.seen == [("Lease", LEADER_ELECTION, "host_a became leader")]  # once


async def test_standby_waits_a_full_lease_duration_of_its_own_clock() -> None:
    leases, clock, events = FakeLeases(), FakeClock(), Events()
    a, b = elector(leases, clock, "host_a"), elector(leases, clock, "host_b", events)
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    assert b.holder == "host_a" and not b.is_leader
    # The leader renews at t+10; b first sees that record at t+16 and counts from there.
    clock.t += 10
    assert await a.try_acquire_or_renew()
    clock.t += 6
    assert not await b.try_acquire_or_renew()
    clock.t += 14.99
    assert not await b.try_acquire_or_renew()
    clock.t += 0.02
    assert await b.try_acquire_or_renew()
    spec = leases.lease().lease.spec
    assert (spec.holder_identity, spec.lease_transitions) == ("host_b", 1)
    assert events.seen == [("Lease", LEADER_ELECTION, "host_b became leader")]
    # The old leader's next round sees it lost.
    assert not await a.try_acquire_or_renew()
    assert not a.is_leader and a.holder == "host_b"


async def test_wall_clock_renew_time_is_never_trusted() -> None:
    """A renewTime far in the past (another machine's clock) does not shorten the wait."""
    leases, clock = FakeLeases(), FakeClock()
    a = elector(leases, clock, "host_a")
    assert await a.try_acquire_or_renew()
    stale = leases.lease()
    stale.lease.spec.renew_time.FromSeconds(0)
    b = elector(leases, clock, "host_b")
    assert not await b.try_acquire_or_renew()


async def test_conflict_means_another_candidate_won() -> None:
    leases, clock = FakeLeases(), FakeClock()
    old = elector(leases, clock, "host_old")
    assert await old.try_acquire_or_renew()
    b, c = elector(leases, clock, "host_b"), elector(leases, clock, "host_c")
    assert not await b.try_acquire_or_renew() and not await c.try_acquire_or_renew()
    clock.t += 16

    async def c_first() -> None:
        assert await c.try_acquire_or_renew()
    leases.after_get = c_first  # c writes between b's read and b's update
    assert not await b.try_acquire_or_renew()
    assert leases.lease().lease.spec.holder_identity == "host_c"
    assert c.is_leader and not b.is_leader


async def test_release_lets_a_standby_take_over_at_once() -> None:
    leases, clock = FakeLeases(), FakeClock()
    a, b = elector(leases, clock, "host_a"), elector(leases, clock, "host_b")
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    assert await a.release()
    spec = leases.lease().lease.spec
    assert (spec.holder_identity, spec.lease_duration_seconds) == ("", 1)
    assert not a.is_leader
    assert await b.try_acquire_or_renew()  # no clock advance needed
    assert leases.lease().lease.spec.lease_transitions == 1
    assert await a.release()  # not the holder: nothing to do, nothing written
    assert leases.lease().lease.spec.holder_identity == "host_b"


async def test_release_when_apiserver_is_down_reports_false() -> None:
    leases, clock = FakeLeases(), FakeClock()
    a = elector(leases, clock, "host_a")
    assert await a.try_acquire_or_renew()
    leases.down = True
    assert not await a.release()


async def test_unreachable_apiserver_is_a_lost_round_not_an_error() -> None:
    leases, clock = FakeLeases(), FakeClock()
    leases.down = True
    assert not await elector(leases, clock, "host_a").try_acquire_or_renew()


FAST = {"lease_duration": 1.0, "renew_deadline": 0.5, "retry_period": 0.05}


async def test_run_leads_until_renewal_fails_for_the_renew_deadline() -> None:
    leases = FakeLeases()
    e = LeaderElector(leases, config("host_a", **FAST))
    stopped = asyncio.Event()

    async def lead() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            stopped.set()
    task = asyncio.create_task(e.run(lead))
    await asyncio.wait_for(_until(lambda: e.is_leader), 2)
    await asyncio.sleep(0.2)
    assert leases.writes >= 3  # renewing every retry period
    leases.down = True
    down_at = time.monotonic()
    with pytest.raises(LeaderElectionLost, match=r"not renewed within 0\.5s"):
        await asyncio.wait_for(task, 3)
    took = time.monotonic() - down_at
    assert 0.4 < took < 1.0, took  # within retry period + renew deadline
    assert stopped.is_set() and not e.is_leader
    assert await e.release()  # lost: nothing to release


async def test_run_loses_at_once_when_someone_else_holds_the_lease() -> None:
    leases = FakeLeases()
    e = LeaderElector(leases, config("host_a", **FAST))
    task = asyncio.create_task(e.run(lambda: asyncio.sleep(3600)))
    await asyncio.wait_for(_until(lambda: e.is_leader), 2)
    leases.lease().lease.spec.holder_identity = "host_intruder"
    with pytest.raises(LeaderElectionLost, match="host_intruder"):
        await asyncio.wait_for(task, 1)


async def test_run_returns_when_lead_returns_and_candidates_wait_their_turn() -> None:
    leases = FakeLeases()
    a = LeaderElector(leases, config("host_a", **FAST))
    b = LeaderElector(leases, config("host_b", **FAST))
    done = asyncio.Event()
    a_task = asyncio.create_task(a.run(done.wait))
    await asyncio.wait_for(_until(lambda: a.is_leader), 2)
    b_led = asyncio.Event()
    b_task = asyncio.create_task(b.run(lambda: _set_and_wait(b_led)))
    await asyncio.sleep(0.3)
    assert not b_led.is_set() and b.holder == "host_a"
    done.set()
    await asyncio.wait_for(a_task, 1)
    released = time.monotonic()
    assert await a.release()
    await asyncio.wait_for(b_led.wait(), 1)
    assert time.monotonic() - released < 0.2  # next retry, not a lease duration
    b_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await b_task


async def _set_and_wait(event: asyncio.Event) -> None:
    event.set()
    await asyncio.sleep(3600)


async def _until(pred: Callable[[], bool]) -> None:
    while not pred():
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(("kw", "needle"), [
    pytest.param({"lease_duration": 10.0, "renew_deadline": 10.0}, "lease-duration must be "
                 "greater", id="lease-not-above-deadline"),
    pytest.param({"renew_deadline": 2.0, "retry_period": 2.0}, "renew-deadline must be",
                 id="deadline-vs-retry"),
    pytest.param({"retry_period": 0.0}, "retry-period", id="zero-retry"),
    pytest.param({"lease_duration": 0.5, "renew_deadline": 0.3, "retry_period": 0.1},
                 "at least 1s", id="sub-second-lease"),
])
def test_config_rejects(kw: dict[str, float], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        config("x", **kw)


def test_identity_is_hostname_and_uuid() -> None:
    a = LeaderElectionConfig(resource_name="kube-scheduler").identity
    host, _, uid = a.rpartition("_")
    assert host and len(uid) == 36
    assert a != LeaderElectionConfig(resource_name="kube-scheduler").identity


def _parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_leader_election_flags(p, "kube-scheduler")
    return p.parse_args(list(argv))


def test_flags_default_on_with_kubernetes_timings() -> None:
    assert leader_election_options(_parse()) == {
        "resource_name": "kube-scheduler", "resource_namespace": "kube-system",
        "lease_duration": 15.0, "renew_deadline": 10.0, "retry_period": 2.0}


@pytest.mark.parametrize("argv", [("--leader-elect=false",), ("--leader-elect", "false"),
                                  ("--leader-elect=0",)])
def test_flags_off(argv: tuple[str, ...]) -> None:
    assert leader_election_options(_parse(*argv)) is None


def test_flags_short_timings() -> None:
    opts = leader_election_options(_parse(
        "--leader-elect", "--leader-elect-lease-duration", "3s",
        "--leader-elect-renew-deadline", "2s", "--leader-elect-retry-period", "500ms",
        "--leader-elect-resource-name", "mine", "--leader-elect-resource-namespace", "ha"))
    assert opts == {"resource_name": "mine", "resource_namespace": "ha",
                    "lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.5}
    LeaderElectionConfig(**opts)  # valid
