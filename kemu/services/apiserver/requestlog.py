"""One log event per API request at -v 3, as kube-apiserver's httplog: the verb, the
resource, namespace/name, the gRPC code and the duration.

One interceptor instead of a line in every handler. It runs outside authentication and
the limits, so refused calls are logged with their codes too. Below -v 3 it hands back the
handler untouched, so the default verbosity pays nothing per call; a watch is logged when
it ends, with how long it lasted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message

from kemu.api import objects
from kemu.util.grpchandlers import AroundInterceptor
from kemu.util.logsetup import event, ms_since, v_level

log = logging.getLogger("kemu.apiserver.requests")
VERBOSITY = 3
# Calls that are not API requests: probes and tools' discovery.
EXEMPT = ("/grpc.health.v1.", "/grpc.reflection.")
# gRPC method -> Kubernetes verb (the rest: the method's name in lower case).
VERBS = {"UpdateStatus": "update", "Apply": "patch", "Bind": "create", "Scale": "update",
         "Rollback": "create", "Logs": "get", "Exec": "create"}
# Subresource requests that name a pod or a deployment without saying the resource.
SUBRESOURCES = {"Bind": ("pods", "binding"), "Logs": ("pods", "log"),
                "Exec": ("pods", "exec"), "Rollback": ("deployments", "rollback"),
                "UpdateStatus": ("", "status"), "Scale": ("", "scale")}
_CODES: dict[int, str] = {c.value[0]: str(c.name) for c in grpc.StatusCode}


def target(method: str, request: Any) -> dict[str, str]:
    """resource, subresource, namespace and name of a request, those it says."""
    resource, sub = SUBRESOURCES.get(method, ("", ""))
    where: Any = request if isinstance(request, Message) else None
    if where is not None and "key" in where.DESCRIPTOR.fields_by_name:
        where = where.key
    elif where is not None and "object" in where.DESCRIPTOR.fields_by_name:
        obj = where.object
        resource = objects.kind_of(obj).plural if obj.WhichOneof("kind") else resource
        where = objects.meta(obj) if obj.WhichOneof("kind") else None
    fields = where.DESCRIPTOR.fields_by_name if where is not None else {}
    if "resource" in fields and where.resource:
        resource = where.resource
    out = {"resource": resource} if resource else {}
    if sub:
        out["subresource"] = sub
    for name in ("namespace", "name"):
        if name in fields and getattr(where, name):
            out[name] = str(getattr(where, name))
    return out


def _code(context: Any, failure: BaseException | None) -> str:
    if isinstance(failure, asyncio.CancelledError | GeneratorExit):
        return "CANCELLED"  # the client went away
    try:
        code = context.code()
    except Exception:
        code = None
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    if isinstance(code, int):
        return _CODES.get(code, "UNKNOWN")
    return "OK" if failure is None else "UNKNOWN"


class RequestLog(AroundInterceptor):
    """Logs every call but probes at -v 3 on logger kemu.apiserver.requests."""

    exempt = EXEMPT

    async def intercept_service(
            self, continuation: Callable[[grpc.HandlerCallDetails],
                                         Awaitable[grpc.RpcMethodHandler]],
            handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        if not log.isEnabledFor(v_level(VERBOSITY)):  # the handler untouched: no cost
            return await continuation(handler_call_details)
        return await super().intercept_service(continuation, handler_call_details)

    @contextlib.asynccontextmanager
    async def around_request(self, request: Any, context: Any, method: str
                             ) -> AsyncIterator[None]:
        started, failure = time.perf_counter(), None
        try:
            yield
        except BaseException as e:
            failure = e
            raise
        finally:
            _record(method.rpartition("/")[2], request, context, failure, started)


def _record(method: str, request: Any, context: Any, failure: BaseException | None,
            started: float) -> None:
    try:
        where = target(method, request)
    except Exception:  # a request the handler refuses as invalid: log what is known
        where = {}
    event(log, "request", v=VERBOSITY, verb=VERBS.get(method, method.lower()), **where,
          method=method, code=_code(context, failure), duration_ms=ms_since(started))
