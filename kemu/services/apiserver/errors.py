"""The apiserver's exception family, worded as Kubernetes words its API errors.

Handlers raise these; the servicer layer maps each to one gRPC status code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from kemu.api.kinds import Kind


class APIError(Exception):
    """Root of the apiserver's errors; the message is what the client sees."""


class NotFound(APIError):
    """The object does not exist."""

    def __init__(self, kind: Kind, name: str) -> None:
        super().__init__(f'{kind.qualified} "{name}" not found')


class AlreadyExists(APIError):
    """An object with that name already exists."""

    def __init__(self, kind: Kind, name: str) -> None:
        super().__init__(f'{kind.qualified} "{name}" already exists')


class Conflict(APIError):
    """The resourceVersion (or uid) precondition does not match the stored object."""

    def __init__(self, kind: Kind, name: str, detail: str = "") -> None:
        detail = detail or ("the object has been modified; please apply your changes to the "
                            "latest version and try again")
        super().__init__(f'Operation cannot be fulfilled on {kind.qualified} "{name}": {detail}')


@dataclass(frozen=True)
class FieldError:
    """One invalid field: `spec.replicas: Invalid value: -1: must be >= 0`."""

    path: str
    reason: str  # "Required value", "Invalid value", "Unsupported value", "Duplicate value", ...
    detail: str = ""
    value: object = None
    show_value: bool = False

    def __str__(self) -> str:
        text = f"{self.path}: {self.reason}"
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
