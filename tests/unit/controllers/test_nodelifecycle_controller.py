"""The node lifecycle controller against the in-memory API and a hand-moved clock: a node
whose Lease stops being renewed goes Unknown after the grace period (not before, and not
while its lease moves), is tainted, its pods go not-ready and are evicted when their
toleration runs out (DaemonSet pods and forever-tolerating pods stay), events are recorded,
and the taints go when the agent is back."""

from __future__ import annotations

from typing import Any

from kemu.api import objects
from kemu.api.v1 import api_pb2
from kemu.client.errors import NotFound
from kemu.services.controllers import nodelifecycle as nlc
from kemu.services.controllers.ds_nodes import UNREACHABLE
from tests.unit.controllers.test_replicaset_fakeapi import FakeAPI, informers

T0 = 1_700_000_000.0


class ClusterFakeAPI(FakeAPI):
    """FakeAPI that also finds cluster-scoped objects (stored under their bare name)."""

    def _stored(self, resource: str, name: str, namespace: str) -> api_pb2.Object:
        key = f"{namespace}/{name}" if namespace else name
        try:
            return self.objects[(resource, key)]
        except KeyError:
            raise NotFound(f'{resource} "{name}" not found') from None


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def emit(self, kind: str, obj: Any, type_: str, reason: str, message: str, *,
             field_path: str = "") -> None:
        self.events.append((kind, obj.metadata.name, reason, message))


def node_obj(beat: float, name: str = "n1") -> api_pb2.Object:
    obj = api_pb2.Object()
    n = obj.node
    n.metadata.name = name
    c = n.status.conditions.add(type="Ready", status="True", reason="KubeletReady")
    c.last_heartbeat_time.FromSeconds(int(beat))
    return obj


def lease_obj(renew: float) -> api_pb2.Object:
    obj = api_pb2.Object()
    obj.lease.metadata.name, obj.lease.metadata.namespace = "n1", nlc.LEASE_NAMESPACE
    obj.lease.spec.renew_time.FromSeconds(int(renew))
    return obj


def pod_obj(name: str, *, seconds: int | None = None, forever: bool = False,
            daemon: bool = False) -> api_pb2.Object:
    obj = api_pb2.Object()
    p = obj.pod
    p.metadata.name, p.metadata.namespace = name, "ns"
    p.spec.node_name = "n1"
    p.spec.containers.add(name="c", image="x")
    if seconds is not None or forever:
        t = p.spec.tolerations.add(key=UNREACHABLE, operator="Exists", effect="NoExecute")
        if seconds is not None:
            t.toleration_seconds = seconds
    if daemon:
        p.metadata.owner_references.add(kind="DaemonSet", name="ds", uid="ds-uid",
                                        controller=True)
    p.status.phase = "Running"
    p.status.conditions.add(type="Ready", status="True")
    return obj


def setup(*, healthy_peer: bool = True
          ) -> tuple[ClusterFakeAPI, nlc.NodeLifecycleController, Clock, Recorder]:
    api = ClusterFakeAPI()
    infs = informers(api, *nlc.INFORMERS)
    clock, rec = Clock(), Recorder()
    ctrl = nlc.NodeLifecycleController(api, infs, node_monitor_grace_period=40,
                                       pod_eviction_timeout=300, clock=clock, recorder=rec)
    api.put(node_obj(T0))
    api.put(lease_obj(T0))
    if healthy_peer:  # one Ready node elsewhere: not a whole-cluster disruption
        api.put(node_obj(T0, "n2"))
    for p in (pod_obj("plain"), pod_obj("short", seconds=10), pod_obj("forever", forever=True),
              pod_obj("daemon", daemon=True)):
        api.put(p)
    return api, ctrl, clock, rec


def ready(api: FakeAPI) -> str:
    n = api.objects[("nodes", "n1")].node
    return next(c.status for c in n.status.conditions if c.type == "Ready")


def taints(api: FakeAPI) -> list[str]:
    return sorted(f"{t.key}:{t.effect}" for t in api.objects[("nodes", "n1")].node.spec.taints)


def pods_left(api: FakeAPI) -> list[str]:
    return sorted(objects.meta(o).name for (r, _), o in api.objects.items() if r == "pods")


async def test_silent_node_is_marked_tainted_and_drained() -> None:
    api, ctrl, clock, rec = setup()
    await ctrl.reconcile("n1")
    clock.now = T0 + 39
    await ctrl.reconcile("n1")
    assert ready(api) == "True" and taints(api) == []

    clock.now = T0 + 41
    await ctrl.reconcile("n1")
    assert ready(api) == "Unknown"
    assert taints(api) == [f"{UNREACHABLE}:NoExecute", f"{UNREACHABLE}:NoSchedule"]
    n = api.objects[("nodes", "n1")].node
    assert {c.type: c.status for c in n.status.conditions} == {
        "Ready": "Unknown", "MemoryPressure": "Unknown", "DiskPressure": "Unknown",
        "PIDPressure": "Unknown"}
    assert ("Node", "n1", "NodeNotReady", "Node n1 status is now: NodeNotReady") in rec.events
    for name in ("plain", "short", "forever", "daemon"):
        p = api.objects[("pods", f"ns/{name}")].pod
        assert [c.status for c in p.status.conditions if c.type == "Ready"] == ["False"], name
    assert pods_left(api) == ["daemon", "forever", "plain", "short"]

    clock.now = T0 + 52  # the taint was added at T0+41; "short" tolerates it 10 s
    await ctrl.reconcile("n1")
    assert pods_left(api) == ["daemon", "forever", "plain"]
    assert ("Pod", "short", "TaintManagerEviction", "Marking for deletion Pod ns/short") \
        in rec.events

    clock.now = T0 + 342  # the default 300 s
    await ctrl.reconcile("n1")
    assert pods_left(api) == ["daemon", "forever"]
    assert sum(1 for e in rec.events if e[2] == "NodeNotReady" and e[0] == "Node") == 1

    # The agent is back: it renews its lease and writes Ready itself.
    clock.now = T0 + 400
    back = api.objects[("nodes", "n1")]
    fresh = node_obj(T0 + 400)
    fresh.node.spec.CopyFrom(back.node.spec)
    fresh.node.metadata.resource_version = ""
    await api.update_status(fresh)
    await api.update(lease_obj(T0 + 400))
    await ctrl.reconcile("n1")
    assert ready(api) == "True" and taints(api) == []


async def test_renewed_lease_keeps_the_node_ready() -> None:
    api, ctrl, clock, _ = setup()
    await ctrl.reconcile("n1")
    for step in range(1, 6):
        clock.now = T0 + 30 * step
        await api.update(lease_obj(clock.now))
        await ctrl.reconcile("n1")
    assert ready(api) == "True" and taints(api) == []
    assert api.count("update_status", "nodes") == 0


async def test_restart_gives_a_full_grace_period_and_keeps_eviction_deadlines() -> None:
    api, ctrl, clock, rec = setup()
    await ctrl.reconcile("n1")
    clock.now = T0 + 41
    await ctrl.reconcile("n1")
    assert ready(api) == "Unknown"

    # A new controller (restarted): it has never seen the node alive, but the taint's
    # timeAdded still says when "plain" is due.
    infs = {r: api.informers[r] for r in nlc.INFORMERS}
    again = nlc.NodeLifecycleController(api, infs, node_monitor_grace_period=40,
                                        pod_eviction_timeout=300, clock=clock, recorder=rec)
    for o in api.list("pods"):
        again.on_pod(None, o)
    clock.now = T0 + 342
    await again.reconcile("n1")
    assert pods_left(api) == ["daemon", "forever"]
    assert taints(api) == [f"{UNREACHABLE}:NoExecute", f"{UNREACHABLE}:NoSchedule"]


async def test_whole_cluster_down_stops_evictions() -> None:
    api, ctrl, clock, _ = setup(healthy_peer=False)
    await ctrl.reconcile("n1")
    clock.now = T0 + 41
    await ctrl.reconcile("n1")
    assert ready(api) == "Unknown"
    assert taints(api) == [f"{UNREACHABLE}:NoSchedule"]  # no NoExecute: nothing evicted
    clock.now = T0 + 400
    await ctrl.reconcile("n1")
    assert pods_left(api) == ["daemon", "forever", "plain", "short"]

    api.put(node_obj(T0 + 400, "n2"))  # another node is Ready: evictions resume
    await ctrl.reconcile("n1")
    assert taints(api) == [f"{UNREACHABLE}:NoExecute", f"{UNREACHABLE}:NoSchedule"]
    clock.now = T0 + 411
    await ctrl.reconcile("n1")
    assert pods_left(api) == ["daemon", "forever", "plain"]
