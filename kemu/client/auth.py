"""The bearer token a client sends to an apiserver started with `--token-file`.

Every component (scheduler, controller manager, dns, node agent) makes its client with no
token argument, so the default reads KEMU_TOKEN: one environment variable in a compose file
or a unit file then authenticates the whole component without a flag on each of them.
The asyncio client adds the token with channel interceptors rather than per-call
metadata, so that other stubs sharing its channel (the HPA's Metrics stub) carry it too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import grpc


def resolve(token: str | None) -> str:
    """`token`, or $KEMU_TOKEN when it is None; "" means send none."""
    if token is None:
        token = os.environ.get("KEMU_TOKEN", "")
    return token.strip()


def with_token(metadata: tuple[tuple[str, str], ...],
               token: str | None) -> tuple[tuple[str, str], ...]:
    """`metadata` plus `authorization: Bearer <token>` (replacing any given one)."""
    token = resolve(token)
    if not token:
        return metadata
    kept = tuple(kv for kv in metadata if kv[0].lower() != "authorization")
    return (*kept, ("authorization", f"Bearer {token}"))


class _Bearer:
    """Shared by the four interceptor kinds: grpc.aio files an interceptor under the first
    kind it is an instance of, so each call kind needs its own object."""

    def __init__(self, token: str) -> None:
        self.value = f"Bearer {token}"

    def details(self, d: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*((k, v) for k, v in (d.metadata or ())
                                       if k.lower() != "authorization"))
        metadata.add("authorization", self.value)
        return grpc.aio.ClientCallDetails(d.method, d.timeout, metadata, d.credentials,
                                          d.wait_for_ready)


class _UnaryUnary(_Bearer, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any,
                                    request: Any) -> Any:
        return await continuation(self.details(client_call_details), request)


class _UnaryStream(_Bearer, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any,
                                     request: Any) -> Any:
        return await continuation(self.details(client_call_details), request)


class _StreamUnary(_Bearer, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(self, continuation: Any, client_call_details: Any,
                                     request_iterator: Any) -> Any:
        return await continuation(self.details(client_call_details), request_iterator)


class _StreamStream(_Bearer, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(self, continuation: Any, client_call_details: Any,
                                      request_iterator: Any) -> Any:
        return await continuation(self.details(client_call_details), request_iterator)


def aio_interceptors(token: str | None) -> Sequence[grpc.aio.ClientInterceptor]:
    """Interceptors that add the token to every call on a grpc.aio channel (none without
    a token)."""
    token = resolve(token)
    if not token:
        return []
    return [cls(token) for cls in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]


def impersonation(user: str, groups: tuple[str, ...] | list[str] = ()
                  ) -> tuple[tuple[str, str], ...]:
    """The metadata that asks the apiserver to run a call as `user` in `groups` (kubectl's
    --as and --as-group; the caller needs the impersonate verb on them)."""
    return ((("impersonate-user", user),) if user else ()) + \
        tuple(("impersonate-group", g) for g in groups)
