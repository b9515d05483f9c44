"""What the node lifecycle controller decides, as pure functions over typed objects.

Kept apart from the controller so that the arithmetic of Kubernetes' node lifecycle
controller and its NoExecute taint manager can be tested without an API: which conditions
go Unknown when the kubelet falls silent, which taints follow from the Ready condition, and
when a pod on a tainted node is due for eviction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp

from kemu.api.v1 import core_pb2, meta_pb2
from kemu.services.controllers.ds_nodes import NOT_READY, UNREACHABLE, tolerates

NO_EXECUTE, NO_SCHEDULE = "NoExecute", "NoSchedule"
# The conditions the kubelet owns and the controller marks Unknown when it stops posting.
KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
STOPPED_MESSAGE = "Kubelet stopped posting node status."
NEVER_MESSAGE = "Kubelet never posted node status."
_OWNED_TAINTS = {(k, e) for k in (NOT_READY, UNREACHABLE) for e in (NO_EXECUTE, NO_SCHEDULE)}


def timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromSeconds(int(seconds))
    return ts


def condition(status: core_pb2.NodeStatus | core_pb2.PodStatus, type_: str
              ) -> meta_pb2.Condition | None:
    return next((c for c in status.conditions if c.type == type_), None)


def ready_status(node: core_pb2.Node) -> str:
    """"True", "False", "Unknown", or "" when the kubelet never posted Ready."""
    c = condition(node.status, "Ready")
    return c.status if c is not None else ""


def mark_unknown(status: core_pb2.NodeStatus, now: float) -> bool:
    """Set the kubelet's conditions Unknown (NodeStatusUnknown, or NodeStatusNeverUpdated
    for one never posted), keeping lastHeartbeatTime: that is the kubelet's, and a change
    in it is what tells the controller the kubelet is back. True when something changed."""
    changed = False
    for type_ in KUBELET_CONDITIONS:
        c = condition(status, type_)
        if c is None:
            c = status.conditions.add(type=type_, status="Unknown",
                                      reason="NodeStatusNeverUpdated", message=NEVER_MESSAGE)
            c.last_transition_time.CopyFrom(timestamp(now))
            changed = True
        elif c.status != "Unknown":
            c.status, c.reason, c.message = "Unknown", "NodeStatusUnknown", STOPPED_MESSAGE
            c.last_transition_time.CopyFrom(timestamp(now))
            changed = True
    return changed


ADD, KEEP, REMOVE = "add", "keep", "remove"  # what to do with NoExecute taints


def wanted_taints(node: core_pb2.Node, now: float, *, no_execute: str = ADD
                  ) -> list[core_pb2.Taint] | None:
    """The node's taints with not-ready/unreachable following Ready (Unknown: unreachable,
    False: not-ready, both NoExecute and NoSchedule; True: neither); None if unchanged.
    Other taints are kept; a taint that stays keeps its timeAdded. `no_execute` KEEP adds
    no new NoExecute taint (a zone in partial disruption), REMOVE drops ours (the whole
    cluster is down, as when the control plane lost its network)."""
    ready = ready_status(node)
    key = UNREACHABLE if ready == "Unknown" else NOT_READY if ready == "False" else ""
    wanted = {(key, NO_EXECUTE), (key, NO_SCHEDULE)} if key else set()
    have = list(node.spec.taints)
    if no_execute == REMOVE or (no_execute == KEEP and (key, NO_EXECUTE) not in
                                {(t.key, t.effect) for t in have}):
        wanted.discard((key, NO_EXECUTE))
    kept = [t for t in have if (t.key, t.effect) not in _OWNED_TAINTS
            or (t.key, t.effect) in wanted]
    present = {(t.key, t.effect) for t in kept}
    for k, effect in sorted(wanted - present):
        t = core_pb2.Taint(key=k, effect=effect)
        if effect == NO_EXECUTE:
            t.time_added.CopyFrom(timestamp(now))
        kept.append(t)
    return None if kept == have else kept


def mark_pod_not_ready(status: core_pb2.PodStatus, now: float) -> bool:
    """Kubernetes' MarkPodsNotReady for one pod: its Ready condition goes False."""
    c = condition(status, "Ready")
    if c is None or c.status == "False":
        return False
    c.status = "False"
    c.reason = "NodeNotReady"
    c.message = "Node is not ready"
    c.last_transition_time.CopyFrom(timestamp(now))
    return True


NORMAL, PARTIAL, FULL = "Normal", "PartialDisruption", "FullDisruption"
ZONE_LABEL = "topology.kubernetes.io/zone"
UNHEALTHY_ZONE_THRESHOLD = 0.55  # --unhealthy-zone-threshold
LARGE_CLUSTER_THRESHOLD = 50  # --large-cluster-size-threshold


def zone_of(node: core_pb2.Node) -> str:
    return node.metadata.labels.get(ZONE_LABEL, "")


def zone_state(ready: Iterable[str]) -> str:
    """Kubernetes' ComputeZoneState over the Ready statuses of a zone's nodes: no node
    Ready is a full disruption; more than two not Ready and at least 55% a partial one."""
    states = list(ready)
    return zone_state_of(len(states), sum(1 for s in states if s != "True"))


def zone_state_of(size: int, not_ready: int) -> str:
    """`zone_state` from the counts alone: `size` nodes, `not_ready` of them not Ready."""
    if size and not_ready == size:
        return FULL
    if not_ready > 2 and not_ready / size >= UNHEALTHY_ZONE_THRESHOLD:
        return PARTIAL
    return NORMAL


class ZoneCensus:
    """How many nodes each zone has and how many are not Ready, kept up to date as nodes
    change, so that the disruption state of every zone costs a pass over the zones, not
    over the nodes. (Recounting every node for each node's decision made the controller
    quadratic: at 1,000 nodes renewing Leases it took three quarters of the controller
    manager's CPU, and its informers fell behind.)"""

    def __init__(self) -> None:
        self._of: dict[str, tuple[str, bool]] = {}  # node name -> (zone, ready)
        self._size: Counter[str] = Counter()
        self._not_ready: Counter[str] = Counter()

    def set(self, name: str, node: core_pb2.Node) -> None:
        """Count `node` (named `name`) as it is now."""
        entry = (zone_of(node), ready_status(node) == "True")
        old = self._of.get(name)
        if old == entry:
            return
        self.remove(name)
        self._of[name] = entry
        self._size[entry[0]] += 1
        self._not_ready[entry[0]] += not entry[1]

    def remove(self, name: str) -> None:
        old = self._of.pop(name, None)
        if old is None:
            return
        zone, ready = old
        self._size[zone] -= 1
        self._not_ready[zone] -= not ready
        if not self._size[zone]:
            del self._size[zone], self._not_ready[zone]

    def states(self) -> dict[str, str]:
        """Each zone's state (NORMAL, PARTIAL or FULL)."""
        return {z: zone_state_of(n, self._not_ready[z]) for z, n in self._size.items()}

    def sizes(self) -> dict[str, int]:
        return dict(self._size)


def no_execute_policy(zone: str, states: dict[str, str], sizes: dict[str, int]) -> str:
    """What taint-based eviction may do in `zone`: nothing anywhere when every zone is
    fully disrupted (Kubernetes then assumes the control plane lost its network, and
    evicting every pod would make it worse); no new NoExecute taints in a partially
    disrupted small zone (Kubernetes' eviction rate there is 0); otherwise as usual."""
    if states and all(s == FULL for s in states.values()):
        return REMOVE
    if states.get(zone) == PARTIAL and sizes.get(zone, 0) <= LARGE_CLUSTER_THRESHOLD:
        return KEEP
    return ADD


@dataclass(frozen=True)
class Eviction:
    """When a pod on a NoExecute-tainted node must go: `at` (epoch seconds), None for never."""

    at: float | None
    taint: str = ""


def _is_daemon(pod: core_pb2.Pod) -> bool:
    return any(r.controller and r.kind == "DaemonSet" for r in pod.metadata.owner_references)


def tolerations_for(pod: core_pb2.Pod, default_seconds: float
                    ) -> list[core_pb2.Toleration]:
    """The pod's tolerations, plus what Kubernetes adds to every pod: not-ready and
    unreachable NoExecute for `default_seconds` (the DefaultTolerationSeconds admission
    plugin, `--pod-eviction-timeout` here), forever for DaemonSet pods."""
    tols = list(pod.spec.tolerations)
    for key in (NOT_READY, UNREACHABLE):
        probe = core_pb2.Taint(key=key, effect=NO_EXECUTE)
        if any(tolerates(t, probe) for t in tols):
            continue
        tol = core_pb2.Toleration(key=key, operator="Exists", effect=NO_EXECUTE)
        if not _is_daemon(pod):
            tol.toleration_seconds = int(default_seconds)
        tols.append(tol)
    return tols


def eviction(pod: core_pb2.Pod, taints: Iterable[core_pb2.Taint], default_seconds: float,
             now: float, *, added_at: Callable[[core_pb2.Taint], float] | None = None
             ) -> Eviction:
    """The NoExecute taint manager for one pod: an untolerated NoExecute taint evicts now;
    otherwise the first toleration matching each taint gives it `tolerationSeconds` from
    the taint's timeAdded (unset: tolerated forever); the earliest wins. Counting from
    timeAdded rather than from when this process noticed keeps the deadline across a
    controller restart; `added_at` stands in for a taint without timeAdded."""
    tols = tolerations_for(pod, default_seconds)
    due: Eviction = Eviction(None)
    for taint in taints:
        if taint.effect != NO_EXECUTE:
            continue
        tol = next((t for t in tols if tolerates(t, taint)), None)
        if tol is None:
            return Eviction(now, taint.key)
        if not tol.HasField("toleration_seconds"):
            continue
        added = (taint.time_added.seconds if taint.HasField("time_added")
                 else added_at(taint) if added_at is not None else now)
        at = added + max(tol.toleration_seconds, 0)
        if due.at is None or at < due.at:
            due = Eviction(at, taint.key)
    return due
