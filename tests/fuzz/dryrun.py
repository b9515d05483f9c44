"""The apiserver's create path without processes: Registry.create(dry_run=True) over a
storage that holds only the `default` namespace, so a fuzz case costs microseconds and
still goes through namespace normalising, defaulting, every validator and allocation."""

from __future__ import annotations

import asyncio
from typing import Any

from kemu.api import kinds, objects
from kemu.api.v1 import api_pb2, core_pb2, meta_pb2
from kemu.services.apiserver import errors, registry
from kemu.services.apiserver.storage import KeyValue


class OneNamespaceStorage:
    """Just enough of Storage for a dry-run create: `default` exists, nothing else does."""

    def __init__(self) -> None:
        ns = api_pb2.Object(namespace=core_pb2.Namespace(
            metadata=meta_pb2.ObjectMeta(name="default")))
        self._ns = KeyValue(kinds.resolve("namespaces").store_key("", "default"),
                            registry.encode(ns), 1, 1)

    async def get(self, key: str) -> tuple[KeyValue | None, int]:
        return (self._ns if key == self._ns.key else None), 1

    async def keys(self, prefix: str) -> list[str]:
        return []


def new_registry() -> registry.Registry:
    return registry.Registry(OneNamespaceStorage())  # type: ignore[arg-type]


def create(reg: registry.Registry, obj: api_pb2.Object) -> api_pb2.Object | errors.APIError:
    """The created object, or the APIError the create raised (anything else propagates)."""
    try:
        return asyncio.run(reg.create(obj, dry_run=True))
    except errors.APIError as e:
        return e


def check_error(e: errors.APIError, obj: Any = None) -> None:
    """An error a client can act on: an Invalid names at least one field, each non-empty."""
    if isinstance(e, errors.Invalid):
        assert e.errors, f"Invalid without field errors: {e}"
        assert all(fe.path for fe in e.errors), f"a field error without a path: {e.errors}"
    assert str(e), f"{type(e).__name__} without a message ({obj})"


def kind_field(obj: api_pb2.Object) -> str:
    return objects.kind_of(obj).envelope_field
