"""The garbage collector's owner graph: every object that owns or is owned, by uid.

Kubernetes' GraphBuilder keeps this graph so that the collector knows, without listing,
which objects depend on an owner that just went away or started deleting. Nodes are
indexed by uid (ownerReferences name their owner by uid, and a name can be reused by a
new incarnation). An owner that is referenced but not (yet) seen is a *virtual* node: the
collector verifies it with a live GET, since it may simply not have reached its informer
yet, or may never have existed.

This module is pure (no I/O): every change returns the uids the collector should look at,
so the controller stays level-triggered and the graph is easy to test.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from kemu.api import kinds, objects
from kemu.api.v1 import api_pb2, meta_pb2

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"


@dataclass(frozen=True)
class Identity:
    """Where an object lives: kind, namespace (empty when cluster-scoped), name, uid."""

    kind: str
    namespace: str
    name: str
    uid: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where} ({self.uid})"


def identity_of(obj: api_pb2.Object) -> Identity:
    m = objects.meta(obj)
    return Identity(objects.kind_of(obj).kind, m.namespace, m.name, m.uid)


def owner_identity(ref: meta_pb2.OwnerReference, dependent_namespace: str) -> Identity:
    """The owner a reference names, seen from a dependent in `dependent_namespace`: a
    namespaced owner must live in the dependent's namespace (Kubernetes forbids
    cross-namespace owners), a cluster-scoped one has no namespace."""
    kind = kinds.by_kind(ref.kind)
    namespaced = kind.namespaced if kind is not None else bool(dependent_namespace)
    return Identity(ref.kind, dependent_namespace if namespaced else "", ref.name, ref.uid)


@dataclass
class Node:
    """One object in the graph (observed through an informer, or virtual)."""

    identity: Identity
    observed: bool = False
    owners: list[meta_pb2.OwnerReference] = field(default_factory=list)
    dependents: set[str] = field(default_factory=set)
    deleting: bool = False
    finalizers: tuple[str, ...] = ()

    @property
    def uid(self) -> str:
        return self.identity.uid

    @property
    def deleting_dependents(self) -> bool:
        """Being deleted in the foreground: waiting for its dependents to go first."""
        return self.deleting and FOREGROUND in self.finalizers

    def owner_ref(self, uid: str) -> meta_pb2.OwnerReference | None:
        return next((r for r in self.owners if r.uid == uid), None)

    def blocks(self, owner_uid: str) -> bool:
        """Whether foreground deletion of `owner_uid` must wait for this dependent."""
        ref = self.owner_ref(owner_uid)
        return ref is not None and ref.block_owner_deletion


class AbsentOwners:
    """Owners verified absent (NotFound, or that name now has another uid), so that the
    dependents of one deleted owner do not each cost a GET. Bounded, oldest out first."""

    def __init__(self, size: int = 4096) -> None:
        self._items: OrderedDict[Identity, None] = OrderedDict()
        self._size = size

    def add(self, ident: Identity) -> None:
        self._items[ident] = None
        self._items.move_to_end(ident)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def __contains__(self, ident: object) -> bool:
        return ident in self._items

    def __len__(self) -> int:
        return len(self._items)


class Graph:
    """uid -> Node, with owners' dependents kept in step with dependents' ownerReferences."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.absent = AbsentOwners()

    def clear(self) -> None:
        self.nodes.clear()

    def get(self, uid: str) -> Node | None:
        return self.nodes.get(uid)

    def dependents(self, uid: str) -> list[Node]:
        node = self.nodes.get(uid)
        if node is None:
            return []
        return [d for u in sorted(node.dependents) if (d := self.nodes.get(u)) is not None]

    def upsert(self, obj: api_pb2.Object) -> set[str]:
        """Record an added or updated object; the uids that now need a look."""
        ident = identity_of(obj)
        meta = objects.meta(obj)
        touched: set[str] = set()
        node = self.nodes.get(ident.uid)
        if node is None:
            node = self.nodes[ident.uid] = Node(ident)
        node.identity, node.observed = ident, True
        old = {r.uid: r for r in node.owners}
        new = {r.uid: r for r in meta.owner_references}
        for uid, ref in old.items():
            owner = self.nodes.get(uid)
            if owner is None:
                continue
            if uid not in new:
                owner.dependents.discard(ident.uid)
                self._drop_unreferenced_virtual(owner)
            elif new[uid].block_owner_deletion == ref.block_owner_deletion:
                continue
            if owner.deleting:
                touched.add(uid)  # an owner waiting on this dependent may go now
        for uid, ref in new.items():
            owner = self.nodes.get(uid)
            if owner is None:
                owner = self.nodes[uid] = Node(owner_identity(ref, ident.namespace))
                touched.add(uid)  # virtual: verify it exists
            owner.dependents.add(ident.uid)
            if uid not in old and owner.deleting:
                touched.add(uid)
        node.owners = [_copy_ref(r) for r in meta.owner_references]
        node.deleting = meta.HasField("deletion_timestamp")
        node.finalizers = tuple(meta.finalizers)
        if node.deleting and (ORPHAN in node.finalizers or FOREGROUND in node.finalizers):
            touched.add(ident.uid)
        return touched

    def remove(self, obj: api_pb2.Object) -> set[str]:
        """Record a deleted object; its dependents (and deleting owners) need a look."""
        uid = objects.meta(obj).uid
        node = self.nodes.get(uid)
        if node is None:
            return set()
        return self._remove_node(node, remember_absent=bool(node.dependents))

    def virtual_gone(self, uid: str) -> set[str]:
        """A virtual owner was verified absent: forget it, remember it absent, and
        return its dependents."""
        node = self.nodes.get(uid)
        if node is None or node.observed:
            return set()
        return self._remove_node(node, remember_absent=True)

    def _remove_node(self, node: Node, *, remember_absent: bool) -> set[str]:
        touched = set(node.dependents)
        if remember_absent:
            self.absent.add(node.identity)
        del self.nodes[node.uid]
        for ref in node.owners:
            owner = self.nodes.get(ref.uid)
            if owner is None:
                continue
            owner.dependents.discard(node.uid)
            if owner.deleting:
                touched.add(owner.uid)
            self._drop_unreferenced_virtual(owner)
        return touched

    def _drop_unreferenced_virtual(self, node: Node) -> None:
        if not node.observed and not node.dependents:
            self.nodes.pop(node.uid, None)

    def interesting(self) -> set[str]:
        """After a rebuild: virtual owners to verify and owners mid-deletion to finish."""
        return {n.uid for n in self.nodes.values()
                if not n.observed or (n.deleting and (ORPHAN in n.finalizers
                                                      or FOREGROUND in n.finalizers))}


def _copy_ref(ref: meta_pb2.OwnerReference) -> meta_pb2.OwnerReference:
    out = meta_pb2.OwnerReference()
    out.CopyFrom(ref)
    return out
