"""The error table end to end without processes: each apiserver error aborts with its code,
its unchanged message and google.rpc.Status details, and kemu.client reads them back (and
falls back to its own reasons when a server sends no details)."""

from __future__ import annotations

from typing import Any, NoReturn

import grpc
import pytest
from grpc_status import rpc_status

from kemu.api import kinds
from kemu.client import errors as client_errors
from kemu.services.apiserver import cacher, errors, service
from kemu.services.apiserver.proxy import AgentError

DEPLOYMENTS = kinds.resolve("deployments")
PODS = kinds.resolve("pods")


class Aborted(Exception):
    def __init__(self, status: grpc.Status) -> None:
        super().__init__(status.details)
        self.status = status


class FakeContext:
    """Records the status an RPC aborts with, as grpc.aio's context would send it."""

    async def abort_with_status(self, status: grpc.Status) -> NoReturn:
        raise Aborted(status)


async def abort(exc: Exception) -> grpc.Status:
    context: Any = FakeContext()
    with pytest.raises(Aborted) as caught:
        await service._translate(context, exc, "Test")
    return caught.value.status


def received(status: grpc.Status) -> grpc.aio.AioRpcError:
    """The error a client gets for `status`."""
    return grpc.aio.AioRpcError(status.code, grpc.aio.Metadata(),
                                grpc.aio.Metadata(*status.trailing_metadata), status.details)


@pytest.mark.parametrize(("exc", "code", "reason", "metadata", "cls"), [
    pytest.param(errors.NotFound(DEPLOYMENTS, "web"), grpc.StatusCode.NOT_FOUND, "NotFound",
                 {"kind": "deployments", "group": "apps", "name": "web"},
                 client_errors.NotFound, id="not-found"),
    pytest.param(errors.AlreadyExists(PODS, "p"), grpc.StatusCode.ALREADY_EXISTS,
                 "AlreadyExists", {"kind": "pods", "name": "p"}, client_errors.AlreadyExists,
                 id="already-exists"),
    pytest.param(errors.Conflict(PODS, "p"), grpc.StatusCode.ABORTED, "Conflict",
                 {"kind": "pods", "name": "p"}, client_errors.Conflict, id="conflict"),
    pytest.param(errors.BadRequest("nodeName is required"), grpc.StatusCode.INVALID_ARGUMENT,
                 "BadRequest", {}, client_errors.Invalid, id="bad-request"),
    pytest.param(kinds.UnknownResourceError("bogus"), grpc.StatusCode.INVALID_ARGUMENT,
                 "BadRequest", {}, client_errors.Invalid, id="unknown-resource"),
    pytest.param(errors.Gone("too old resource version: 1 (9)"), grpc.StatusCode.OUT_OF_RANGE,
                 "Gone", {}, client_errors.Gone, id="gone"),
    pytest.param(errors.Unavailable("store unavailable"), grpc.StatusCode.UNAVAILABLE,
                 "ServiceUnavailable", {}, client_errors.Unavailable, id="unavailable"),
    pytest.param(errors.FailedPrecondition("being terminated"),
                 grpc.StatusCode.FAILED_PRECONDITION, "Forbidden", {},
                 client_errors.Forbidden, id="failed-precondition"),
    pytest.param(errors.NotImplementedYet("no metrics"), grpc.StatusCode.UNIMPLEMENTED,
                 "MethodNotAllowed", {}, client_errors.ClientError, id="not-implemented"),
    pytest.param(cacher.Timeout("too slow"), grpc.StatusCode.DEADLINE_EXCEEDED, "Timeout", {},
                 client_errors.Timeout, id="timeout"),
    pytest.param(cacher.WatcherOverflow("behind"), grpc.StatusCode.RESOURCE_EXHAUSTED,
                 "TooManyRequests", {}, client_errors.ClientError, id="watcher-overflow"),
    pytest.param(AgentError(grpc.StatusCode.NOT_FOUND, 'container "x" not found'),
                 grpc.StatusCode.NOT_FOUND, "NotFound", {}, client_errors.NotFound,
                 id="agent-error"),
    pytest.param(RuntimeError("boom"), grpc.StatusCode.INTERNAL, "InternalError", {},
                 client_errors.ClientError, id="internal"),
])
async def test_each_error_carries_code_reason_and_object(
        exc: Exception, code: grpc.StatusCode, reason: str, metadata: dict[str, str],
        cls: type[client_errors.ClientError]) -> None:
    status = await abort(exc)
    assert status.code == code
    assert status.details == (f"internal error: {exc}" if code == grpc.StatusCode.INTERNAL
                              else str(exc))
    err = client_errors.from_rpc_error(received(status))
    assert type(err) is cls
    assert (err.code, err.message, err.reason, err.metadata, err.field_violations) == (
        code, status.details, reason, metadata, ())


async def test_invalid_lists_every_field_error() -> None:
    exc = errors.Invalid(DEPLOYMENTS, "web", [
        errors.invalid("spec.replicas", -1, "must be greater than or equal to 0"),
        errors.required("spec.template.spec.containers[0].image")])
    status = await abort(exc)
    rich = rpc_status.from_call(received(status))
    assert rich is not None and rich.message == str(exc)
    err = client_errors.from_rpc_error(received(status))
    assert isinstance(err, client_errors.Invalid)
    assert err.reason == "Invalid"
    assert err.metadata == {"kind": "Deployment", "group": "apps", "name": "web",
                            "field": "spec.replicas"}
    assert err.field_violations == (
        client_errors.FieldViolation("spec.replicas",
                                     "Invalid value: -1: must be greater than or equal to 0"),
        client_errors.FieldViolation("spec.template.spec.containers[0].image",
                                     "Required value"))


@pytest.mark.parametrize(("code", "cls", "reason"), [
    pytest.param(grpc.StatusCode.NOT_FOUND, client_errors.NotFound, "NotFound", id="not-found"),
    pytest.param(grpc.StatusCode.INVALID_ARGUMENT, client_errors.Invalid, "Invalid",
                 id="invalid"),
    pytest.param(grpc.StatusCode.OUT_OF_RANGE, client_errors.Gone, "Gone", id="gone"),
    pytest.param(grpc.StatusCode.UNAUTHENTICATED, client_errors.Unauthorized, "Unauthorized",
                 id="unauthorized"),
])
def test_without_details_the_reason_comes_from_the_code(
        code: grpc.StatusCode, cls: type[client_errors.ClientError], reason: str) -> None:
    err = client_errors.from_rpc_error(grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(), "some message"))
    assert (type(err), err.reason, err.metadata, err.field_violations) == (cls, reason, {}, ())


def test_details_that_disagree_with_the_status_are_ignored() -> None:
    status = errors.status(grpc.StatusCode.NOT_FOUND, "one message", "Gone",
                           about={"kind": "pods"})
    err = client_errors.from_rpc_error(grpc.aio.AioRpcError(
        grpc.StatusCode.NOT_FOUND, grpc.aio.Metadata(),
        grpc.aio.Metadata(*status.trailing_metadata), "another message"))
    assert (err.reason, err.metadata) == ("NotFound", {})


def test_an_error_that_is_no_call_still_translates() -> None:
    err = client_errors.from_rpc_error(grpc.RpcError())
    assert (type(err), err.reason, err.field_violations) == (client_errors.ClientError,
                                                              "InternalError", ())


def test_a_huge_invalid_error_still_fits_in_grpc_trailers() -> None:
    """gRPC clients refuse trailers over 8 KiB with a RESOURCE_EXHAUSTED of their own: an
    object with hundreds of bad fields must still come back as Invalid, clipped."""
    import grpc as _grpc

    from kemu.services.apiserver.errors import FieldError, status

    errors_ = [FieldError(f"spec.ports[{i}].name", "Invalid value", "must be no more than 15 "
                          "characters " * 20) for i in range(500)]
    message = "Service \"web\" is invalid: " + ", ".join(str(e) for e in errors_)
    got = status(_grpc.StatusCode.INVALID_ARGUMENT, message, "Invalid", violations=errors_)
    size = sum(len(k) + len(v if isinstance(v, bytes) else v.encode())
               for k, v in got.trailing_metadata) + len(got.details.encode())
    assert size < 6 * 1024, size
    assert got.details.endswith("more bytes)")
    from google.rpc import error_details_pb2 as details_pb2
    from google.rpc import status_pb2 as st_pb2

    decoded = st_pb2.Status.FromString(dict(got.trailing_metadata)["grpc-status-details-bin"])
    info, bad = details_pb2.ErrorInfo(), details_pb2.BadRequest()
    decoded.details[0].Unpack(info)
    decoded.details[1].Unpack(bad)
    assert info.reason == "Invalid"
    shown = len(bad.field_violations)
    assert 0 < shown < 500 and info.metadata["omittedFieldErrors"] == str(500 - shown)
    assert bad.field_violations[0].field == "spec.ports[0].name"
