"""An in-memory API for the workload controllers' unit tests (and tests of it).

`FakeAPI` keeps objects as the apiserver would for what the controllers rely on: uid,
resourceVersion (a stale one is a Conflict), generateName, creationTimestamp, generation
bumped on spec changes, update keeping status and update-status keeping the rest, delete
preconditioned on uid. With `mirror` on, every write also lands in the informers and calls
their handlers, as a watch would deliver it; with it off, the cache lags (as right after a
write) and the tests drive what the controllers see. `fail` injects an error per
(verb, resource), optionally after some successful calls.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from kemu.api import objects
from kemu.api.v1 import api_pb2
from kemu.client.errors import AlreadyExists, ClientError, Conflict, NotFound
from kemu.client.informer import Informer, key_of


@dataclass
class Failure:
    error: ClientError
    after: int = 0  # successful calls before failing


@dataclass
class FakeAPI:
    informers: dict[str, Informer] = field(default_factory=dict)
    mirror: bool = True
    now: float = 1_700_000_000.0
    objects: dict[tuple[str, str], api_pb2.Object] = field(default_factory=dict)
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    fail: dict[tuple[str, str], Failure] = field(default_factory=dict)
    _rv: itertools.count[int] = field(default_factory=lambda: itertools.count(100))
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # ---- helpers for tests --------------------------------------------------------------

    def put(self, obj: api_pb2.Object, *, cache: bool = True) -> api_pb2.Object:
        """Store an object as if created earlier (and in the cache unless told not)."""
        obj = self._fill(obj)
        self.objects[(objects.kind_of(obj).plural, key_of(obj))] = obj
        if cache:
            self.cache(obj)
        return obj

    def cache(self, obj: api_pb2.Object, *, deleted: bool = False) -> None:
        inf = self.informers.get(objects.kind_of(obj).plural)
        if inf is None:
            return
        key = key_of(obj)
        old = inf.store.get(key)
        if deleted:
            inf.store.pop(key, None)
            new = None
        else:
            inf.store[key] = new = _copy(obj)
        for handler in inf.handlers:
            handler(old, new)

    def list(self, resource: str, namespace: str = "") -> list[api_pb2.Object]:
        return [_copy(o) for (r, k), o in sorted(self.objects.items())
                if r == resource and (not namespace or k.startswith(f"{namespace}/"))]

    def count(self, verb: str, resource: str = "") -> int:
        return sum(1 for v, r, _ in self.calls if v == verb and (not resource or r == resource))

    # ---- the client verbs ---------------------------------------------------------------

    def _check(self, verb: str, resource: str) -> None:
        f = self.fail.get((verb, resource))
        if f is None:
            return
        if f.after > 0:
            f.after -= 1
            return
        raise f.error

    def _fill(self, obj: api_pb2.Object) -> api_pb2.Object:
        obj = _copy(obj)
        m = objects.meta(obj)
        if not m.name:
            m.name = f"{m.generate_name}{next(self._names):05d}"
        if not m.uid:
            m.uid = f"uid-{m.name}"
        if not m.HasField("creation_timestamp"):
            m.creation_timestamp.FromSeconds(int(self.now))
        if "spec" in objects.unwrap(obj).DESCRIPTOR.fields_by_name and not m.generation:
            m.generation = 1
        m.resource_version = str(next(self._rv))
        return obj

    def _stored(self, resource: str, name: str, namespace: str) -> api_pb2.Object:
        try:
            return self.objects[(resource, f"{namespace}/{name}")]
        except KeyError:
            raise NotFound(f'{resource} "{name}" not found') from None

    def _write(self, obj: api_pb2.Object) -> api_pb2.Object:
        objects.meta(obj).resource_version = str(next(self._rv))
        self.objects[(objects.kind_of(obj).plural, key_of(obj))] = obj
        if self.mirror:
            self.cache(obj)
        return _copy(obj)

    async def create(self, obj: api_pb2.Object) -> api_pb2.Object:
        resource = objects.kind_of(obj).plural
        self.calls.append(("create", resource, objects.meta(obj).name))
        self._check("create", resource)
        m = objects.meta(obj)
        if m.name and (resource, key_of(obj)) in self.objects:
            raise AlreadyExists(f'{resource} "{m.name}" already exists')
        filled = self._fill(obj)
        return self._write(filled)

    async def get(self, resource: str, name: str, namespace: str = "") -> api_pb2.Object:
        self._check("get", resource)
        return _copy(self._stored(resource, name, namespace))

    def _updatable(self, obj: api_pb2.Object) -> tuple[str, api_pb2.Object]:
        resource, m = objects.kind_of(obj).plural, objects.meta(obj)
        current = self._stored(resource, m.name, m.namespace)
        if m.resource_version and m.resource_version != objects.meta(current).resource_version:
            raise Conflict(f'{resource} "{m.name}": the object has been modified')
        return resource, current

    async def update(self, obj: api_pb2.Object) -> api_pb2.Object:
        resource, current = self._updatable(obj)
        self.calls.append(("update", resource, objects.meta(obj).name))
        self._check("update", resource)
        new = _copy(obj)
        inner, old = objects.unwrap(new), objects.unwrap(current)
        if "status" in inner.DESCRIPTOR.fields_by_name:
            inner.status.CopyFrom(old.status)
        m = objects.meta(new)
        m.uid, m.generation = old.metadata.uid, old.metadata.generation
        m.creation_timestamp.CopyFrom(old.metadata.creation_timestamp)
        if "spec" in inner.DESCRIPTOR.fields_by_name and inner.spec != old.spec:
            m.generation += 1
        return self._write(new)

    async def update_status(self, obj: api_pb2.Object) -> api_pb2.Object:
        resource, current = self._updatable(obj)
        self.calls.append(("update_status", resource, objects.meta(obj).name))
        self._check("update_status", resource)
        new = _copy(current)
        objects.unwrap(new).status.CopyFrom(objects.unwrap(obj).status)
        return self._write(new)

    async def delete(self, resource: str, name: str, namespace: str = "", *,
                     grace_period_seconds: int | None = None, uid: str = "",
                     propagation_policy: int = 0) -> api_pb2.DeleteResponse:
        self.calls.append(("delete", resource, name))
        self._check("delete", resource)
        current = self._stored(resource, name, namespace)
        if uid and objects.meta(current).uid != uid:
            raise Conflict("Precondition failed: UID")
        del self.objects[(resource, f"{namespace}/{name}")]
        if self.mirror:
            self.cache(current, deleted=True)
        return api_pb2.DeleteResponse()


def _copy(obj: api_pb2.Object) -> api_pb2.Object:
    out = api_pb2.Object()
    out.CopyFrom(obj)
    return out


def informers(api: FakeAPI, *resources: str) -> dict[str, Informer]:
    """Informers over the fake (never started: tests fill them through the fake)."""
    infs = {r: Informer(api, r) for r in resources}  # type: ignore[arg-type]
    api.informers.update(infs)
    return infs


# ---- tests of the fake itself ---------------------------------------------------------


def _pod(name: str = "", generate: str = "") -> api_pb2.Object:
    obj = api_pb2.Object()
    obj.pod.metadata.namespace = "ns"
    obj.pod.metadata.name = name
    obj.pod.metadata.generate_name = generate
    obj.pod.spec.containers.add(name="c", image="x")
    return obj


async def test_fake_names_versions_and_conflicts() -> None:
    api = FakeAPI()
    infs = informers(api, "pods")
    seen: list[Any] = []
    infs["pods"].add_handler(lambda old, new: seen.append((old is None, new is None)))
    created = await api.create(_pod(generate="web-"))
    assert created.pod.metadata.name.startswith("web-") and created.pod.metadata.uid
    assert seen == [(True, False)]
    stale = _copy(created)
    created.pod.metadata.labels["a"] = "b"
    await api.update(created)
    try:
        await api.update(stale)
    except Conflict:
        pass
    else:
        raise AssertionError("a stale resourceVersion must conflict")
    await api.delete("pods", created.pod.metadata.name, "ns")
    assert seen[-1] == (False, True) and not infs["pods"].store


async def test_fake_injected_failure_after_successes() -> None:
    api = FakeAPI(fail={("create", "pods"): Failure(Conflict("boom"), after=1)})
    await api.create(_pod("a"))
    try:
        await api.create(_pod("b"))
    except Conflict:
        return
    raise AssertionError("the second create must fail")
