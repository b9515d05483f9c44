"""The client's exception family: one class per gRPC status that callers act on.

The message is the server's, which already reads like Kubernetes' (`deployments.apps
"web" not found`); `reason` is Kubernetes' StatusReason name, which kemuctl prints as
kubectl does: `Error from server (NotFound): ...`. The apiserver sends the reason, the
object (`metadata`: kind, group, name, field) and an Invalid error's field violations as
google.rpc.Status details in the trailer; from a server that sends none, `reason` is the
class's and the other two are empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import google.rpc.error_details_pb2 as error_details_pb2
import google.rpc.status_pb2 as status_pb2
import grpc
from grpc_status import rpc_status


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field: `spec.replicas`, `Invalid value: -1: must be ...`."""

    field: str
    description: str


class ClientError(Exception):
    """Root of every error the client raises."""

    reason = "InternalError"
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None, *,
                 reason: str = "", metadata: Mapping[str, str] | None = None,
                 field_violations: Iterable[FieldViolation] = ()) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if reason:
            self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})
        self.field_violations: tuple[FieldViolation, ...] = tuple(field_violations)


class NotFound(ClientError):
    """The object does not exist."""

    reason = "NotFound"


class AlreadyExists(ClientError):
    """An object with that name exists."""

    reason = "AlreadyExists"


class Conflict(ClientError):
    """The object changed since it was read (stale resourceVersion)."""

    reason = "Conflict"


class Invalid(ClientError):
    """The object or request is invalid; the message names the field."""

    reason = "Invalid"


class Gone(ClientError):
    """A watch resourceVersion too old to resume from: list again."""

    reason = "Gone"


class Unavailable(ClientError):
    """The server cannot be reached or is not ready."""

    reason = "ServiceUnavailable"


class Forbidden(ClientError):
    """The operation is not allowed (permission, or the object's state)."""

    reason = "Forbidden"


class Unauthorized(ClientError):
    """No valid credentials."""

    reason = "Unauthorized"


class Timeout(ClientError):
    """The call ran past its deadline."""

    reason = "Timeout"


_BY_CODE: dict[grpc.StatusCode, type[ClientError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.ABORTED: Conflict,
    grpc.StatusCode.INVALID_ARGUMENT: Invalid,
    grpc.StatusCode.OUT_OF_RANGE: Gone,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.PERMISSION_DENIED: Forbidden,
    grpc.StatusCode.FAILED_PRECONDITION: Forbidden,
    grpc.StatusCode.UNAUTHENTICATED: Unauthorized,
    grpc.StatusCode.DEADLINE_EXCEEDED: Timeout,
}


def _details(err: grpc.RpcError) -> tuple[str, dict[str, str], list[FieldViolation]]:
    """The reason, ErrorInfo metadata and field violations in the error's trailer (a
    google.rpc.Status); ("", {}, []) when the server sent none."""
    try:
        found: status_pb2.Status | None = rpc_status.from_call(err) \
            if hasattr(err, "trailing_metadata") else None
    except ValueError:  # details that disagree with the status: trust the status
        found = None
    reason, metadata, violations = "", {}, []
    for detail in found.details if found is not None else ():
        info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
        if detail.Unpack(info):
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Unpack(bad):
            violations += [FieldViolation(v.field, v.description) for v in bad.field_violations]
    return reason, metadata, violations


def _transport_message(details: str, target: str) -> str:
    """kubectl's words for a connection that failed: refused; a server certificate this
    client does not trust; or a server that closed the connection during the handshake,
    which is how a TLS server that requires a client certificate (or a plaintext caller
    of a TLS server) ends it."""
    lowered = details.lower()
    if "certificate_verify_failed" in lowered or "unable to get local issuer" in lowered:
        return (f"Unable to connect to the server {target}: x509: certificate signed by "
                "unknown authority (check --certificate-authority)")
    if "handshake failed" in lowered or "ssl_error" in lowered:
        return f"Unable to connect to the server {target}: TLS handshake failed"
    if lowered.endswith("socket closed"):
        return (f"Unable to connect to the server {target}: it closed the connection; it "
                "may serve TLS and require a client certificate (--certificate-authority, "
                "--client-certificate and --client-key, or the cluster's entry in "
                "~/.kemu/config)")
    return (f"The connection to the server {target} was refused - did you specify the "
            "right host or port?")


def from_rpc_error(err: grpc.RpcError, target: str = "") -> ClientError:
    """Translate a gRPC error into the client's exception family."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    message = (err.details() if hasattr(err, "details") else "") or str(code)
    # Only the channel's own failures (not a server's UNAVAILABLE message) mean "refused".
    transport = message.lower().startswith(("failed to connect", "connection refused",
                                            "dns resolution failed", "connections to all"))
    if code == grpc.StatusCode.UNAVAILABLE and target and transport:
        message = _transport_message(message, target)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and target:
        message = f"the server {target} did not answer in time: {message}"
    cls = _BY_CODE.get(code, ClientError)
    reason, metadata, violations = _details(err)
    return cls(message, code, reason=reason, metadata=metadata, field_violations=violations)
