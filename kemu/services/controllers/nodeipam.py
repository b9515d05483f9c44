"""The node IPAM controller: give each Node a podCIDR from the cluster CIDR, never twice.

The node agent builds its pod bridge from `spec.podCIDR` and every node routes the other
nodes' podCIDRs to them, so two nodes with one subnet would break pod networking. As
kube-controller-manager's range allocator does, the controller rebuilds the used set from
the existing Nodes before it hands anything out (a restart never repeats a subnet), keeps
a podCIDR a node already has (marking it used when it lies in the range), releases a
subnet when its Node is deleted, and, when the range is full, logs and records a
CIDRNotAvailable Event on the node instead of failing.

What it has handed out but not yet seen in its cache is remembered by node name and uid,
so a stale cache re-reconciling the node writes the same subnet again (an idempotent
write) instead of taking a second one.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Mapping
from typing import Protocol

from kemu.api.v1 import api_pb2, core_pb2
from kemu.client.errors import ClientError, Conflict, NotFound
from kemu.client.informer import Informer, key_of
from kemu.client.workqueue import WorkQueue, run_workers
from kemu.services.controllers.cidrs import CIDRAllocator, CIDRExhausted, CIDROutOfRange

log = logging.getLogger("kemu.controllers.nodeipam")

NAME = "nodeipam"
INFORMERS = ("nodes",)
COMPONENT = "node-controller"
EVENT_NAMESPACE = "default"  # Kubernetes records Node events in "default"
EXHAUSTED_RETRY_SECONDS = 30.0


class NodeIPAMClient(Protocol):
    """The API calls the controller makes (AsyncClient has them)."""

    async def create(self, obj: api_pb2.Object) -> api_pb2.Object: ...
    async def get(self, resource: str, name: str, namespace: str = "") -> api_pb2.Object: ...
    async def update(self, obj: api_pb2.Object) -> api_pb2.Object: ...


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


def cidr_not_available_event(node: core_pb2.Node, message: str, now: float
                             ) -> api_pb2.Object:
    obj = api_pb2.Object()
    e = obj.event
    e.metadata.name = f"{node.metadata.name}.{int(now * 1e9):x}"
    e.metadata.namespace = EVENT_NAMESPACE
    ref = e.involved_object
    ref.kind, ref.api_version, ref.name, ref.uid = "Node", "v1", node.metadata.name, \
        node.metadata.uid
    e.type, e.reason, e.message, e.action = "Warning", "CIDRNotAvailable", message, \
        "Allocating"
    e.source.component = COMPONENT
    e.reporting_component = COMPONENT
    e.reporting_instance = f"{COMPONENT}-{socket.gethostname()}"
    e.first_timestamp.FromSeconds(int(now))
    e.last_timestamp.FromSeconds(int(now))
    e.count = 1
    return obj


class NodeIPAMController:
    """Assigns `spec.podCIDR`/`spec.podCIDRs` to Nodes from one allocator."""

    def __init__(self, client: NodeIPAMClient, informers: Mapping[str, Informer],
                 allocator: CIDRAllocator, *, workers: int = 1) -> None:
        self.client = client
        self.nodes = informers["nodes"]
        self.allocator = allocator
        self.workers = workers
        self.queue: WorkQueue[str] = WorkQueue()
        # node name -> (uid, cidr) for every subnet this controller counts as used.
        self.assigned: dict[str, tuple[str, str]] = {}
        self._reported: set[str] = set()
        # node name -> the out-of-range podCIDR already logged: a node's every status
        # update re-adopts it, and a line per heartbeat drowned the log at scale.
        self._outside: dict[str, str] = {}
        self.nodes.add_handler(self.on_node)

    def on_node(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        obj = new if new is not None else old
        if obj is not None:
            self.queue.add(key_of(obj))

    def rebuild(self) -> None:
        """Mark the podCIDRs of the Nodes in the (synced) cache used: run before any
        allocation, so a restarted controller never hands out a subnet twice."""
        for obj in self.nodes.list():
            self._adopt(obj.node)
        log.info("nodeipam rebuilt cluster_cidr=%s mask=%d nodes=%d used=%d",
                 self.allocator.cluster_cidr, self.allocator.mask_size, len(self.nodes.store),
                 self.allocator.used)

    def _adopt(self, node: core_pb2.Node) -> None:
        name, cidr = node.metadata.name, node.spec.pod_cidr
        if not cidr:
            return
        held = self.assigned.get(name)
        if held is not None and held[1] == cidr:
            self.assigned[name] = (node.metadata.uid, cidr)
            return
        if held is not None:
            self.allocator.release(held[1])
            self.assigned.pop(name, None)
        try:
            fresh = self.allocator.occupy(cidr)
        except CIDROutOfRange:
            if self._outside.get(name) != cidr:
                self._outside[name] = cidr
                log.info("node=%s keeps podCIDR=%s outside cluster_cidr=%s", name, cidr,
                         self.allocator.cluster_cidr)
            return
        if not fresh:
            log.warning("node=%s podCIDR=%s is also another node's", name, cidr)
        self.assigned[name] = (node.metadata.uid, cidr)

    async def run(self) -> None:
        self.rebuild()
        for obj in self.nodes.list():
            self.queue.add(key_of(obj))
        await run_workers(self.queue, self.reconcile, self.workers, on_error=self._on_error)

    def _on_error(self, key: str, e: Exception) -> None:
        message = e.message if isinstance(e, ClientError) else repr(e)
        log.warning("node=%s podCIDR sync failed, retrying requeues=%d: %s", key,
                    self.queue.num_requeues(key), message)

    def _release(self, name: str, why: str) -> None:
        self._outside.pop(name, None)
        held = self.assigned.pop(name, None)
        if held is not None and any(c == held[1] for _, c in self.assigned.values()):
            return  # a duplicate pre-assigned subnet: another node still uses it
        if held is not None and self.allocator.release(held[1]):
            log.info("node=%s podCIDR=%s released reason=%s used=%d", name, held[1], why,
                     self.allocator.used)
            # Nodes waiting because the range was full may fit now.
            for obj in self.nodes.list():
                if not obj.node.spec.pod_cidr and obj.node.metadata.name in self._reported:
                    self.queue.add(key_of(obj))

    async def reconcile(self, key: str) -> None:
        """Give the node `key` a podCIDR if it has none; release a deleted node's."""
        started = time.perf_counter()
        obj = self.nodes.get(key)
        if obj is None:
            self._release(key, "node-deleted")
            self._reported.discard(key)
            return
        node = obj.node
        held = self.assigned.get(key)
        if held is not None and held[0] != node.metadata.uid:
            self._release(key, "node-recreated")  # same name, new node
            held = None
        if node.spec.pod_cidr:
            self._adopt(node)
            return
        if held is not None:
            cidr = held[1]  # handed out already; the cache has not seen the write yet
        else:
            try:
                cidr = self.allocator.allocate()
            except CIDRExhausted as e:
                await self._exhausted(node, str(e))
                return
            self.assigned[key] = (node.metadata.uid, cidr)
        try:
            written = await self._write(node, cidr)
        except NotFound:
            self._release(key, "node-gone")
            return
        # Other errors propagate and keep the subnet reserved: the retry writes the same one.
        if written != cidr:
            # Someone else set it meanwhile; theirs wins.
            self._release(key, "node-has-another")
            fresh = api_pb2.Object()
            fresh.node.CopyFrom(node)
            fresh.node.spec.pod_cidr = written
            self._adopt(fresh.node)
            return
        self._reported.discard(key)
        log.info("node=%s podCIDR=%s assigned used=%d/%d duration_ms=%.2f", key, cidr,
                 self.allocator.used, self.allocator.size, _ms(started))

    async def _write(self, node: core_pb2.Node, cidr: str) -> str:
        """Set the podCIDR, retrying on Conflict; the podCIDR the node ends up with."""
        current = node
        for _attempt in range(5):
            if current.spec.pod_cidr:
                return current.spec.pod_cidr
            if current.metadata.uid != node.metadata.uid:
                raise NotFound(f"node {node.metadata.name} was replaced")
            obj = api_pb2.Object()
            obj.node.CopyFrom(current)
            obj.node.spec.pod_cidr = cidr
            del obj.node.spec.pod_cidrs[:]
            obj.node.spec.pod_cidrs.append(cidr)
            try:
                await self.client.update(obj)
                return cidr
            except Conflict:
                current = (await self.client.get("nodes", node.metadata.name)).node
        raise Conflict(f"node {node.metadata.name} kept changing")

    async def _exhausted(self, node: core_pb2.Node, message: str) -> None:
        name = node.metadata.name
        log.error("node=%s podCIDR not assigned: %s", name, message)
        if name not in self._reported:
            self._reported.add(name)
            try:
                await self.client.create(cidr_not_available_event(
                    node, f"Node {name} status is now: CIDRNotAvailable", time.time()))
            except ClientError as e:
                log.warning("node=%s event CIDRNotAvailable not recorded: %s", name, e.message)
        # A node deleted later frees a subnet and requeues nothing here: retry on a timer.
        self.queue.add_after(key_of(api_pb2.Object(node=node)), EXHAUSTED_RETRY_SECONDS)
