"""The per-client limits without a server: who a call is from, the token bucket on a fake
clock, the watch slots, and the RESOURCE_EXHAUSTED a refused call aborts with."""

from __future__ import annotations

import contextlib
from typing import Any

import grpc
import pytest

from kemu.client.errors import from_rpc_error
from kemu.services.apiserver.limits import (
    WATCH_METHOD,
    Limits,
    LimitsInterceptor,
    RateLimiter,
    WatchCounter,
    client_of,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("peer", "metadata", "key", "label"), [
    pytest.param("ipv4:10.0.0.5:51234", (), "ip:10.0.0.5", "10.0.0.5", id="ipv4"),
    pytest.param("ipv6:[::1]:5000", (), "ip:::1", "::1", id="ipv6"),
    pytest.param("unix:/run/kemu.sock", (), "ip:unix:/run/kemu.sock", "unix:/run/kemu.sock",
                 id="unix"),
    pytest.param("ipv4:10.0.0.5:1", (("authorization", "Bearer s3cret"),),
                 "token:1ec1c26b", "the client with bearer token sha256:1ec1c26b",
                 id="token-beats-address"),
])
def test_a_client_is_its_token_else_its_ip(peer: str, metadata: Any, key: str,
                                           label: str) -> None:
    client = client_of(peer, metadata)
    assert (client.key, client.label) == (key, label)
    assert "s3cret" not in client.label


def test_two_ports_of_one_host_are_one_client() -> None:
    assert client_of("ipv4:127.0.0.1:40000", ()) == client_of("ipv4:127.0.0.1:40001", ())


def test_the_bucket_allows_the_burst_then_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=8, burst=5, clock=clock)
    assert [limiter.allow("a") for _ in range(6)] == [True] * 5 + [False]
    assert limiter.allow("b"), "each client has its own bucket"
    clock.now += 0.125  # one token back
    assert [limiter.allow("a") for _ in range(2)] == [True, False]
    clock.now += 60  # never more than the burst
    assert sum(limiter.allow("a") for _ in range(10)) == 5


def test_full_buckets_are_forgotten() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=10, burst=5, clock=clock)
    for client in ("a", "b"):
        limiter.allow(client)
    clock.now += RateLimiter.SWEEP_SECONDS + 1
    limiter.allow("c")
    assert set(limiter.buckets) == {"c"}


def test_watch_slots_are_given_back() -> None:
    watches = WatchCounter(2)
    assert [watches.acquire("a") for _ in range(3)] == [True, True, False]
    assert watches.acquire("b")
    watches.release("a")
    assert watches.acquire("a")
    for _ in range(2):
        watches.release("a")
    assert watches.open == {"b": 1}


class Aborted(Exception):
    def __init__(self, status: grpc.Status) -> None:
        self.status = status


class FakeContext:
    def __init__(self, token: str = "") -> None:
        self.token = token

    def peer(self) -> str:
        return "ipv4:192.0.2.7:4242"

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    async def abort_with_status(self, status: grpc.Status) -> None:
        raise Aborted(status)


def _reason(status: grpc.Status) -> str:
    """The StatusReason a client reads from the status details."""
    received = grpc.aio.AioRpcError(status.code, grpc.aio.Metadata(),
                                    grpc.aio.Metadata(*status.trailing_metadata),
                                    status.details)
    return from_rpc_error(received).reason


@pytest.mark.parametrize(("limits", "method", "calls", "message"), [
    pytest.param(Limits(requests_per_second=1, burst=2, watches_per_client=0),
                 "/kemu.v1.Resources/Get", 3,
                 "rate limit exceeded: 192.0.2.7 sent more than 1 requests per second "
                 "(burst 2); retry with back-off (--max-requests-per-second)", id="rate"),
    pytest.param(Limits(requests_per_second=0, watches_per_client=2), WATCH_METHOD, 3,
                 "too many watches: 192.0.2.7 already has 2 open, the limit per client "
                 "(--max-watches-per-client); close one first", id="watches"),
])
async def test_a_refused_call_is_resource_exhausted(limits: Limits, method: str, calls: int,
                                                    message: str) -> None:
    interceptor = LimitsInterceptor(limits, clock=FakeClock())
    async with contextlib.AsyncExitStack() as held:
        for _ in range(calls - 1):
            await held.enter_async_context(interceptor.around(FakeContext(), method))
        with pytest.raises(Aborted) as refused:
            async with interceptor.around(FakeContext(), method):
                pass
        async with interceptor.around(FakeContext(token="other"), method):
            pass  # another client is not held back
    status = refused.value.status
    assert (status.code, status.details) == (grpc.StatusCode.RESOURCE_EXHAUSTED, message)
    assert _reason(status) == "TooManyRequests"
    if interceptor.watches is not None:
        assert interceptor.watches.open == {}, "every slot is given back"


async def test_zero_turns_every_limit_off() -> None:
    interceptor = LimitsInterceptor(Limits(requests_per_second=0, watches_per_client=0))
    assert interceptor.rate is None and interceptor.watches is None
    async with contextlib.AsyncExitStack() as held:
        for _ in range(1000):
            await held.enter_async_context(interceptor.around(FakeContext(), WATCH_METHOD))


async def test_draining_refuses_new_calls_and_waits_for_admitted_ones() -> None:
    interceptor = LimitsInterceptor(Limits(requests_per_second=0, watches_per_client=0))
    assert await interceptor.wait_idle(0.01), "nothing admitted yet"
    async with interceptor.around(FakeContext(), "/kemu.v1.Resources/Create"):
        interceptor.drain()
        assert not await interceptor.wait_idle(0.01), "a call is still running"
        with pytest.raises(Aborted) as refused:
            async with interceptor.around(FakeContext(), "/kemu.v1.Resources/Get"):
                pass
    assert await interceptor.wait_idle(0.01)
    status = refused.value.status
    assert (status.code, status.details) == (grpc.StatusCode.UNAVAILABLE,
                                             "apiserver is shutting down")
    assert _reason(status) == "ServiceUnavailable"
