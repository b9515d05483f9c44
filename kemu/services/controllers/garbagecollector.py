"""The garbage collector: dependents follow their owners out, as Kubernetes' does.

ownerReferences make objects dependents of owners (a ReplicaSet of its Deployment, a pod of
its ReplicaSet, a node's Lease of its Node). The apiserver only marks a deletion: with
propagationPolicy Background the owner goes at once, Foreground gives it the
`foregroundDeletion` finalizer, Orphan the `orphan` finalizer. This controller does the
rest:

- Background: a dependent whose every owner is gone (verified with a live GET, since the
  graph may lag) is deleted; one that still has an owner only loses the dangling
  references.
- Foreground: the dependents of an owner with `foregroundDeletion` are deleted (those with
  dependents of their own in the foreground too); once no dependent with
  `blockOwnerDeletion` is left, the finalizer is removed and the owner goes.
- Orphan: the owner's reference is removed from every dependent, then the `orphan`
  finalizer, and the owner goes alone.

The graph (`gc_graph`) is built from one informer per kind and tells which uids to look
at; every decision is then taken on live reads, as Kubernetes' attemptToDeleteItem does,
so a stale cache never deletes something that still has an owner. After a restart the
graph is rebuilt from the synced informers before any worker runs, and owners found
mid-deletion, or referenced but never seen, are looked at first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from kemu.api import kinds, objects
from kemu.api.v1 import api_pb2, meta_pb2
from kemu.client.errors import ClientError, Conflict, NotFound
from kemu.client.informer import Informer
from kemu.client.workqueue import WorkQueue, run_workers
from kemu.services.controllers.gc_graph import (
    FOREGROUND,
    ORPHAN,
    Graph,
    Identity,
    Node,
    identity_of,
    owner_identity,
)

log = logging.getLogger("kemu.controllers.garbagecollector")

NAME = "garbagecollector"
# Every kind that can own or be owned; Events are neither (and the busiest kind).
INFORMERS = tuple(k.plural for k in kinds.KINDS if k.kind != "Event")
VIRTUAL_RECHECK_SECONDS = 1.0
_UPDATE_RETRIES = 5

SOLID, DANGLING, WAITING = "solid", "dangling", "waiting"


class GCClient(Protocol):
    """The API calls the collector makes (AsyncClient has them)."""

    async def get(self, resource: str, name: str, namespace: str = "") -> api_pb2.Object: ...
    async def update(self, obj: api_pb2.Object) -> api_pb2.Object: ...
    async def delete(self, resource: str, name: str, namespace: str = "", *,
                     grace_period_seconds: int | None = None, uid: str = "",
                     propagation_policy: int = api_pb2.PROPAGATION_POLICY_UNSPECIFIED
                     ) -> api_pb2.DeleteResponse: ...


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


class GarbageCollector:
    """Deletes dependents whose owners are gone, and finishes foreground and orphan
    deletions. Keys of the work queue are uids."""

    def __init__(self, client: GCClient, informers: Mapping[str, Informer], *,
                 workers: int = 20, virtual_recheck: float = VIRTUAL_RECHECK_SECONDS) -> None:
        self.client = client
        self.informers = {r: informers[r] for r in INFORMERS if r in informers}
        self.workers = workers
        self.virtual_recheck = virtual_recheck
        self.graph = Graph()
        self.queue: WorkQueue[str] = WorkQueue()
        for inf in self.informers.values():
            inf.add_handler(self.on_change)

    # ---- graph maintenance -------------------------------------------------------------

    def on_change(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        touched: set[str] = set()
        if old is not None and (new is None or
                                objects.meta(old).uid != objects.meta(new).uid):
            touched |= self.graph.remove(old)  # deleted, or replaced by a new incarnation
        if new is not None:
            touched |= self.graph.upsert(new)
        for uid in touched:
            self.queue.add(uid)

    def rebuild(self) -> None:
        """The graph from the synced caches alone (what a restarted collector knows)."""
        self.graph.clear()
        for inf in self.informers.values():
            for obj in inf.list():
                self.graph.upsert(obj)
        # Only owners never seen (to verify) and owners mid-deletion (to finish) need a
        # look; the dependents of either are queued when those are looked at.
        touched = self.graph.interesting()
        for uid in touched:
            self.queue.add(uid)
        log.info("garbagecollector graph rebuilt nodes=%d virtual=%d queued=%d",
                 len(self.graph.nodes),
                 sum(1 for n in self.graph.nodes.values() if not n.observed), len(touched))

    async def run(self) -> None:
        for inf in self.informers.values():
            await inf.synced.wait()
        self.rebuild()
        await run_workers(self.queue, self.reconcile, self.workers, on_error=self._on_error)

    def _on_error(self, uid: str, e: Exception) -> None:
        message = e.message if isinstance(e, ClientError) else repr(e)
        node = self.graph.get(uid)
        log.warning("gc item=%s failed, retrying requeues=%d: %s",
                    node.identity if node else uid, self.queue.num_requeues(uid), message)

    # ---- reconcile ---------------------------------------------------------------------

    async def reconcile(self, uid: str) -> None:
        """Look at one object (or virtual owner) by uid, from live state."""
        node = self.graph.get(uid)
        if node is None:
            return
        if not node.observed:
            await self._verify_virtual(node)
            return
        live = await self._get(node.identity)
        if live is None:
            return  # gone or replaced: the informer delivers the deletion
        meta = objects.meta(live)
        if meta.HasField("deletion_timestamp"):
            if ORPHAN in meta.finalizers:
                await self._orphan_dependents(node, live)
            elif FOREGROUND in meta.finalizers:
                await self._process_deleting_dependents(node, live)
            return
        if meta.owner_references:
            await self._attempt_to_delete(node, live)

    async def _get(self, ident: Identity) -> api_pb2.Object | None:
        """The live object with this identity; None if absent or now another uid."""
        kind = kinds.by_kind(ident.kind)
        if kind is None:
            return None
        try:
            obj = await self.client.get(kind.plural, ident.name, ident.namespace)
        except NotFound:
            return None
        return obj if objects.meta(obj).uid == ident.uid else None

    async def _verify_virtual(self, node: Node) -> None:
        """An owner referenced but not seen: gone (its dependents need a look) or not
        cached yet (look again until the informer brings it)."""
        ident = node.identity
        kind = kinds.by_kind(ident.kind)
        if kind is None:
            log.info("gc owner %s: kind not served, its dependents are kept", ident)
            return
        if kind.namespaced and not ident.namespace:
            log.info("gc owner %s: a namespaced owner of cluster-scoped objects is invalid; "
                     "its dependents are kept", ident)
            return
        if await self._get(ident) is not None:
            self.queue.add_after(node.uid, self.virtual_recheck)
            return
        touched = self.graph.virtual_gone(node.uid)
        log.info("gc owner %s absent; dependents to check=%d", ident, len(touched))
        for uid in touched:
            self.queue.add(uid)

    async def _classify(self, ref: meta_pb2.OwnerReference, item: Identity) -> str:
        """Kubernetes' classifyReferences for one reference, against live state."""
        kind = kinds.by_kind(ref.kind)
        if kind is None or (kind.namespaced and not item.namespace):
            return SOLID  # cannot be checked: never collect on its account
        owner = owner_identity(ref, item.namespace)
        if owner in self.graph.absent:
            return DANGLING
        try:
            live = await self.client.get(kind.plural, ref.name, owner.namespace)
        except NotFound:
            self.graph.absent.add(owner)
            return DANGLING
        meta = objects.meta(live)
        if meta.uid != ref.uid:
            self.graph.absent.add(owner)
            return DANGLING
        if meta.HasField("deletion_timestamp") and FOREGROUND in meta.finalizers:
            return WAITING
        return SOLID

    async def _attempt_to_delete(self, node: Node, live: api_pb2.Object) -> None:
        started = time.perf_counter()
        meta = objects.meta(live)
        ident = identity_of(live)
        state = {r.uid: await self._classify(r, ident) for r in meta.owner_references}
        solid = [u for u, s in state.items() if s == SOLID]
        gone = {u for u, s in state.items() if s != SOLID}
        if solid:
            if gone:
                # Still owned: only drop the references to owners gone or deleting.
                await self._change_meta(ident, lambda m: _drop_refs(m, gone))
                log.info("gc item=%s keeps owners=%s, dropped references=%s", ident,
                         ",".join(solid), ",".join(sorted(gone)))
            return
        waiting = any(s == WAITING for s in state.values())
        if waiting and node.dependents:
            if any(d.deleting_dependents for d in self.graph.dependents(node.uid)):
                # A dependent waits for us while we wait for it: do not block the owner.
                await self._change_meta(ident, _unblock_refs)
            policy = api_pb2.FOREGROUND
        elif ORPHAN in meta.finalizers:
            policy = api_pb2.ORPHAN
        elif FOREGROUND in meta.finalizers:
            policy = api_pb2.FOREGROUND
        else:
            policy = api_pb2.BACKGROUND
        await self._delete(ident, policy)
        log.info("gc item=%s deleted policy=%s owners=%s duration_ms=%.1f", ident,
                 api_pb2.PropagationPolicy.Name(policy),  # type: ignore[arg-type]
                 ",".join(f"{u}:{s}" for u, s in state.items()), _ms(started))

    async def _process_deleting_dependents(self, node: Node, live: api_pb2.Object) -> None:
        """Foreground: get the dependents deleted; let the owner go once none blocks it."""
        blocking = []
        for dep in self.graph.dependents(node.uid):
            if not dep.deleting:
                self.queue.add(dep.uid)
            if dep.blocks(node.uid):
                blocking.append(dep)
        if blocking:
            log.info("gc owner=%s waits for %d blocking dependents (%s)", node.identity,
                     len(blocking), ", ".join(str(d.identity) for d in blocking[:3]))
            return
        await self._remove_finalizer(live, FOREGROUND)
        log.info("gc owner=%s dependents gone; finalizer %s removed", node.identity,
                 FOREGROUND)

    async def _orphan_dependents(self, node: Node, live: api_pb2.Object) -> None:
        """Orphan: remove the owner's reference from every dependent, then the finalizer."""
        deps = self.graph.dependents(node.uid)
        for dep in deps:
            await self._change_meta(dep.identity, lambda m: _drop_refs(m, {node.uid}))
        await self._remove_finalizer(live, ORPHAN)
        log.info("gc owner=%s orphaned %d dependents; finalizer %s removed", node.identity,
                 len(deps), ORPHAN)

    # ---- writes ------------------------------------------------------------------------

    async def _delete(self, ident: Identity, policy: int) -> None:
        kind = kinds.by_kind(ident.kind)
        assert kind is not None
        try:
            await self.client.delete(kind.plural, ident.name, ident.namespace, uid=ident.uid,
                                     propagation_policy=policy)
        except NotFound:
            return
        except Conflict:
            return  # the uid precondition failed: that name is another object now

    async def _remove_finalizer(self, live: api_pb2.Object, finalizer: str) -> None:
        def change(m: meta_pb2.ObjectMeta) -> bool:
            if finalizer not in m.finalizers:
                return False
            kept = [f for f in m.finalizers if f != finalizer]
            del m.finalizers[:]
            m.finalizers.extend(kept)
            return True
        await self._change_meta(identity_of(live), change, current=live)

    async def _change_meta(self, ident: Identity, change: Callable[[meta_pb2.ObjectMeta], bool],
                           *, current: api_pb2.Object | None = None) -> None:
        """Read (unless given), change the metadata, write; re-read on conflicts. Nothing
        happens when the object is gone, is another uid, or `change` says no."""
        kind = kinds.by_kind(ident.kind)
        assert kind is not None
        obj = current
        for _attempt in range(_UPDATE_RETRIES):
            if obj is None:
                obj = await self._get(ident)
                if obj is None:
                    return
            fresh = api_pb2.Object()
            fresh.CopyFrom(obj)
            if not change(objects.meta(fresh)):
                return
            try:
                await self.client.update(fresh)
                return
            except NotFound:
                return
            except Conflict:
                obj = None
        raise Conflict(f"{ident} kept changing")


def _drop_refs(meta: meta_pb2.ObjectMeta, uids: set[str]) -> bool:
    kept = [r for r in meta.owner_references if r.uid not in uids]
    if len(kept) == len(meta.owner_references):
        return False
    copies = [meta_pb2.OwnerReference() for _ in kept]
    for c, r in zip(copies, kept, strict=True):
        c.CopyFrom(r)
    del meta.owner_references[:]
    meta.owner_references.extend(copies)
    return True


def _unblock_refs(meta: meta_pb2.ObjectMeta) -> bool:
    changed = False
    for r in meta.owner_references:
        if r.block_owner_deletion:
            r.block_owner_deletion = False
            changed = True
    return changed
