"""kube-apiserver's request series: `apiserver_request_total{verb,group,resource,
subresource,code}` and `apiserver_request_duration_seconds{verb,group,resource,subresource}`.

The gRPC method is translated to the verb Kubernetes reports for the same HTTP request
(Create POST, Get GET, List LIST, Update and UpdateStatus PUT, Delete and
DeleteCollection DELETE, Apply APPLY, Bind and Rollback POST, Scale PUT); the resource is
the one the call authorized (`note`, called where the servicer authorizes, keeps it in a
context variable of the call's task); the code is the HTTP status Kubernetes answers with
for the same outcome (201 for a create, 404 NotFound, 409 AlreadyExists and Conflict,
422 Invalid...). Watches, logs and exec are long-running and counted only by the gRPC
series, as kube-apiserver keeps them out of its request latency.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

from kemu.api.kinds import Kind

VERBS = {"Create": "POST", "Get": "GET", "List": "LIST", "Update": "PUT",
         "UpdateStatus": "PUT", "Delete": "DELETE", "DeleteCollection": "DELETE",
         "Apply": "APPLY", "Bind": "POST", "Scale": "PUT", "Rollback": "POST",
         "AccessReview": "POST"}
# Kubernetes' StatusReason -> HTTP code (metav1.StatusReason* and their codes).
HTTP_OF_REASON = {"NotFound": "404", "AlreadyExists": "409", "Conflict": "409",
                  "Invalid": "422", "BadRequest": "400", "Gone": "410",
                  "ServiceUnavailable": "503", "Forbidden": "403", "Unauthorized": "401",
                  "MethodNotAllowed": "405", "Timeout": "504", "TooManyRequests": "429",
                  "InternalError": "500"}
# A status that arrives as a bare gRPC code (a node agent's, an interceptor's).
HTTP_OF_CODE = {grpc.StatusCode.NOT_FOUND: "404", grpc.StatusCode.ALREADY_EXISTS: "409",
                grpc.StatusCode.ABORTED: "409", grpc.StatusCode.INVALID_ARGUMENT: "400",
                grpc.StatusCode.PERMISSION_DENIED: "403",
                grpc.StatusCode.UNAUTHENTICATED: "401",
                grpc.StatusCode.RESOURCE_EXHAUSTED: "429",
                grpc.StatusCode.UNAVAILABLE: "503", grpc.StatusCode.DEADLINE_EXCEEDED: "504",
                grpc.StatusCode.FAILED_PRECONDITION: "403",
                grpc.StatusCode.UNIMPLEMENTED: "405", grpc.StatusCode.OUT_OF_RANGE: "410"}
# kube-apiserver's buckets (seconds).
DURATION_BUCKETS = (0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5,
                    6, 8, 10, 15, 20, 30, 45, 60)

_CALL: contextvars.ContextVar[tuple[str, str, str]] = contextvars.ContextVar(
    "kemu_apiserver_request", default=("", "", ""))


def note(kind: Kind, subresource: str) -> None:
    """The resource this call is about (each gRPC call runs in a task of its own)."""
    _CALL.set((kind.group, kind.plural, subresource))


_BY_VALUE = {c.value[0]: c for c in grpc.StatusCode}


def http_code(method: str, reason: str | None, code: grpc.StatusCode | int | None = None
              ) -> str:
    """The HTTP code Kubernetes answers with: success when `reason` and `code` are None."""
    if reason is None and code is None:
        return "201" if VERBS.get(method) == "POST" and method != "AccessReview" else "200"
    if reason is not None:
        return HTTP_OF_REASON.get(reason, "500")
    status = code if isinstance(code, grpc.StatusCode) else _BY_VALUE.get(code)
    return HTTP_OF_CODE.get(status, "500") if status is not None else "500"


class RequestMetrics:
    """The two series in `registry`; `record(method, code, started)` after each call."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("verb", "group", "resource", "subresource")
        self._total = Counter("apiserver_request", "Counter of apiserver requests broken "
                              "out for each verb, group, resource and HTTP response code.",
                              (*labels, "code"), registry=registry)
        self._duration = Histogram("apiserver_request_duration_seconds", "Response latency "
                                   "distribution in seconds for each verb, group, resource "
                                   "and subresource.", labels, buckets=DURATION_BUCKETS,
                                   registry=registry)
        self._children: dict[tuple[str, str, str, str, str],
                             tuple[Callable[[], None], Callable[[float], None]]] = {}

    def record(self, method: str, code: str, started: float) -> None:
        group, resource, subresource = _CALL.get()
        key = (method, group, resource, subresource, code)
        children = self._children.get(key)
        if children is None:
            verb = VERBS.get(method, method.upper())
            children = self._children[key] = (
                self._total.labels(verb, group, resource, subresource, code).inc,
                self._duration.labels(verb, group, resource, subresource).observe)
        children[0]()
        children[1](time.perf_counter() - started)
