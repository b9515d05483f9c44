"""AroundInterceptor: the behaviour runs inside `around` on every call, and the wrapped
handler of a method is made once while the handler beneath it stays the same."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import grpc

from kemu.util.grpchandlers import AroundInterceptor


class Recording(AroundInterceptor):
    exempt = ("/grpc.health",)

    def __init__(self) -> None:
        self.entered: list[str] = []

    @contextlib.asynccontextmanager
    async def _around(self, method: str) -> AsyncIterator[None]:
        self.entered.append(method)
        yield

    def around(self, context: Any, method: str) -> contextlib.AbstractAsyncContextManager[Any]:
        return self._around(method)


def _handler(answer: str) -> grpc.RpcMethodHandler:
    async def behave(request: Any, context: Any) -> str:
        return f"{answer}:{request}"
    return grpc.unary_unary_rpc_method_handler(behave)


def test_the_wrapped_handler_is_reused_and_around_runs_per_call() -> None:
    async def run() -> None:
        interceptor = Recording()
        first, second = _handler("a"), _handler("b")
        beneath = first

        async def continuation(details: Any) -> grpc.RpcMethodHandler:
            return beneath

        call = SimpleNamespace(method="/kemu.v1.Api/Get")
        one = await interceptor.intercept_service(continuation, call)
        two = await interceptor.intercept_service(continuation, call)
        assert one is two  # made once
        assert await one.unary_unary("x", None) == "a:x"
        assert await two.unary_unary("y", None) == "a:y"
        assert interceptor.entered == ["/kemu.v1.Api/Get"] * 2  # entered on every call
        beneath = second  # a new handler beneath: wrapped anew
        three = await interceptor.intercept_service(continuation, call)
        assert three is not one and await three.unary_unary("z", None) == "b:z"
        health = SimpleNamespace(method="/grpc.health.v1.Health/Check")
        assert await interceptor.intercept_service(continuation, health) is second

    asyncio.run(run())
