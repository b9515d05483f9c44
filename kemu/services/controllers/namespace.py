"""The namespace controller: a deleted namespace takes everything in it along.

Deleting a Namespace only marks it: the apiserver sets deletionTimestamp and phase
Terminating, refuses new content, and keeps the object while `spec.finalizers` holds
"kubernetes". As kube-controller-manager's namespace controller does, this controller then
deletes every namespaced object in it (every namespaced kind, Background propagation, with
a uid precondition), waits until they are really gone (pods take their grace period and
leave when their node agent confirms; objects with finalizers wait for the garbage
collector), and only then removes "kubernetes" from spec.finalizers through an ordinary
update (the apiserver allows removing it), after which the apiserver deletes the namespace.

While content remains the namespace's status says why, with Kubernetes' conditions
(NamespaceContentRemaining, NamespaceFinalizersRemaining, NamespaceDeletionContentFailure),
and the namespace is looked at again after a delay that grows while nothing changes.
Nothing is kept in memory between passes, so a restarted controller simply carries on.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from kemu.api import kinds, objects
from kemu.api.v1 import api_pb2, meta_pb2
from kemu.client.errors import ClientError, Conflict, NotFound
from kemu.client.informer import Informer
from kemu.client.workqueue import WorkQueue, run_workers

log = logging.getLogger("kemu.controllers.namespace")

NAME = "namespace"
INFORMERS = ("namespaces",)
FINALIZER = "kubernetes"
# Every namespaced kind; Events last, so that what deleting the rest records goes too.
CONTENT = tuple(sorted((k for k in kinds.KINDS if k.namespaced),
                       key=lambda k: k.kind == "Event"))
_UPDATE_RETRIES = 5


class NamespaceClient(Protocol):
    """The API calls the controller makes (AsyncClient has them)."""

    async def get(self, resource: str, name: str, namespace: str = "") -> api_pb2.Object: ...
    async def list(self, resource: str, namespace: str = "", *, label_selector: str = "",
                   field_selector: str = "") -> api_pb2.ListResponse: ...
    async def update(self, obj: api_pb2.Object) -> api_pb2.Object: ...
    async def update_status(self, obj: api_pb2.Object) -> api_pb2.Object: ...
    async def delete(self, resource: str, name: str, namespace: str = "", *,
                     grace_period_seconds: int | None = None, uid: str = "",
                     propagation_policy: int = api_pb2.PROPAGATION_POLICY_UNSPECIFIED
                     ) -> api_pb2.DeleteResponse: ...


@dataclass
class Remaining:
    """What one deletion pass left in the namespace."""

    objects: Counter[str] = field(default_factory=Counter)  # resource -> count
    finalizers: Counter[str] = field(default_factory=Counter)  # finalizer -> count
    failures: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.objects or self.failures)


def conditions(rem: Remaining, now: float) -> list[meta_pb2.Condition]:
    """Kubernetes' namespace deletion conditions for what is left."""
    ts = Timestamp()
    ts.FromSeconds(int(now))

    def cond(type_: str, ok: bool, reason: str, message: str) -> meta_pb2.Condition:
        c = meta_pb2.Condition(type=type_, status="True" if not ok else "False",
                               reason=reason, message=message)
        c.last_transition_time.CopyFrom(ts)
        return c

    left = ", ".join(f"{r} has {n} resource instances" for r, n in sorted(rem.objects.items()))
    fins = ", ".join(f"{f} in {n} resource instances"
                     for f, n in sorted(rem.finalizers.items()))
    return [
        cond("NamespaceDeletionContentFailure", not rem.failures,
             "ContentDeletionFailed" if rem.failures else "ContentDeleted",
             "; ".join(rem.failures) if rem.failures
             else "All content successfully deleted, may be waiting on finalization"),
        cond("NamespaceContentRemaining", not rem.objects,
             "SomeResourcesRemain" if rem.objects else "ContentRemoved",
             f"Some resources are remaining: {left}" if rem.objects
             else "All content successfully removed"),
        cond("NamespaceFinalizersRemaining", not rem.finalizers,
             "SomeFinalizersRemain" if rem.finalizers else "ContentHasNoFinalizers",
             f"Some content in the namespace has finalizers remaining: {fins}"
             if rem.finalizers else "All content-preserving finalizers finished"),
    ]


class NamespaceController:
    """Empties terminating namespaces, then releases their "kubernetes" finalizer."""

    def __init__(self, client: NamespaceClient, informers: Mapping[str, Informer], *,
                 workers: int = 10, recheck: float = 1.0, max_recheck: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.namespaces = informers["namespaces"]
        self.workers = workers
        self.recheck = recheck
        self.max_recheck = max_recheck
        self.clock = clock
        self.queue: WorkQueue[str] = WorkQueue()
        self._delay: dict[str, float] = {}  # namespace -> next recheck delay while waiting
        self.namespaces.add_handler(self.on_namespace)

    def on_namespace(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        if new is not None and new.namespace.metadata.HasField("deletion_timestamp"):
            self.queue.add(new.namespace.metadata.name)

    async def run(self) -> None:
        await self.namespaces.synced.wait()
        for obj in self.namespaces.list():
            self.on_namespace(None, obj)
        await run_workers(self.queue, self.reconcile, self.workers, on_error=self._on_error)

    def _on_error(self, name: str, e: Exception) -> None:
        message = e.message if isinstance(e, ClientError) else repr(e)
        log.warning("namespace=%s deletion pass failed, retrying requeues=%d: %s", name,
                    self.queue.num_requeues(name), message)

    async def reconcile(self, name: str) -> None:
        """One deletion pass over a terminating namespace."""
        started = time.perf_counter()
        cached = self.namespaces.get(name)
        if cached is None or not cached.namespace.metadata.HasField("deletion_timestamp") \
                or FINALIZER not in cached.namespace.spec.finalizers:
            self._delay.pop(name, None)
            return
        rem = await self.delete_content(name)
        if rem:
            await self._write_conditions(name, rem)
            delay = self._delay.get(name, self.recheck)
            self._delay[name] = min(delay * 2, self.max_recheck)
            self.queue.add_after(name, delay)
            log.info("namespace=%s waiting for content=%s finalizers=%s failures=%d "
                     "recheck_s=%.1f", name, dict(rem.objects), dict(rem.finalizers),
                     len(rem.failures), delay)
            return
        self._delay.pop(name, None)
        await self._finalize(name)
        log.info("namespace=%s content deleted; finalizer %s removed duration_ms=%.1f", name,
                 FINALIZER, (time.perf_counter() - started) * 1000)

    async def delete_content(self, namespace: str) -> Remaining:
        """Delete every object in the namespace not yet deleting; what is left."""
        rem = Remaining()
        for kind in CONTENT:
            try:
                items = (await self.client.list(kind.plural, namespace)).items
            except ClientError as e:
                rem.failures.append(f"listing {kind.plural}: {e.message}")
                continue
            for obj in items:
                meta = objects.meta(obj)
                rem.finalizers.update(meta.finalizers)
                if meta.HasField("deletion_timestamp"):
                    rem.objects[kind.qualified] += 1
                    continue
                try:
                    resp = await self.client.delete(kind.plural, meta.name, namespace,
                                                    uid=meta.uid,
                                                    propagation_policy=api_pb2.BACKGROUND)
                except (NotFound, Conflict):
                    continue  # gone, or the name is another (new) object: next pass
                except ClientError as e:
                    rem.failures.append(f"deleting {kind.plural}/{meta.name}: {e.message}")
                    rem.objects[kind.qualified] += 1
                    continue
                if not resp.deleted:
                    rem.objects[kind.qualified] += 1
        return rem

    async def _write_conditions(self, name: str, rem: Remaining) -> None:
        """Say on the namespace what holds it (only when that changed)."""
        try:
            live = await self.client.get("namespaces", name)
        except NotFound:
            return
        wanted = conditions(rem, self.clock())
        have = {c.type: c for c in live.namespace.status.conditions}
        if all(c.type in have and (have[c.type].status, have[c.type].reason,
                                   have[c.type].message) == (c.status, c.reason, c.message)
               for c in wanted):
            return
        for c in wanted:
            prev = have.get(c.type)
            if prev is not None and prev.status == c.status:
                c.last_transition_time.CopyFrom(prev.last_transition_time)
        del live.namespace.status.conditions[:]
        live.namespace.status.conditions.extend(wanted)
        try:
            await self.client.update_status(live)
        except (Conflict, NotFound) as e:
            log.debug("namespace=%s conditions not written: %s", name, e.message)

    async def _finalize(self, name: str) -> None:
        """Remove "kubernetes" from spec.finalizers; the apiserver then deletes it."""
        for _attempt in range(_UPDATE_RETRIES):
            try:
                live = await self.client.get("namespaces", name)
            except NotFound:
                return
            fins = live.namespace.spec.finalizers
            if FINALIZER not in fins:
                return
            kept = [f for f in fins if f != FINALIZER]
            del fins[:]
            fins.extend(kept)
            try:
                await self.client.update(live)
                return
            except NotFound:
                return
            except Conflict:
                continue
        raise Conflict(f"namespace {name} kept changing")
