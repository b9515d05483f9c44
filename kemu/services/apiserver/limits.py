"""Per-client limits: a token bucket of requests and a cap on open watches.

One buggy client (a controller in a hot loop, a script that opens a watch per object) should
slow itself down, not the cluster. Kubernetes bounds this with API Priority and Fairness per
user; kemu has no users, so a client is its bearer token when it sends one, else its
peer's IP address. Without `--token-file` the token is not checked, so a client could pick a
new one per call: the limits guard against accidents, not against a hostile peer.

Over a limit the call fails with RESOURCE_EXHAUSTED and the reason TooManyRequests (as
Kubernetes' 429), worded to name the limit and its flag. Health and reflection are exempt,
as from authentication. Message size is bounded by gRPC itself (`--max-request-bytes`, see
server.py); this module needs no part of it.

The interceptor also drains: once `drain()` is called every new call fails at once with
UNAVAILABLE "apiserver is shutting down" (clients retry elsewhere or later) while the
calls already admitted finish. Only then does the server stop listening; gRPC itself would
CANCEL a call that arrives in the instant its server stops, which clients do not retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from kemu.services.apiserver.auth import OPEN_PREFIXES, bearer
from kemu.services.apiserver.errors import status
from kemu.util.grpchandlers import AroundInterceptor

log = logging.getLogger(__name__)
WATCH_METHOD = "/kemu.v1.Resources/Watch"
Clock = Callable[[], float]


@dataclass(frozen=True)
class Limits:
    """What one client may do; 0 turns a limit off."""

    requests_per_second: float = 1000.0
    burst: int = 2000
    watches_per_client: int = 500


@dataclass(frozen=True)
class ClientID:
    """Who a call is from: `key` to count by, `label` to name in messages and logs (a
    token is shown only as a short hash)."""

    key: str
    label: str


def client_of(peer: str, metadata: Any) -> ClientID:
    """The client of a call from its peer (`ipv4:10.0.0.5:51234`, `ipv6:[::1]:5000`,
    `unix:/run/x`) and its metadata."""
    token = bearer(metadata)
    if token:
        digest = hashlib.sha256(token.encode()).hexdigest()[:8]
        return ClientID(f"token:{digest}", f"the client with bearer token sha256:{digest}")
    scheme, _, rest = peer.partition(":")
    if scheme == "ipv4":
        ip = rest.rsplit(":", 1)[0]
    elif scheme == "ipv6":
        ip = rest.rsplit(":", 1)[0].strip("[]")
    else:  # unix sockets and anything unknown: the whole peer
        ip = peer or "unknown"
    return ClientID(f"ip:{ip}", ip)


class TokenBucket:
    """`rate` tokens a second up to `burst`; a request takes one."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.last = now

    def refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now

    def take(self, now: float) -> bool:
        self.refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def full(self, now: float) -> bool:
        return self.tokens + (now - self.last) * self.rate >= self.burst


class RateLimiter:
    """A token bucket per client; buckets that have filled up again are forgotten, since
    a new one is the same."""

    SWEEP_SECONDS = 60.0

    def __init__(self, rate: float, burst: int, *, clock: Clock = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.buckets: dict[str, TokenBucket] = {}
        self._swept = clock()

    def allow(self, client: str) -> bool:
        now = self.clock()
        if now - self._swept > self.SWEEP_SECONDS:
            self.buckets = {k: b for k, b in self.buckets.items() if not b.full(now)}
            self._swept = now
        bucket = self.buckets.get(client)
        if bucket is None:
            bucket = self.buckets[client] = TokenBucket(self.rate, self.burst, now)
        return bucket.take(now)


class WatchCounter:
    """Open watches per client, up to `limit` each."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = {}

    def acquire(self, client: str) -> bool:
        n = self.open.get(client, 0)
        if n >= self.limit:
            return False
        self.open[client] = n + 1
        return True

    def release(self, client: str) -> None:
        n = self.open.get(client, 0) - 1
        if n > 0:
            self.open[client] = n
        else:
            self.open.pop(client, None)


def _too_many(message: str) -> grpc.Status:
    return status(grpc.StatusCode.RESOURCE_EXHAUSTED, message, "TooManyRequests")


class LimitsInterceptor(AroundInterceptor):
    """Admits a call when its client has a request token left and, for a watch, a free
    watch slot held until the watch ends."""

    exempt = OPEN_PREFIXES

    def __init__(self, limits: Limits, *, clock: Clock = time.monotonic) -> None:
        self.limits = limits
        self.rate = RateLimiter(limits.requests_per_second, limits.burst, clock=clock) \
            if limits.requests_per_second > 0 else None
        self.watches = WatchCounter(limits.watches_per_client) \
            if limits.watches_per_client > 0 else None
        self.draining = False
        self.calls_in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def drain(self) -> None:
        """Refuse every call from now on with UNAVAILABLE; admitted calls run on."""
        self.draining = True

    async def wait_idle(self, timeout: float) -> bool:
        """Wait (up to `timeout` seconds) until no admitted call other than a watch is running."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    @contextlib.asynccontextmanager
    async def around(self, context: grpc.aio.ServicerContext[Any, Any],
                     method: str) -> AsyncIterator[None]:
        """Abort with RESOURCE_EXHAUSTED, or run the call (holding a watch slot)."""
        if self.draining:
            await context.abort_with_status(status(
                grpc.StatusCode.UNAVAILABLE, "apiserver is shutting down", "ServiceUnavailable"))
        # Who the client is matters only to a limit that is on (not worked out otherwise:
        # it reads the peer and walks the metadata on every call).
        client: ClientID | None = None
        if self.rate is not None:
            client = client_of(context.peer(), context.invocation_metadata())
            if not self.rate.allow(client.key):
                log.info("rate limited %s on %s", client.label, method)
                await context.abort_with_status(_too_many(
                    f"rate limit exceeded: {client.label} sent more than "
                    f"{self.limits.requests_per_second:g} requests per second (burst "
                    f"{self.limits.burst}); retry with back-off (--max-requests-per-second)"))
        if method != WATCH_METHOD:
            self.calls_in_flight += 1
            self._idle.clear()
            try:
                yield
            finally:
                self.calls_in_flight -= 1
                if self.calls_in_flight == 0:
                    self._idle.set()
            return
        if self.watches is None:
            yield
            return
        if client is None:
            client = client_of(context.peer(), context.invocation_metadata())
        if not self.watches.acquire(client.key):
            log.info("refused a watch of %s: %d open", client.label, self.watches.limit)
            await context.abort_with_status(_too_many(
                f"too many watches: {client.label} already has {self.watches.limit} open, "
                f"the limit per client (--max-watches-per-client); close one first"))
        try:
            yield
        finally:
            self.watches.release(client.key)
