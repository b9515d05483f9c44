"""kemuctl's own error root, and the one place that words any error as kubectl does.

Every verb lets errors rise; `kemuctl.main` catches the known families here and prints
exactly one line on stderr, so that a user never sees a traceback and a script can rely
on a non-zero exit.
"""

from __future__ import annotations

import grpc

from kemu.api.kinds import UnknownResourceError
from kemu.api.manifest import ManifestError
from kemu.client.config import ConfigError
from kemu.client.errors import ClientError, Invalid, Unavailable


class CtlError(Exception):
    """A usage or input problem found by kemuctl itself; printed as `error: <message>`."""


class Reported(Exception):
    """Errors were already printed (one line each); exit non-zero without another line."""

    def __init__(self, code: int = 1) -> None:
        super().__init__(f"exit {code}")
        self.code = code


KNOWN = (ClientError, ManifestError, UnknownResourceError, CtlError, ConfigError, OSError)


def server_error(err: ClientError, *, action: str = "", source: str = "") -> str:
    """kubectl's wording for an API error, optionally naming what was being done to which
    file: `Error from server (AlreadyExists): error when creating "f.yaml": ...`."""
    message = err.message
    context = f'error when {action} "{source}": ' if action and source else ""
    if isinstance(err, Unavailable):
        if message.startswith(("The connection to the server", "Unable to connect to the server")):
            return message
        lowered = message.lower()
        if "failed to connect" in lowered or "dns resolution" in lowered:
            return f"Unable to connect to the server: {message}"
    if err.code == grpc.StatusCode.UNIMPLEMENTED:
        return f"error: {message}"
    if isinstance(err, Invalid):
        if " is invalid: " in message:
            return f"The {message}"  # kubectl names the object, not the file, here
        return f"Error from server (BadRequest): {context}{message}"
    return f"Error from server ({err.reason}): {context}{message}"


def one_line(exc: BaseException) -> str:
    """The single stderr line for any error that reaches `main`."""
    if isinstance(exc, ClientError):
        text = server_error(exc)
    elif isinstance(exc, UnknownResourceError):
        text = f"error: {exc.args[0] if exc.args else exc}"
    elif isinstance(exc, FileNotFoundError) and exc.filename:
        text = f'error: the path "{exc.filename}" does not exist'
    elif isinstance(exc, OSError) and exc.filename:
        text = f"error: {exc.filename}: {exc.strerror or exc}"
    else:
        text = f"error: {exc}" if str(exc) else f"error: {type(exc).__name__}"
    return text.replace("\n", " ").rstrip()
