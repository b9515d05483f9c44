"""Controller references: who manages an object, and adopting or releasing it.

An object (a pod, a ReplicaSet) belongs to the one owner whose ownerReference says
`controller: true`. As Kubernetes' `ControllerRefManager` does, an owner claims what its
selector matches: an orphan that matches is adopted (the owner's reference is added,
unless the owner or the object is being deleted), an owned object that no longer matches
is released (the reference removed), and objects another controller owns are left alone.
Writes are read-modify-write with the object's resourceVersion; on a conflict the object
is read again and the precondition (still an orphan, still matching) checked again, so two
controllers never both adopt one object.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from kemu.api import labels as labelsel
from kemu.api import objects
from kemu.api.v1 import api_pb2, meta_pb2
from kemu.client.errors import ClientError, Conflict, NotFound
from kemu.client.informer import Informer, key_of

log = logging.getLogger("kemu.controllers.controllerref")

_ATTEMPTS = 3


class WorkloadClient(Protocol):
    """The API calls the workload controllers make (AsyncClient has them)."""

    async def create(self, obj: api_pb2.Object) -> api_pb2.Object: ...
    async def get(self, resource: str, name: str, namespace: str = "") -> api_pb2.Object: ...
    async def update(self, obj: api_pb2.Object) -> api_pb2.Object: ...
    async def update_status(self, obj: api_pb2.Object) -> api_pb2.Object: ...
    async def delete(self, resource: str, name: str, namespace: str = "", *,
                     grace_period_seconds: int | None = None, uid: str = "",
                     propagation_policy: int = 0) -> api_pb2.DeleteResponse: ...


def log_sync_error(logger: logging.Logger, what: str, key: str, requeues: int,
                   e: Exception) -> None:
    """A Conflict means the cache was behind a write and is routine (INFO); anything
    else is a WARNING. Either way the key is retried with back-off."""
    message = e.message if isinstance(e, ClientError) else repr(e)
    level = logging.INFO if isinstance(e, Conflict) else logging.WARNING
    logger.log(level, "%s=%s sync failed, retrying requeues=%d: %s", what, key, requeues,
               message)


def controller_of(meta: meta_pb2.ObjectMeta) -> meta_pb2.OwnerReference | None:
    for ref in meta.owner_references:
        if ref.controller:
            return ref
    return None


CONTROLLER_INDEX = "controller"


def by_controller(obj: api_pb2.Object) -> tuple[str, ...]:
    """The index value of an object: its controller's uid, or `orphan/NAMESPACE` when it
    has none (those a controller of that namespace may adopt)."""
    meta = objects.meta(obj)
    ref = controller_of(meta)
    return (ref.uid,) if ref is not None else (f"orphan/{meta.namespace}",)


def claim_candidates(informer: Informer, owner: Owner) -> list[api_pb2.Object]:
    """What `RefManager.claim` can claim for `owner`: the objects it controls and the orphans
    of its namespace, from the informer's controller index (a controller owns none of
    the objects other controllers own, so those are never looked at; at 10,000 pods a
    ReplicaSet's sync read every one of them and kept the controller manager busy)."""
    informer.add_index(CONTROLLER_INDEX, by_controller)
    return (informer.by_index(CONTROLLER_INDEX, owner.uid)
            + informer.by_index(CONTROLLER_INDEX, f"orphan/{owner.meta.namespace}"))


def resolve_controller(owners: Informer, kind: str, meta: meta_pb2.ObjectMeta) -> str | None:
    """The cache key of the object's controller of `kind`, if the cache holds that very
    object (same uid): a reference to a deleted and recreated owner resolves to nothing
    (resolveControllerRef)."""
    ref = controller_of(meta)
    if ref is None or ref.kind != kind:
        return None
    key = f"{meta.namespace}/{ref.name}"
    owner = owners.get(key)
    if owner is None or objects.meta(owner).uid != ref.uid:
        return None
    return key


def matching_owners(owners: Informer, selector_of: Callable[[api_pb2.Object],
                                                            labelsel.Selector],
                    meta: meta_pb2.ObjectMeta) -> list[str]:
    """Keys of the cached owners in the object's namespace whose selector matches its
    labels: who may adopt an orphan. Owners with an empty or invalid selector match
    nothing."""
    keys = []
    for obj in owners.list():
        if objects.meta(obj).namespace != meta.namespace:
            continue
        try:
            selector = selector_of(obj)
        except labelsel.SelectorError:
            continue
        if not selector.empty() and selector.matches(meta.labels):
            keys.append(key_of(obj))
    return keys


@dataclass(frozen=True)
class Owner:
    """The controlling object: its kind and metadata (a copy taken for this sync)."""

    kind: str
    api_version: str
    meta: meta_pb2.ObjectMeta

    @property
    def uid(self) -> str:
        return self.meta.uid

    @property
    def deleting(self) -> bool:
        return self.meta.HasField("deletion_timestamp")

    def controller_ref(self) -> meta_pb2.OwnerReference:
        """metav1.NewControllerRef: controller and blockOwnerDeletion both true."""
        return meta_pb2.OwnerReference(api_version=self.api_version, kind=self.kind,
                                       name=self.meta.name, uid=self.meta.uid,
                                       controller=True, block_owner_deletion=True)


async def update_meta(client: WorkloadClient, resource: str, obj: api_pb2.Object,
                      change: Callable[[meta_pb2.ObjectMeta], bool]) -> api_pb2.Object | None:
    """Apply `change` to the object's metadata and write it, re-reading on conflicts.

    `change` returns False when its precondition no longer holds (nothing is written);
    None is returned then, and when the object is gone or was replaced (other uid).
    """
    current = api_pb2.Object()
    current.CopyFrom(obj)
    uid = objects.meta(obj).uid
    for _attempt in range(_ATTEMPTS):
        meta = objects.meta(current)
        if meta.uid != uid or not change(meta):
            return None
        try:
            return await client.update(current)
        except NotFound:
            return None
        except Conflict:
            try:
                current = await client.get(resource, meta.name, meta.namespace)
            except NotFound:
                return None
    raise Conflict(f"{resource} {objects.meta(obj).name} kept changing")


class RefManager:
    """Claims objects for one owner (ControllerRefManager.ClaimObject)."""

    def __init__(self, client: WorkloadClient, owner: Owner, selector: labelsel.Selector,
                 resource: str, can_adopt: Callable[[], Awaitable[bool]]) -> None:
        self.client = client
        self.owner = owner
        self.selector = selector
        self.resource = resource
        self._can_adopt = can_adopt
        self._adoption_checked: bool | None = None

    def _matches(self, meta: meta_pb2.ObjectMeta) -> bool:
        return not self.selector.empty() and self.selector.matches(meta.labels)

    async def claim(self, objs: list[api_pb2.Object]) -> list[api_pb2.Object]:
        """The objects this owner controls after adopting and releasing as needed."""
        claimed: list[api_pb2.Object] = []
        for obj in objs:
            got = await self._claim_one(obj)
            if got is not None:
                claimed.append(got)
        return claimed

    async def _claim_one(self, obj: api_pb2.Object) -> api_pb2.Object | None:
        meta = objects.meta(obj)
        ref = controller_of(meta)
        if ref is not None:
            if ref.uid != self.owner.uid:
                return None
            if self._matches(meta):
                return obj
            if not self.owner.deleting:
                await self.release(obj)
            return None
        if (self.owner.deleting or not self._matches(meta) or meta.HasField("deletion_timestamp")
                or meta.namespace != self.owner.meta.namespace):
            return None
        if not await self._adoption_allowed():
            return None
        return await self.adopt(obj)

    async def _adoption_allowed(self) -> bool:
        """Re-read the owner once per claim (RecheckDeletionTimestamp): a cached owner may
        already be deleted, and adopting for it would strand the object."""
        if self._adoption_checked is None:
            self._adoption_checked = await self._can_adopt()
        return self._adoption_checked

    async def adopt(self, obj: api_pb2.Object) -> api_pb2.Object | None:
        def change(meta: meta_pb2.ObjectMeta) -> bool:
            if controller_of(meta) is not None or meta.HasField("deletion_timestamp") \
                    or not self._matches(meta):
                return False
            meta.owner_references.append(self.owner.controller_ref())
            return True
        adopted = await update_meta(self.client, self.resource, obj, change)
        if adopted is not None:
            log.info("%s adopted %s/%s/%s", self._who(), self.resource,
                     objects.meta(obj).namespace, objects.meta(obj).name)
        return adopted

    async def release(self, obj: api_pb2.Object) -> None:
        def change(meta: meta_pb2.ObjectMeta) -> bool:
            kept = [r for r in meta.owner_references if r.uid != self.owner.uid]
            if len(kept) == len(meta.owner_references):
                return False
            del meta.owner_references[:]
            meta.owner_references.extend(kept)
            return True
        if await update_meta(self.client, self.resource, obj, change) is not None:
            log.info("%s released %s/%s/%s", self._who(), self.resource,
                     objects.meta(obj).namespace, objects.meta(obj).name)

    def _who(self) -> str:
        return f"{self.owner.kind.lower()}={self.owner.meta.namespace}/{self.owner.meta.name}"


def owner_check(client: WorkloadClient, resource: str, owner: Owner
                ) -> Callable[[], Awaitable[bool]]:
    """A `can_adopt` that reads the owner live: same uid and not being deleted."""
    async def check() -> bool:
        try:
            fresh = objects.meta(await client.get(resource, owner.meta.name,
                                                  owner.meta.namespace))
        except NotFound:
            return False
        return fresh.uid == owner.uid and not fresh.HasField("deletion_timestamp")
    return check
