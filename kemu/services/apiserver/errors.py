"""The apiserver's exception family, worded as Kubernetes words its API errors.

Handlers raise these; the servicer layer maps each to one gRPC status code and a
Kubernetes StatusReason. What a client in another language needs to branch on travels
beside the message as google.rpc.Status details (`status` below builds them): an ErrorInfo
whose metadata is `about`, Kubernetes' StatusDetails (kind, group, name, field), and for
Invalid a BadRequest with one violation per field error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import google.rpc.error_details_pb2 as error_details_pb2
import google.rpc.status_pb2 as status_pb2
import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from grpc_status import rpc_status

from kemu.api.kinds import Kind

DOMAIN = "kemu.io"  # ErrorInfo.domain: who defines the reasons


class APIError(Exception):
    """Root of the apiserver's errors; the message is what the client sees."""

    about: Mapping[str, str] = {}  # ErrorInfo metadata: which object, which field


def _about(kind: Kind, name: str, *, as_kind: bool = False, **more: str) -> dict[str, str]:
    """Kubernetes' StatusDetails: `kind` is the resource (`deployments`) except where
    Kubernetes names the Kind (`Deployment`, for Invalid); empty values are left out."""
    found = {"kind": kind.kind if as_kind else kind.plural, "group": kind.group, "name": name,
             **more}
    return {k: v for k, v in found.items() if v}


class NotFound(APIError):
    """The object does not exist."""

    def __init__(self, kind: Kind, name: str) -> None:
        super().__init__(f'{kind.qualified} "{name}" not found')
        self.about = _about(kind, name)


class AlreadyExists(APIError):
    """An object with that name already exists."""

    def __init__(self, kind: Kind, name: str) -> None:
        super().__init__(f'{kind.qualified} "{name}" already exists')
        self.about = _about(kind, name)


class Conflict(APIError):
    """The resourceVersion (or uid) precondition does not match the stored object."""

    def __init__(self, kind: Kind, name: str, detail: str = "") -> None:
        detail = detail or ("the object has been modified; please apply your changes to the "
                            "latest version and try again")
        super().__init__(f'Operation cannot be fulfilled on {kind.qualified} "{name}": {detail}')
        self.about = _about(kind, name)


@dataclass(frozen=True)
class FieldError:
    """One invalid field: `spec.replicas: Invalid value: -1: must be >= 0`."""

    path: str
    reason: str  # "Required value", "Invalid value", "Unsupported value", "Duplicate value", ...
    detail: str = ""
    value: object = None
    show_value: bool = False

    def __str__(self) -> str:
        return f"{self.path}: {self.description}"

    @property
    def description(self) -> str:
        """The text after the path: `Invalid value: -1: must be >= 0`."""
        text = self.reason
        if self.show_value:  # strings quoted as Kubernetes quotes them: "Bad_Name"
            text += f": {json.dumps(self.value)}" if isinstance(self.value, str) \
                else f": {self.value}"
        if self.detail:
            text += f": {self.detail}"
        return text


def required(path: str, detail: str = "") -> FieldError:
    return FieldError(path, "Required value", detail)


def invalid(path: str, value: object, detail: str) -> FieldError:
    return FieldError(path, "Invalid value", detail, value, True)


def unsupported(path: str, value: object, allowed: tuple[str, ...]) -> FieldError:
    return FieldError(path, "Unsupported value", "supported values: "
                      + ", ".join(f'"{a}"' for a in allowed), value, True)


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(path, "Forbidden", detail)


def duplicate(path: str, value: object) -> FieldError:
    return FieldError(path, "Duplicate value", "", value, True)


class Invalid(APIError):
    """The object failed validation; every field error names its path."""

    def __init__(self, kind: Kind, name: str, errors: list[FieldError]) -> None:
        self.errors = errors
        listed = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(map(str, errors)) + "]"
        super().__init__(f'{kind.kind}.{kind.group or "core"} "{name}" is invalid: {listed}'
                         if kind.group else f'{kind.kind} "{name}" is invalid: {listed}')
        self.about = _about(kind, name, as_kind=True, field=errors[0].path if errors else "")


class BadRequest(APIError):
    """The request itself is malformed (bad selector, unknown resource, missing name)."""


class Gone(APIError):
    """A watch resourceVersion too old to resume from; the client must list again."""


class Unavailable(APIError):
    """The store cannot be reached."""


class NotImplementedYet(APIError):
    """A subresource that needs a component this cluster does not run."""


class FailedPrecondition(APIError):
    """The object is not in a state that allows the operation."""


class Forbidden(APIError):
    """The caller may not do this: authorization denied it (Kubernetes' 403 Forbidden)."""

    def __init__(self, message: str, about: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.about = dict(about or {})


def status(code: grpc.StatusCode, message: str, reason: str, *,
           about: Mapping[str, str] | None = None,
           violations: Iterable[FieldError] = ()) -> grpc.Status:
    """The status to abort with: `code` and `message` as ever, and in the
    `grpc-status-details-bin` trailer an ErrorInfo (and a BadRequest when there are
    field errors) that any language's gRPC status library decodes."""
    message = clip(message, MAX_MESSAGE_BYTES)
    info = error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=about or {})
    details: list[Message] = [info]
    fields: list[error_details_pb2.BadRequest.FieldViolation] = []
    budget = MAX_VIOLATION_BYTES
    every = list(violations)
    for v in every:
        field = error_details_pb2.BadRequest.FieldViolation(
            field=clip(v.path, 256), description=clip(v.description, 256))
        budget -= field.ByteSize()
        if budget < 0:
            info.metadata["omittedFieldErrors"] = str(len(every) - len(fields))
            break
        fields.append(field)
    if fields:
        details.append(error_details_pb2.BadRequest(field_violations=fields))
    packed = [any_pb2.Any() for _ in details]
    for any_detail, detail in zip(packed, details, strict=True):
        any_detail.Pack(detail)
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message,
                                                  details=packed))


MAX_MESSAGE_BYTES = 768
MAX_VIOLATION_BYTES = 1536
"""The message travels twice (grpc-message, and inside grpc-status-details-bin in base64)
and gRPC clients refuse trailers over 8 KiB (a RESOURCE_EXHAUSTED of their own instead of
the error): an object with hundreds of field errors must still come back as Invalid."""


def clip(text: str, limit: int) -> str:
    """`text` cut to at most about `limit` UTF-8 bytes, saying how much was left out."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    kept = raw[:max(limit - 32, 0)].decode(errors="ignore")
    return f"{kept}... ({len(raw) - len(kept.encode())} more bytes)"
