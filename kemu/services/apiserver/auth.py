"""Static bearer tokens: the smallest authentication that lets a VM join a cluster.

A cluster spread over VMs listens on a routable address, so anyone on that network could
register a Node or read Secrets. `--token-file FILE` (as kube-apiserver's
`--token-auth-file`) closes that: each line is a token (text after a comma is ignored, so a
Kubernetes `token,user,uid` file works too; blank lines and `#` comments are skipped), and
every RPC then needs the metadata `authorization: Bearer <token>` (else UNAUTHENTICATED, with
the reason Unauthorized in an ErrorInfo). Health and reflection stay open, so load
balancers, compose health checks and grpcurl work without a secret.
There are no users or permissions: a valid token may do everything.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import grpc

from kemu.services.apiserver.errors import status

# Methods anyone may call: liveness probes and tool discovery carry no token.
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
MESSAGE = ("Unauthorized: this apiserver needs a bearer token "
           "(kemuctl --token, KEMU_TOKEN or `token:` in ~/.kemu/config)")


class TokenFileError(ValueError):
    """The token file cannot be read or holds no token."""


def load_tokens(path: Path) -> frozenset[str]:
    """The tokens in `path`; an empty or unreadable file is an error, never "no auth"."""
    try:
        text = path.read_text()
    except OSError as e:
        raise TokenFileError(f"--token-file {path}: {e.strerror or e}") from e
    tokens = frozenset(t for t in (line.split(",", 1)[0].strip() for line in text.splitlines())
                       if t and not t.startswith("#"))
    if not tokens:
        raise TokenFileError(f"--token-file {path}: no token in the file")
    return tokens


def bearer(metadata: Iterable[tuple[str, Any]] | None) -> str:
    """The token of an `authorization: Bearer <token>` entry, or ""."""
    for key, value in metadata or ():
        if key.lower() == "authorization" and isinstance(value, str):
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    return ""


def allowed(tokens: frozenset[str], presented: str) -> bool:
    """Constant-time check against every token, so timing tells nothing about them."""
    ok = False
    for token in tokens:
        ok |= hmac.compare_digest(token.encode(), presented.encode())
    return ok and bool(presented)


def _deny(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that fails with UNAUTHENTICATED."""

    async def abort(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort_with_status(
            status(grpc.StatusCode.UNAUTHENTICATED, MESSAGE, "Unauthorized"))

    kw = {"request_deserializer": handler.request_deserializer,
          "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(abort, **kw)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(abort, **kw)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(abort, **kw)
    return grpc.stream_stream_rpc_method_handler(abort, **kw)


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Lets an RPC through when it is open or carries one of `tokens`."""

    def __init__(self, tokens: frozenset[str]) -> None:
        self.tokens = tokens

    async def intercept_service(
            self, continuation: Callable[[grpc.HandlerCallDetails],
                                         Awaitable[grpc.RpcMethodHandler]],
            handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        presented = bearer(handler_call_details.invocation_metadata)  # type: ignore[attr-defined]
        return handler if allowed(self.tokens, presented) else _deny(handler)
