"""The client's exception family: one class per gRPC status that callers act on.

The message is the server's, which already reads like Kubernetes' (`deployments.apps
"web" not found`); `reason` is Kubernetes' StatusReason name, which kemuctl prints as
kubectl does: `Error from server (NotFound): ...`.
"""

from __future__ import annotations

import grpc


class ClientError(Exception):
    """Root of every error the client raises."""

    reason = "InternalError"
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


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

    reason = "Expired"


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


def from_rpc_error(err: grpc.RpcError, target: str = "") -> ClientError:
    """Translate a gRPC error into the client's exception family."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = (err.details() if hasattr(err, "details") else "") or str(code)
    # Only the channel's own failures (not a server's UNAVAILABLE message) mean "refused".
    transport = details.lower().startswith(("failed to connect", "connection refused",
                                            "dns resolution failed", "connections to all"))
    if code == grpc.StatusCode.UNAVAILABLE and target and transport:
        details = (f"The connection to the server {target} was refused - did you specify "
                   "the right host or port?")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and target:
        details = f"the server {target} did not answer in time: {details}"
    cls = _BY_CODE.get(code, ClientError)
    return cls(details, code)
