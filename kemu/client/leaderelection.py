"""Leader election through a coordination Lease, as client-go's `tools/leaderelection`.

Several replicas of a component (the scheduler, the controller manager) run at once and
only the one holding the Lease `<namespace>/<name>` acts; the others keep warm caches and
wait. The rules are client-go's:

- Every step is `try_acquire_or_renew`: read the Lease, create it if missing, and write
  ourselves in as holder with a conditional update (the resourceVersion just read). A
  Conflict means another candidate wrote first: we lost that round.
- A candidate may take a Lease held by another only once it has seen the same record,
  unchanged, for leaseDurationSeconds of its *own* monotonic clock (the "observed time"):
  clocks of different machines are never compared, renewTime is for people to read.
- The leader renews every retry period; a renewal round that has not succeeded within the
  renew deadline means leadership is lost (`LeaderElectionLost`). Components exit then, as
  kube-scheduler does, and restart clean rather than keep acting on a stale belief.
- On a graceful stop the leader releases the Lease (holder cleared, duration 1 s), so a
  standby takes over on its next retry instead of after a whole lease duration.

Candidates retry every retry period plus up to `JITTER` of it, at random, so that standbys
do not poll in lockstep. client-go's factor is 1.2; a smaller one keeps the takeover
bound (lease duration + about two retry periods after the leader's last renewal) tight
for the two or three replicas a cluster runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from kemu.api.v1 import api_pb2, coordination_pb2
from kemu.client.errors import ClientError, Conflict, NotFound

log = logging.getLogger(__name__)
JITTER = 0.2
LEADER_ELECTION = "LeaderElection"  # the Event reason, as client-go's


class LeaderElectionLost(Exception):
    """The leader could not renew its Lease within the renew deadline."""


def default_identity() -> str:
    """`<hostname>_<uuid>`, as kube-scheduler and kube-controller-manager name themselves."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


@dataclass(frozen=True)
class LeaderElectionConfig:
    """Which Lease and how fast; ValueError (one line, naming the flag) on bad timings."""

    resource_name: str
    resource_namespace: str = "kube-system"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    identity: str = field(default_factory=default_identity)

    def __post_init__(self) -> None:
        if not self.resource_name or not self.resource_namespace:
            raise ValueError("--leader-elect-resource-name and "
                             "--leader-elect-resource-namespace must not be empty")
        if self.lease_duration < 1:
            raise ValueError("--leader-elect-lease-duration must be at least 1s")
        if self.retry_period <= 0:
            raise ValueError("--leader-elect-retry-period must be greater than zero")
        if self.lease_duration <= self.renew_deadline:
            raise ValueError("--leader-elect-lease-duration must be greater than "
                             "--leader-elect-renew-deadline")
        if self.renew_deadline <= (1 + JITTER) * self.retry_period:
            raise ValueError(f"--leader-elect-renew-deadline must be greater than "
                             f"{1 + JITTER:g} x --leader-elect-retry-period")
        if not self.identity:
            raise ValueError("leader election identity must not be empty")

    @property
    def lease_seconds(self) -> int:
        """leaseDurationSeconds as written to the Lease (whole seconds, rounded up)."""
        return max(1, int(-(-self.lease_duration // 1)))


class LeaseClient(Protocol):
    """The calls the elector makes (AsyncClient has them; unit tests use a fake)."""

    async def get(self, resource: str, name: str, namespace: str = "") -> api_pb2.Object: ...

    async def create(self, obj: api_pb2.Object) -> api_pb2.Object: ...

    async def update(self, obj: api_pb2.Object) -> api_pb2.Object: ...


class Clock(Protocol):
    """Monotonic seconds for validity, wall time for the Lease's timestamps."""

    def monotonic(self) -> float: ...

    def now(self) -> datetime: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)


class EventSink(Protocol):
    """Where "<identity> became leader" goes (kemu.client.events.EventRecorder)."""

    def emit(self, kind: str, obj: Any, type_: str, reason: str, message: str, *,
             field_path: str = "") -> None: ...


def _record(spec: coordination_pb2.LeaseSpec) -> bytes:
    """What "the record changed" compares: the spec as written, deterministically."""
    return spec.SerializeToString(deterministic=True)


class LeaderElector:
    """One candidate for one Lease. `run(lead)` acquires, runs `lead()` while renewing,
    and raises LeaderElectionLost when renewal fails; `release()` on a graceful stop."""

    def __init__(self, client: LeaseClient, config: LeaderElectionConfig, *,
                 clock: Clock | None = None, events: EventSink | None = None,
                 rng: random.Random | None = None) -> None:
        self.client = client
        self.config = config
        self.clock = clock or SystemClock()
        self.events = events
        self.rng = rng or random.Random()
        self._observed: coordination_pb2.LeaseSpec = coordination_pb2.LeaseSpec()
        self._observed_raw: bytes | None = None
        self._observed_at = 0.0
        self._lost = False
        self._reported_holder = ""

    @property
    def identity(self) -> str:
        return self.config.identity

    @property
    def is_leader(self) -> bool:
        """We hold the Lease as far as we last saw, and have not lost it since."""
        return not self._lost and self._observed.holder_identity == self.identity

    @property
    def lost(self) -> bool:
        """Leadership was lost: whatever the component still had in flight must not be
        written now (another leader may be acting), so it exits at once, as Kubernetes'
        components do, without draining."""
        return self._lost

    @property
    def holder(self) -> str:
        """The holder we last saw ("" when free or not yet read)."""
        return self._observed.holder_identity

    def _valid(self, now: float) -> bool:
        """The observed record is younger than its own leaseDurationSeconds."""
        return self._observed_at + self._observed.lease_duration_seconds > now

    def _observe(self, spec: coordination_pb2.LeaseSpec, now: float) -> None:
        raw = _record(spec)
        if raw != self._observed_raw:
            self._observed = coordination_pb2.LeaseSpec()
            self._observed.CopyFrom(spec)
            self._observed_raw = raw
            self._observed_at = now
        if spec.holder_identity != self._reported_holder:
            self._reported_holder = spec.holder_identity
            if spec.holder_identity and spec.holder_identity != self.identity:
                log.info("lease=%s/%s new leader elected: %s", self.config.resource_namespace,
                         self.config.resource_name, spec.holder_identity)

    def _spec(self) -> coordination_pb2.LeaseSpec:
        spec = coordination_pb2.LeaseSpec(holder_identity=self.identity,
                                          lease_duration_seconds=self.config.lease_seconds)
        wall = self.clock.now()
        spec.acquire_time.FromDatetime(wall)
        spec.renew_time.FromDatetime(wall)
        return spec

    async def try_acquire_or_renew(self) -> bool:
        """One round: True if we hold the Lease afterwards (client-go's tryAcquireOrRenew)."""
        cfg = self.config
        spec = self._spec()
        try:
            obj = await self.client.get("leases", cfg.resource_name, cfg.resource_namespace)
        except NotFound:
            lease = coordination_pb2.Lease(spec=spec)
            lease.metadata.name = cfg.resource_name
            lease.metadata.namespace = cfg.resource_namespace
            try:
                created = await self.client.create(api_pb2.Object(lease=lease))
            except ClientError as e:  # AlreadyExists: another candidate created it first
                log.info("lease=%s/%s not created: %s", cfg.resource_namespace,
                         cfg.resource_name, e.message)
                return False
            self._observe(created.lease.spec, self.clock.monotonic())
            self._became_leader(created)
            return True
        except ClientError as e:
            log.info("lease=%s/%s not read: %s", cfg.resource_namespace, cfg.resource_name,
                     e.message)
            return False
        old = obj.lease.spec
        self._observe(old, self.clock.monotonic())
        previous = old.holder_identity
        if previous and previous != self.identity and self._valid(self.clock.monotonic()):
            return False
        if previous == self.identity and not self._lost:
            spec.acquire_time.CopyFrom(old.acquire_time)
            spec.lease_transitions = old.lease_transitions
        else:
            spec.lease_transitions = old.lease_transitions + 1
        obj.lease.spec.CopyFrom(spec)
        try:
            updated = await self.client.update(obj)  # carries the resourceVersion we read
        except Conflict:
            log.info("lease=%s/%s: another candidate wrote first", cfg.resource_namespace,
                     cfg.resource_name)
            return False
        except ClientError as e:
            log.info("lease=%s/%s not updated: %s", cfg.resource_namespace,
                     cfg.resource_name, e.message)
            return False
        self._observe(updated.lease.spec, self.clock.monotonic())
        if previous != self.identity:
            self._became_leader(updated)
        return True

    def _became_leader(self, obj: api_pb2.Object) -> None:
        if self.events is not None:
            self.events.emit("Lease", obj.lease, "Normal", LEADER_ELECTION,
                             f"{self.identity} became leader")

    async def _sleep_jittered(self) -> None:
        period = self.config.retry_period
        await asyncio.sleep(period + self.rng.uniform(0, JITTER * period))

    async def acquire(self) -> None:
        """Return once we hold the Lease (retrying every retry period, jittered)."""
        cfg = self.config
        log.info("lease=%s/%s attempting to acquire as %s", cfg.resource_namespace,
                 cfg.resource_name, self.identity)
        started = self.clock.monotonic()
        while not await self._bounded_round(None):
            await self._sleep_jittered()
        log.info("lease=%s/%s successfully acquired as %s waited_s=%.2f",
                 cfg.resource_namespace, cfg.resource_name, self.identity,
                 self.clock.monotonic() - started)

    async def _bounded_round(self, deadline: float | None) -> bool:
        """One try_acquire_or_renew, cut off at `deadline` (monotonic) if given."""
        if deadline is None:
            return await self.try_acquire_or_renew()
        left = deadline - self.clock.monotonic()
        if left <= 0:
            return False
        try:
            return await asyncio.wait_for(self.try_acquire_or_renew(), left)
        except TimeoutError:
            return False

    async def renew(self) -> None:
        """Renew every retry period until a round fails for renew-deadline; then raise."""
        cfg = self.config
        while True:
            await asyncio.sleep(cfg.retry_period)
            deadline = self.clock.monotonic() + cfg.renew_deadline
            while not await self._bounded_round(deadline):
                if self.holder and self.holder != self.identity:
                    self._lost = True
                    log.error("lease=%s/%s now held by %s: leaderelection lost",
                              cfg.resource_namespace, cfg.resource_name, self.holder)
                    raise LeaderElectionLost(f"leaderelection lost: lease now held by "
                                             f"{self.holder}")
                if self.clock.monotonic() + cfg.retry_period >= deadline:
                    self._lost = True
                    log.error("lease=%s/%s failed to renew within %.1fs: leaderelection lost",
                              cfg.resource_namespace, cfg.resource_name, cfg.renew_deadline)
                    raise LeaderElectionLost(
                        f"leaderelection lost: lease {cfg.resource_namespace}/"
                        f"{cfg.resource_name} not renewed within {cfg.renew_deadline:g}s")
                await asyncio.sleep(cfg.retry_period)

    async def run(self, lead: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Acquire, then run `lead()` while renewing. Returns when `lead` returns; raises
        LeaderElectionLost (after cancelling `lead`) when renewal fails."""
        await self.acquire()
        leading: asyncio.Task[None] = asyncio.create_task(lead(), name="leading")
        renewing = asyncio.create_task(self.renew(), name="lease-renew")
        try:
            await asyncio.wait({leading, renewing}, return_when=asyncio.FIRST_COMPLETED)
            if renewing.done():
                renewing.result()  # raises LeaderElectionLost
            leading.result()
        finally:
            for t in (leading, renewing):
                t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(leading, renewing, return_exceptions=True)

    async def release(self, timeout: float = 2.0) -> bool:
        """Give the Lease up if we hold it (graceful stop): holder cleared, duration 1 s, so
        a standby takes over on its next retry. True if released (or nothing to release)."""
        if not self.is_leader:
            return True
        cfg = self.config
        try:
            obj = await asyncio.wait_for(
                self.client.get("leases", cfg.resource_name, cfg.resource_namespace), timeout)
            if obj.lease.spec.holder_identity != self.identity:
                return True
            wall = self.clock.now()
            spec = obj.lease.spec
            spec.holder_identity = ""
            spec.lease_duration_seconds = 1
            spec.acquire_time.FromDatetime(wall)
            spec.renew_time.FromDatetime(wall)
            updated = await asyncio.wait_for(self.client.update(obj), timeout)
        except (ClientError, TimeoutError) as e:
            log.info("lease=%s/%s not released: %s", cfg.resource_namespace,
                     cfg.resource_name, getattr(e, "message", None) or repr(e))
            return False
        self._observe(updated.lease.spec, self.clock.monotonic())
        log.info("lease=%s/%s released by %s", cfg.resource_namespace, cfg.resource_name,
                 self.identity)
        return True
