"""Wrap a gRPC method handler so that its behaviour runs inside an async context manager.

Server interceptors in grpc.aio get the handler, not the call: to run code around a call
(authenticate it, admit it past a limit, act as another user) an interceptor returns a new
handler of the same shape and serializers whose behaviour enters `around(context)` first.
Entering it may abort the call (context.abort_with_status raises); leaving it runs when
the call ends, also for a stream the client cancels. One helper, so the four handler
shapes are rewrapped in one place.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

Around = Callable[[Any, Any], contextlib.AbstractAsyncContextManager[Any]]


def _wrap(behavior: Callable[..., Any], around: Around) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(behavior):
        async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
            async with around(request, context), \
                    contextlib.aclosing(behavior(request, context)) as it:
                async for response in it:
                    yield response
        return stream

    async def unary(request: Any, context: Any) -> Any:
        async with around(request, context):
            result = behavior(request, context)
            return await result if inspect.isawaitable(result) else result
    return unary


def wrapped(handler: grpc.RpcMethodHandler, around: Around) -> grpc.RpcMethodHandler:
    """`handler` with its behaviour run inside `around(request, context)` (a streaming
    request: its iterator): the same shape and serializers, an async generator where the
    behaviour is one."""
    kw = {"request_deserializer": handler.request_deserializer,
          "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(_wrap(handler.unary_unary, around), **kw)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(_wrap(handler.unary_stream, around), **kw)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(_wrap(handler.stream_unary, around), **kw)
    return grpc.stream_stream_rpc_method_handler(_wrap(handler.stream_stream, around), **kw)


class AroundInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """A server interceptor that runs every call, but those of methods starting with one of
    `exempt`, inside `around(context, method)`.

    The wrapped handler of a method is made once and reused while the handler beneath it
    stays the same object, as the metrics and decode interceptors do: wrapping per call
    cost every call a handler, closures and an `inspect` check, and handed the interceptors
    around it a new handler each time, defeating their own reuse."""

    exempt: tuple[str, ...] = ()
    _wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]]

    def around(self, context: Any, method: str
               ) -> contextlib.AbstractAsyncContextManager[Any]:
        raise NotImplementedError

    def around_request(self, request: Any, context: Any, method: str
                       ) -> contextlib.AbstractAsyncContextManager[Any]:
        """`around`, for an interceptor that needs the request too."""
        return self.around(context, method)

    async def intercept_service(
            self, continuation: Callable[[grpc.HandlerCallDetails],
                                         Awaitable[grpc.RpcMethodHandler]],
            handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None or method.startswith(self.exempt):
            return handler
        cache = self.__dict__.setdefault("_wrapped", {})
        known = cache.get(method)
        if known is None or known[0] is not handler:
            known = cache[method] = (handler, wrapped(
                handler,
                lambda request, context: self.around_request(request, context, method)))
        return known[1]
