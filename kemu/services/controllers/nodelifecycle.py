"""The node lifecycle controller: notice nodes whose agent fell silent, and move their pods.

As kube-controller-manager's node lifecycle controller does, a node is alive while this
controller keeps *observing* change: its Lease in kube-node-lease being renewed, or the
Ready condition's lastHeartbeatTime moving. The time of the last change seen is taken from
this controller's clock, not from the timestamps the agent wrote (clocks may differ), and
a node seen for the first time (also after a restart of this controller) gets a full grace
period. When nothing changed for `node_monitor_grace_period`:

- the kubelet's conditions (Ready, MemoryPressure, DiskPressure, PIDPressure) become
  Unknown, reason NodeStatusUnknown, "Kubelet stopped posting node status.", and a
  NodeNotReady event is recorded;
- the node is tainted node.kubernetes.io/unreachable with NoExecute and NoSchedule (Ready
  False from the agent gives node.kubernetes.io/not-ready instead), so nothing new lands
  there;
- its pods' Ready condition goes False, so Services stop sending them traffic;
- the NoExecute taint manager deletes each pod once its toleration runs out: every pod
  tolerates not-ready/unreachable for `pod_eviction_timeout` unless it says otherwise
  (Kubernetes' DefaultTolerationSeconds), DaemonSet pods forever; the deadline counts from
  the taint's timeAdded, so it survives a restart. Their controllers replace them on other
  nodes; the agent, when it comes back, finishes the deletions and removes the containers.

When the agent is back it writes Ready itself; the taints then follow Ready away.

As in Kubernetes, evictions stop when every zone (label topology.kubernetes.io/zone) has no
Ready node: that looks like the control plane losing its network rather than every node
dying, so the NoExecute taints are removed and pods stay (a one-node cluster whose agent
stops keeps its pods). A small zone with more than two and at least 55% of its nodes not
Ready gets no new NoExecute taints (Kubernetes' eviction rate there is 0). The eviction
rate limit itself (0.1 nodes/s) is not modelled: nodes are tainted when found silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from kemu.api.v1 import api_pb2, core_pb2
from kemu.client.errors import ClientError, Conflict, NotFound
from kemu.client.events import NORMAL, WARNING, EventRecorder, EventWriter, ObjectRecorder
from kemu.client.informer import Informer
from kemu.client.workqueue import WorkQueue, run_workers
from kemu.services.controllers import node_health as health

log = logging.getLogger("kemu.controllers.nodelifecycle")

NAME = "nodelifecycle"
INFORMERS = ("nodes", "leases", "pods")
COMPONENT = "node-controller"
LEASE_NAMESPACE = "kube-node-lease"
NODE_MONITOR_GRACE_PERIOD = 40.0  # kube-controller-manager's --node-monitor-grace-period
POD_EVICTION_TIMEOUT = 300.0  # the default tolerationSeconds for not-ready/unreachable
NODE_MONITOR_PERIOD = 5.0  # --node-monitor-period


class NodeLifecycleClient(EventWriter, Protocol):
    """The API calls the controller makes (AsyncClient has them)."""

    async def get(self, resource: str, name: str, namespace: str = "") -> api_pb2.Object: ...
    async def update_status(self, obj: api_pb2.Object) -> api_pb2.Object: ...
    async def delete(self, resource: str, name: str, namespace: str = "", *,
                     grace_period_seconds: int | None = None, uid: str = "",
                     propagation_policy: int = api_pb2.PROPAGATION_POLICY_UNSPECIFIED
                     ) -> api_pb2.DeleteResponse: ...


Stamp = tuple[int, int] | None


@dataclass
class Probe:
    """The last sign of life seen from one node, and when (this controller's clock)."""

    uid: str
    at: float
    renew: Stamp
    heartbeat: Stamp


def _stamp(msg: object, field: str) -> Stamp:
    if msg is None or not msg.HasField(field):  # type: ignore[attr-defined]
        return None
    ts = getattr(msg, field)
    return (ts.seconds, ts.nanos)


class NodeLifecycleController:
    """Marks silent nodes Unknown and tainted, and evicts their pods when due."""

    def __init__(self, client: NodeLifecycleClient, informers: Mapping[str, Informer], *,
                 workers: int = 4,
                 node_monitor_grace_period: float = NODE_MONITOR_GRACE_PERIOD,
                 pod_eviction_timeout: float = POD_EVICTION_TIMEOUT,
                 node_monitor_period: float = NODE_MONITOR_PERIOD,
                 clock: Callable[[], float] = time.time,
                 recorder: ObjectRecorder | None = None) -> None:
        self.client = client
        self.nodes = informers["nodes"]
        self.leases = informers["leases"]
        self.pods = informers["pods"]
        self.workers = workers
        self.grace = node_monitor_grace_period
        self.eviction_timeout = pod_eviction_timeout
        self.period = node_monitor_period
        self.clock = clock
        self._own_recorder = recorder is None
        self.recorder: ObjectRecorder = recorder or EventRecorder(client, COMPONENT)
        self.queue: WorkQueue[str] = WorkQueue()
        self.probes: dict[str, Probe] = {}
        self.pods_on: dict[str, set[str]] = {}  # node name -> pod keys bound there
        self._taint_seen: dict[tuple[str, str, str], float] = {}  # no timeAdded: first seen
        # zone -> NoExecute policy last logged: one line when a zone's changes, as
        # Kubernetes logs a zone's state, not one for each of its nodes
        self._last_policy: dict[str, str] = {}
        self.census = health.ZoneCensus()  # Ready nodes by zone, for disruption handling
        for obj in self.nodes.list():  # informers already synced: on_node saw none of them
            self.census.set(obj.node.metadata.name, obj.node)
        self.nodes.add_handler(self.on_node)
        self.leases.add_handler(self.on_lease)
        self.pods.add_handler(self.on_pod)

    # ---- watch handlers ----------------------------------------------------------------

    def on_node(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        obj = new if new is not None else old
        if obj is None:
            return
        name = obj.node.metadata.name
        if new is not None:
            self.census.set(name, new.node)
            self.observe(name)
        else:
            self.census.remove(name)
        self.queue.add(name)

    def on_lease(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        obj = new if new is not None else old
        if obj is None or obj.lease.metadata.namespace != LEASE_NAMESPACE:
            return
        name = obj.lease.metadata.name
        if self.nodes.get(name) is not None:
            self.observe(name)
            self.queue.add(name)

    def on_pod(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        for obj, present in ((old, False), (new, True)):
            if obj is None or not obj.pod.spec.node_name:
                continue
            key = f"{obj.pod.metadata.namespace}/{obj.pod.metadata.name}"
            on = self.pods_on.setdefault(obj.pod.spec.node_name, set())
            if present:
                on.add(key)
            else:
                on.discard(key)
        if new is not None and new.pod.spec.node_name:
            node = self.nodes.get(new.pod.spec.node_name)
            if node is not None and any(t.effect == health.NO_EXECUTE
                                        for t in node.node.spec.taints):
                self.queue.add(new.pod.spec.node_name)

    def observe(self, name: str) -> Probe | None:
        """Note any sign of life of node `name` (lease renewed, Ready heartbeat moved)."""
        obj = self.nodes.get(name)
        if obj is None:
            self.probes.pop(name, None)
            return None
        lease = self.leases.get(f"{LEASE_NAMESPACE}/{name}")
        renew = _stamp(lease.lease.spec if lease is not None else None, "renew_time")
        ready = health.condition(obj.node.status, "Ready")
        beat = _stamp(ready, "last_heartbeat_time")
        now = self.clock()
        p = self.probes.get(name)
        if p is None or p.uid != obj.node.metadata.uid:
            p = self.probes[name] = Probe(obj.node.metadata.uid, now, renew, beat)
        elif (renew, beat) != (p.renew, p.heartbeat):
            p.at, p.renew, p.heartbeat = now, renew, beat
        return p

    # ---- running -----------------------------------------------------------------------

    async def run(self) -> None:
        for inf in (self.nodes, self.leases, self.pods):
            await inf.synced.wait()
        for obj in self.pods.list():
            self.on_pod(None, obj)
        for obj in self.nodes.list():
            self.on_node(None, obj)
        if self._own_recorder and isinstance(self.recorder, EventRecorder):
            self.recorder.start()
        monitor = asyncio.create_task(self._monitor(), name="node-monitor")
        try:
            await run_workers(self.queue, self.reconcile, self.workers,
                              on_error=self._on_error)
        finally:
            monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await monitor
            if self._own_recorder and isinstance(self.recorder, EventRecorder):
                await self.recorder.stop()

    async def _monitor(self) -> None:
        """Look at every node each period, as monitorNodeHealth does (the exact deadlines
        are also queued; this is the safety net)."""
        while True:
            await asyncio.sleep(self.period)
            for obj in self.nodes.list():
                self.queue.add(obj.node.metadata.name)

    def _on_error(self, name: str, e: Exception) -> None:
        message = e.message if isinstance(e, ClientError) else repr(e)
        log.warning("node=%s lifecycle sync failed, retrying requeues=%d: %s", name,
                    self.queue.num_requeues(name), message)

    # ---- reconcile ---------------------------------------------------------------------

    async def reconcile(self, name: str) -> None:
        """Health, taints, pod readiness and due evictions for node `name`."""
        probe = self.observe(name)
        obj = self.nodes.get(name)
        if obj is None or probe is None:
            self.pods_on.pop(name, None)
            self.census.remove(name)
            self._taint_seen = {k: v for k, v in self._taint_seen.items() if k[0] != name}
            return
        node = obj.node
        now = self.clock()
        silent = now - probe.at
        if silent > self.grace:
            node = await self._mark_unknown(node, silent) or node
        else:
            self.queue.add_after(name, self.grace - silent + 0.05)
        policy = self._no_execute_policy(node)
        node = await self._sync_taints(node, policy) or node
        if health.ready_status(node) == "Unknown":
            await self._mark_pods_not_ready(name)
        if policy != health.REMOVE:
            await self._evict_due(node)

    def _no_execute_policy(self, node: core_pb2.Node) -> str:
        """Kubernetes' disruption handling, from the Ready statuses in the cache."""
        self.census.set(node.metadata.name, node)  # it may be newer than the cache's
        states, zone = self.census.states(), health.zone_of(node)
        policy = health.no_execute_policy(zone, states, self.census.sizes())
        if policy != self._last_policy.get(zone, health.ADD):
            log.warning("zone=%r taint-based eviction %s (zones: %s)", zone,
                        {health.REMOVE: "stopped: every zone is fully disrupted",
                         health.KEEP: "paused: the zone is partially disrupted",
                         health.ADD: "resumed"}[policy],
                        ", ".join(f"{z or '-'}={s}" for z, s in sorted(states.items())))
        self._last_policy[zone] = policy
        return policy

    async def _mark_unknown(self, node: core_pb2.Node, silent: float) -> core_pb2.Node | None:
        name = node.metadata.name
        if all(c is not None and c.status == "Unknown"
               for c in (health.condition(node.status, t) for t in health.KUBELET_CONDITIONS)):
            return None
        live = (await self.client.get("nodes", name)).node
        beat = _stamp(health.condition(live.status, "Ready"), "last_heartbeat_time")
        probe = self.probes.get(name)
        if probe is not None and beat != probe.heartbeat:
            probe.at, probe.heartbeat = self.clock(), beat  # it posted just now
            return None
        was_ready = health.ready_status(live)
        if not health.mark_unknown(live.status, self.clock()):
            return None
        written = (await self.client.update_status(api_pb2.Object(node=live))).node
        log.info("node=%s silent_s=%.1f conditions Unknown (Ready was %s)", name, silent,
                 was_ready or "never posted")
        if was_ready != "Unknown":
            self.recorder.emit("Node", written, NORMAL, "NodeNotReady",
                               f"Node {name} status is now: NodeNotReady")
        return written

    async def _sync_taints(self, node: core_pb2.Node, policy: str) -> core_pb2.Node | None:
        if health.wanted_taints(node, self.clock(), no_execute=policy) is None:
            return None
        for _attempt in range(5):
            live = (await self.client.get("nodes", node.metadata.name)).node
            taints = health.wanted_taints(live, self.clock(), no_execute=policy)
            if taints is None:
                return live
            del live.spec.taints[:]
            live.spec.taints.extend(taints)
            try:
                written = (await self.client.update(api_pb2.Object(node=live))).node
            except Conflict:
                continue
            log.info("node=%s ready=%s taints=%s", node.metadata.name,
                     health.ready_status(written) or "-",
                     ",".join(f"{t.key}:{t.effect}" for t in written.spec.taints) or "-")
            return written
        raise Conflict(f"node {node.metadata.name} kept changing")

    def _pods(self, name: str) -> list[core_pb2.Pod]:
        out = []
        for key in sorted(self.pods_on.get(name, ())):
            obj = self.pods.get(key)
            if obj is not None and obj.pod.spec.node_name == name:
                out.append(obj.pod)
        return out

    async def _mark_pods_not_ready(self, name: str) -> None:
        for pod in self._pods(name):
            if pod.metadata.HasField("deletion_timestamp"):
                continue
            fresh = core_pb2.Pod()
            fresh.CopyFrom(pod)
            if not health.mark_pod_not_ready(fresh.status, self.clock()):
                continue
            try:
                await self.client.update_status(api_pb2.Object(pod=fresh))
            except (NotFound, Conflict):
                continue  # gone, or changed: the next pass sees the new version
            self.recorder.emit("Pod", pod, WARNING, "NodeNotReady", "Node is not ready")
            log.info("pod=%s/%s on node=%s marked not ready", pod.metadata.namespace,
                     pod.metadata.name, name)

    def _added_at(self, node: str) -> Callable[[core_pb2.Taint], float]:
        def added(taint: core_pb2.Taint) -> float:
            return self._taint_seen.setdefault((node, taint.key, taint.effect), self.clock())
        return added

    async def _evict_due(self, node: core_pb2.Node) -> None:
        name = node.metadata.name
        taints = [t for t in node.spec.taints if t.effect == health.NO_EXECUTE]
        if not taints:
            return
        now = self.clock()
        next_due: float | None = None
        for pod in self._pods(name):
            if pod.metadata.HasField("deletion_timestamp"):
                continue
            due = health.eviction(pod, taints, self.eviction_timeout, now,
                                  added_at=self._added_at(name))
            if due.at is None:
                continue
            if due.at > now:
                next_due = due.at if next_due is None else min(next_due, due.at)
                continue
            try:
                await self.client.delete("pods", pod.metadata.name, pod.metadata.namespace,
                                         uid=pod.metadata.uid)
            except (NotFound, Conflict):
                continue
            self.recorder.emit("Pod", pod, NORMAL, "TaintManagerEviction",
                               f"Marking for deletion Pod {pod.metadata.namespace}/"
                               f"{pod.metadata.name}")
            log.info("pod=%s/%s evicted from node=%s taint=%s", pod.metadata.namespace,
                     pod.metadata.name, name, due.taint)
        if next_due is not None:
            self.queue.add_after(name, next_due - now + 0.05)
