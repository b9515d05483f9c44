"""Typed access to one kind: `Resource[Deployment]` reads and writes `apps_pb2.Deployment`
messages instead of the `kemu.v1.Object` envelope that every RPC carries.

    from kemu.api.v1 import apps_pb2
    from kemu.client import Client, typed

    with Client("127.0.0.1:6443", read_retry_seconds=10) as client:
        deployments = typed.resource(client, apps_pb2.Deployment)
        web = deployments.get("web", "default")
        web.spec.replicas = 3
        deployments.update(web)                 # Conflict if someone changed it meanwhile
        for event, pod in typed.resource(client, core_pb2.Pod).list_and_watch("default"):
            ...

`list_and_watch` is the synchronous form of an informer (kemu.client.informer is the
asyncio one the components use): the current objects as ADDED, then every change, resuming
from the last resourceVersion when a stream ends and listing again (reporting what changed
meanwhile) when that version is too old to resume from (Gone). Errors are kemu.client's
ClientError classes; reads retry on UNAVAILABLE as the Client is configured to.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from google.protobuf.message import Message

from kemu.api import kinds, objects
from kemu.api.v1 import api_pb2
from kemu.client.client import Client
from kemu.client.errors import Gone, Unavailable

M = TypeVar("M", bound=Message)
EVENT_NAMES = {api_pb2.WatchEvent.ADDED: "ADDED", api_pb2.WatchEvent.MODIFIED: "MODIFIED",
               api_pb2.WatchEvent.DELETED: "DELETED"}


def _key(msg: Any) -> str:
    m = msg.metadata
    return f"{m.namespace}/{m.name}"


def _version(msg: Any) -> str:
    return str(msg.metadata.resource_version)


@dataclass
class Resource(Generic[M]):
    """The verbs of kemu.client.Client for one kind, on its own message type."""

    client: Client
    kind: kinds.Kind
    message: type[M]

    @property
    def plural(self) -> str:
        return self.kind.plural

    def _out(self, obj: api_pb2.Object) -> M:
        return cast(M, getattr(obj, self.kind.envelope_field))

    def get(self, name: str, namespace: str = "") -> M:
        return self._out(self.client.get(self.plural, name, namespace))

    def list(self, namespace: str = "", *, label_selector: str = "",
             field_selector: str = "") -> builtins.list[M]:
        return self.list_with_version(namespace, label_selector=label_selector,
                                      field_selector=field_selector)[0]

    def list_with_version(self, namespace: str = "", *, label_selector: str = "",
                          field_selector: str = "") -> tuple[builtins.list[M], str]:
        """The objects and the list's resourceVersion (watch from it to miss nothing)."""
        resp = self.client.list(self.plural, namespace, label_selector=label_selector,
                                field_selector=field_selector)
        return [self._out(o) for o in resp.items], resp.resource_version

    def create(self, obj: M, *, dry_run: bool = False) -> M:
        return self._out(self.client.create(objects.wrap(obj), dry_run=dry_run))

    def update(self, obj: M, *, dry_run: bool = False) -> M:
        """Replace the object; Conflict when its resourceVersion is not the stored one."""
        return self._out(self.client.update(objects.wrap(obj), dry_run=dry_run))

    def update_status(self, obj: M) -> M:
        return self._out(self.client.update_status(objects.wrap(obj)))

    def apply(self, obj: M, *, dry_run: bool = False) -> M:
        """Server-side apply (kubectl apply's merge): create, or change only what differs."""
        return self._out(self.client.apply(objects.wrap(obj), dry_run=dry_run).object)

    def delete(self, name: str, namespace: str = "", *,
               propagation_policy: int = api_pb2.PROPAGATION_POLICY_UNSPECIFIED,
               grace_period_seconds: int | None = None) -> None:
        self.client.delete(self.plural, name, namespace, propagation_policy=propagation_policy,
                           grace_period_seconds=grace_period_seconds)

    def scale(self, name: str, replicas: int, namespace: str = "") -> M:
        return self._out(self.client.scale(self.plural, name, replicas, namespace))

    def watch(self, namespace: str = "", *, label_selector: str = "", field_selector: str = "",
              resource_version: str = "", timeout: float | None = None
              ) -> Iterator[tuple[str, M]]:
        """("ADDED" | "MODIFIED" | "DELETED", object) until the stream ends or `timeout`."""
        for event in self.client.watch(self.plural, namespace, label_selector=label_selector,
                                       field_selector=field_selector,
                                       resource_version=resource_version, timeout=timeout):
            name = EVENT_NAMES.get(event.type)
            if name is not None:
                yield name, self._out(event.object)

    def list_and_watch(self, namespace: str = "", *, label_selector: str = "",
                       field_selector: str = "", stream_seconds: float = 300.0
                       ) -> Iterator[tuple[str, M]]:
        """Every object as ADDED, then every change, forever (break out of the loop to
        stop). Each watch stream lasts at most `stream_seconds`, then resumes from the last
        resourceVersion seen; after Gone it lists again and yields the difference. A server
        that is UNAVAILABLE is retried with back-off for the Client's read_retry_seconds."""
        known: dict[str, M] = {}
        version = ""
        backoff = _Backoff(self.client.read_retry_seconds)
        while True:
            if not version:
                items, version = self.list_with_version(
                    namespace, label_selector=label_selector, field_selector=field_selector)
                current = {_key(o): o for o in items}
                for key, obj in current.items():
                    old = known.get(key)
                    if old is None:
                        yield "ADDED", obj
                    elif _version(old) != _version(obj):
                        yield "MODIFIED", obj
                for key in known.keys() - current.keys():
                    yield "DELETED", known[key]
                known = current
            try:
                for name, obj in self.watch(namespace, label_selector=label_selector,
                                            field_selector=field_selector,
                                            resource_version=version,
                                            timeout=stream_seconds):
                    version = _version(obj) or version
                    if name == "DELETED":
                        known.pop(_key(obj), None)
                    else:
                        known[_key(obj)] = obj
                    yield name, obj
                backoff.reset()
            except Gone:
                version = ""  # too old to resume from: list again
            except Unavailable as e:
                backoff.wait_or_raise(e)


class _Backoff:
    """Sleeps doubling from 0.1 s to 2 s while failures last under `budget` seconds."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.reset()

    def reset(self) -> None:
        self.delay = 0.1
        self.since: float | None = None

    def wait_or_raise(self, error: Exception) -> None:
        now = time.monotonic()
        self.since = self.since if self.since is not None else now
        if now + self.delay - self.since > self.budget:
            raise error
        time.sleep(self.delay)
        self.delay = min(self.delay * 2, 2.0)


def resource(client: Client, message: type[M]) -> Resource[M]:
    """Typed verbs for the kind whose message is `message` (core_pb2.Pod, apps_pb2.Deployment,
    ...); ValueError for a message that is not a served kind."""
    kind = kinds.by_kind(message.DESCRIPTOR.name)
    if kind is None:
        raise ValueError(f"{message.DESCRIPTOR.full_name} is not a kind the apiserver serves")
    return Resource(client, kind, message)
