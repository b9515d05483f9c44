"""Undecodable requests answered INVALID_ARGUMENT, not UNKNOWN.

grpc.aio lets a request that fails to deserialize escape as an unhandled exception, so the
client sees UNKNOWN "Unexpected <class 'DecodeError'>", the code for a server bug. This
interceptor wraps each method's request deserializer: a frame protobuf cannot parse
becomes a marker, and the method's handler aborts with INVALID_ARGUMENT naming the
request type before the servicer sees anything (for a request stream, at the bad message).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc


class _Undecodable:
    """What the wrapped deserializer returns for bytes it cannot parse."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _safe(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as e:  # DecodeError, and whatever a custom deserializer raises
            return _Undecodable(e)
    return deserialize


async def _refuse(context: grpc.aio.ServicerContext, bad: _Undecodable) -> None:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"could not decode the request: {bad.error}")


def _checked_stream(requests: AsyncIterator[Any],
                    context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    async def each() -> AsyncIterator[Any]:
        async for request in requests:
            if isinstance(request, _Undecodable):
                await _refuse(context, request)
            yield request
    return each()


def _wrap(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    deserialize = _safe(handler.request_deserializer)
    serialize = handler.response_serializer
    if handler.unary_unary is not None:
        unary = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, _Undecodable):
                await _refuse(context, request)
            return await unary(request, context)
        return grpc.unary_unary_rpc_method_handler(unary_unary, deserialize, serialize)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _unary_stream(handler.unary_stream), deserialize, serialize)
    if handler.stream_unary is not None:
        stream_in = handler.stream_unary

        async def stream_unary(requests: AsyncIterator[Any],
                               context: grpc.aio.ServicerContext) -> Any:
            return await stream_in(_checked_stream(requests, context), context)
        return grpc.stream_unary_rpc_method_handler(stream_unary, deserialize, serialize)
    return grpc.stream_stream_rpc_method_handler(
        _stream_stream(handler.stream_stream), deserialize, serialize)


def _unary_stream(behaviour: Callable[..., Any]) -> Callable[..., Any]:
    """Keep the servicer's style: an async generator, or a coroutine that writes."""
    if inspect.isasyncgenfunction(behaviour):
        async def generate(request: Any, context: grpc.aio.ServicerContext
                           ) -> AsyncIterator[Any]:
            if isinstance(request, _Undecodable):
                await _refuse(context, request)
            async for response in behaviour(request, context):
                yield response
        return generate

    async def write(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, _Undecodable):
            await _refuse(context, request)
        return await behaviour(request, context)
    return write


def _stream_stream(behaviour: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(behaviour):
        async def generate(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
                           ) -> AsyncIterator[Any]:
            async for response in behaviour(_checked_stream(requests, context), context):
                yield response
        return generate

    async def write(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        return await behaviour(_checked_stream(requests, context), context)
    return write


class DecodeErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Put first in a grpc.aio server's interceptors: every method refuses undecodable
    requests with INVALID_ARGUMENT."""

    def __init__(self) -> None:
        # method -> (the handler as registered, its wrapped form): built once per method
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
            self, continuation: Callable[[grpc.HandlerCallDetails],
                                         Awaitable[grpc.RpcMethodHandler]],
            handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is None or known[0] is not handler:
            known = self._wrapped[method] = (handler, _wrap(handler))
        return known[1]
