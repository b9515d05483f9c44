"""The node's networking loop: Service rules, routes to other nodes, announced LB addresses.

kube-proxy and a host-gw network plugin, in the agent. Informer events only mark the state
dirty; one task syncs at most once per `min_interval` after a change (a burst of endpoint
updates during a rollout becomes one iptables-restore) and every `resync_interval`
regardless, which also repairs rules somebody deleted by hand, as kube-proxy's
BoundedFrequencyRunner does. The iptables and ip commands block, so they run in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from kemu.api import nodes
from kemu.api.v1 import api_pb2
from kemu.client.informer import Informer
from kemu.nodeagent.lbannounce import Announcer, elected_node
from kemu.nodeagent.podnetwork import CommandError, PeerNode, PodNetwork
from kemu.nodeagent.proxy import IptablesError, Proxier
from kemu.nodeagent.proxy.convert import desired_state
from kemu.util.logsetup import event, ms_since

log = logging.getLogger(__name__)


def node_ip(node: api_pb2.Object) -> str:
    return nodes.internal_ip(node.node)


def node_ready(node: api_pb2.Object) -> bool:
    return nodes.is_ready(node.node)


def _node_facts(node: api_pb2.Object) -> tuple[str, str, bool]:
    return node_ip(node), node.node.spec.pod_cidr or "", node_ready(node)


@dataclass
class SyncPlan:
    """Everything one sync needs, snapshotted from the informers on the event loop."""

    services: list[api_pb2.Object]
    endpoints: list[api_pb2.Object]
    peers: list[PeerNode]
    own_pod_cidr: str
    announce: set[str]


class ServiceProxy:
    """Runs until cancelled; `poke()` after any relevant change."""

    def __init__(self, *, node_name: str, services: Informer, endpoints: Informer,
                 nodes: Informer, proxier: Proxier | None, network: PodNetwork | None,
                 announcer: Announcer | None, min_interval: float = 1.0,
                 resync_interval: float = 30.0) -> None:
        self.node_name = node_name
        self.services, self.endpoints, self.nodes = services, endpoints, nodes
        self.proxier, self.network, self.announcer = proxier, network, announcer
        self.min_interval = min_interval
        self.resync_interval = resync_interval
        self._dirty = asyncio.Event()
        self._static_cidr: str | None = None
        self.syncs = 0
        # Told each rules sync's seconds and whether it succeeded (the agent's metrics).
        self.on_sync: Callable[[float, bool], None] | None = None
        for inf in (services, endpoints):
            inf.add_handler(lambda old, new: self.poke())
        nodes.add_handler(self._on_node)

    def _on_node(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        """Heartbeats rewrite every node's status each 10 s; only an address, podCIDR or
        readiness change matters here (routes and the LB announcer's election)."""
        if old is None or new is None or _node_facts(old) != _node_facts(new):
            self.poke()

    def poke(self) -> None:
        self._dirty.set()

    def plan(self) -> SyncPlan:
        nodes = self.nodes.list()
        own = next((n for n in nodes if n.node.metadata.name == self.node_name), None)
        ready = sorted(n.node.metadata.name for n in nodes if node_ready(n) and node_ip(n))
        announce: set[str] = set()
        services = self.services.list()
        for obj in services:
            svc = obj.service
            if svc.spec.type != "LoadBalancer":
                continue
            key = f"{svc.metadata.namespace}/{svc.metadata.name}"
            if elected_node(key, ready) == self.node_name:
                announce |= {i.ip for i in svc.status.load_balancer.ingress if i.ip}
        return SyncPlan(
            services=services, endpoints=self.endpoints.list(),
            peers=[PeerNode(n.node.metadata.name, node_ip(n), n.node.spec.pod_cidr or "")
                   for n in nodes],
            own_pod_cidr=(own.node.spec.pod_cidr or "") if own is not None else "",
            announce=announce)

    def apply(self, plan: SyncPlan) -> None:
        """One sync, blocking: network first (routes make endpoints reachable), then rules."""
        if self.network is not None:
            if self._static_cidr != plan.own_pod_cidr:
                self.network.ensure_static(plan.own_pod_cidr)
                self._static_cidr = plan.own_pod_cidr
            self.network.sync_routes(plan.peers)
            self.network.ensure_hairpin(plan.own_pod_cidr)
        if self.proxier is not None:
            ports, eps = desired_state((o.service for o in plan.services),
                                       (o.endpoints for o in plan.endpoints),
                                       node_name=self.node_name)
            started, ok = time.perf_counter(), False
            try:
                self.proxier.sync(ports, eps)
                ok = True
            finally:
                if self.on_sync is not None:
                    self.on_sync(time.perf_counter() - started, ok)
        if self.announcer is not None:
            self.announcer.sync(plan.announce)
        self.syncs += 1

    def cleanup(self) -> None:
        """Remove the rules, routes and addresses this node made (on agent shutdown)."""
        if self.proxier is not None:
            self.proxier.cleanup()
        if self.announcer is not None:
            self.announcer.cleanup()
        if self.network is not None:
            self.network.cleanup()

    async def run(self) -> None:
        for inf in (self.services, self.endpoints, self.nodes):
            await inf.wait_synced()
        last = 0.0
        self._dirty.set()
        while True:
            try:
                await asyncio.wait_for(self._dirty.wait(), timeout=self.resync_interval)
            except TimeoutError:
                self._static_cidr = None  # the periodic sync also repairs the static part
            wait = last + self.min_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._dirty.clear()
            last = time.monotonic()
            plan = self.plan()
            started = time.perf_counter()
            try:
                await asyncio.to_thread(self.apply, plan)
            except (IptablesError, CommandError) as e:
                log.warning("network sync failed: %s; retrying", e)
                self._static_cidr = None
                self._dirty.set()
            else:
                event(log, "synced service rules", v=2, services=len(plan.services),
                      endpoints=len(plan.endpoints), peers=len(plan.peers),
                      duration_ms=ms_since(started))
