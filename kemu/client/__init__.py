"""The Python client for the kemu.v1 API, shared by kemuctl, the components and tests."""

from kemu.client.client import Client
from kemu.client.errors import (
    AlreadyExists,
    ClientError,
    Conflict,
    Gone,
    Invalid,
    NotFound,
    Unavailable,
)

__all__ = ["AlreadyExists", "Client", "ClientError", "Conflict", "Gone", "Invalid", "NotFound",
           "Unavailable"]
