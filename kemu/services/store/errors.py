"""The store's one exception family.

Domain code raises these; the gRPC layer translates them through one table
(servicers.ERRORS) into the exact status codes and messages etcd uses, because
etcd clients match errors on the message text.
"""

from __future__ import annotations


class StoreError(Exception):
    """Root of every error the store raises on purpose."""


class Compacted(StoreError):
    """The requested revision has been compacted."""


class FutureRevision(StoreError):
    """The requested revision is newer than the store's revision."""


class LeaseNotFound(StoreError):
    """The lease does not exist (never granted, revoked or expired)."""


class LeaseExists(StoreError):
    """A lease with the requested ID already exists."""


class LeaseTTLTooLarge(StoreError):
    """The requested lease TTL exceeds the maximum."""


class KeyNotFound(StoreError):
    """ignore_value/ignore_lease was given for a key that does not exist."""


class InvalidRequest(StoreError):
    """The request is malformed; the message is etcd's text for the case."""


class StorageError(StoreError):
    """The data directory or database cannot be used."""


class Unavailable(StoreError):
    """The store is shutting down or its writer has failed."""


class ConfigError(StoreError):
    """The store's configuration cannot be used (bad address, port in use)."""
