"""The node IPAM controller's reconcile against a fake client and a hand-filled cache:
a stale cache never takes a second subnet, a recreated node frees the old one, Conflicts
are retried, exhaustion records one Event, and the manager fails loudly when a controller
dies."""

from __future__ import annotations

import pytest

from kemu.api.v1 import api_pb2
from kemu.client.errors import Conflict, NotFound
from kemu.client.informer import Informer, key_of
from kemu.services.controllers import manager as mgr
from kemu.services.controllers.cidrs import CIDRAllocator
from kemu.services.controllers.nodeipam import NodeIPAMController


def node(name: str, *, uid: str = "", cidr: str = "", rv: str = "1") -> api_pb2.Object:
    obj = api_pb2.Object()
    obj.node.metadata.name = name
    obj.node.metadata.uid = uid or f"uid-{name}"
    obj.node.metadata.resource_version = rv
    if cidr:
        obj.node.spec.pod_cidr = cidr
        obj.node.spec.pod_cidrs.append(cidr)
    return obj


class FakeClient:
    def __init__(self) -> None:
        self.nodes: dict[str, api_pb2.Object] = {}
        self.events: list[api_pb2.Object] = []
        self.updates: list[tuple[str, str]] = []
        self.conflicts = 0

    async def create(self, obj: api_pb2.Object) -> api_pb2.Object:
        self.events.append(obj)
        return obj

    async def get(self, resource: str, name: str, namespace: str = "") -> api_pb2.Object:
        if name not in self.nodes:
            raise NotFound(name)
        return self.nodes[name]

    async def update(self, obj: api_pb2.Object) -> api_pb2.Object:
        name = obj.node.metadata.name
        if name not in self.nodes:
            raise NotFound(name)
        stored = self.nodes[name].node.metadata.resource_version
        if self.conflicts or obj.node.metadata.resource_version != stored:
            self.conflicts = max(0, self.conflicts - 1)
            raise Conflict(name)
        self.updates.append((name, obj.node.spec.pod_cidr))
        fresh = api_pb2.Object()
        fresh.CopyFrom(obj)
        fresh.node.metadata.resource_version = str(int(stored) + 1)
        self.nodes[name] = fresh
        return fresh


def setup(cidr: str = "10.244.0.0/16", mask: int = 24
          ) -> tuple[NodeIPAMController, FakeClient, Informer]:
    client = FakeClient()
    inf = Informer(client, "nodes")  # type: ignore[arg-type]
    ctrl = NodeIPAMController(client, {"nodes": inf}, CIDRAllocator.parse(cidr, mask))
    return ctrl, client, inf


def add(client: FakeClient, inf: Informer, obj: api_pb2.Object) -> None:
    client.nodes[obj.node.metadata.name] = obj
    inf.store[key_of(obj)] = obj


async def test_stale_cache_writes_the_same_subnet_again() -> None:
    ctrl, client, inf = setup()
    add(client, inf, node("a"))
    await ctrl.reconcile("a")
    await ctrl.reconcile("a")  # the cache still shows no podCIDR
    assert client.updates == [("a", "10.244.0.0/24")]
    assert ctrl.allocator.used == 1


async def test_rebuild_then_allocate_skips_existing() -> None:
    ctrl, client, inf = setup()
    add(client, inf, node("a", cidr="10.244.0.0/24"))
    add(client, inf, node("b", cidr="10.244.1.0/24"))
    add(client, inf, node("c"))
    ctrl.rebuild()
    await ctrl.reconcile("c")
    assert client.updates == [("c", "10.244.2.0/24")]


async def test_deleted_and_recreated_nodes_release() -> None:
    ctrl, client, inf = setup()
    add(client, inf, node("a"))
    await ctrl.reconcile("a")
    add(client, inf, node("a", uid="other"))  # same name, new node, no podCIDR
    await ctrl.reconcile("a")
    assert ctrl.allocator.used == 1
    assert ctrl.assigned["a"] == ("other", "10.244.1.0/24")
    del inf.store["a"]
    await ctrl.reconcile("a")
    assert ctrl.allocator.used == 0 and not ctrl.assigned


async def test_conflict_is_retried() -> None:
    ctrl, client, inf = setup()
    add(client, inf, node("a"))
    client.conflicts = 2
    await ctrl.reconcile("a")
    assert client.updates == [("a", "10.244.0.0/24")]


async def test_someone_else_set_it_meanwhile() -> None:
    ctrl, client, inf = setup()
    add(client, inf, node("a"))
    client.conflicts = 1
    client.nodes["a"] = node("a", cidr="10.244.7.0/24", rv="2")
    await ctrl.reconcile("a")
    assert client.updates == []
    assert ctrl.assigned["a"] == ("uid-a", "10.244.7.0/24")
    assert ctrl.allocator.used == 1 and ctrl.allocator.in_use("10.244.7.0/24")


async def test_exhaustion_records_one_event_and_recovers() -> None:
    ctrl, client, inf = setup("10.250.0.0/24", 25)
    for name in ("a", "b", "c"):
        add(client, inf, node(name))
        await ctrl.reconcile(name)
    await ctrl.reconcile("c")
    assert [e.event.reason for e in client.events] == ["CIDRNotAvailable"]
    ev = client.events[0].event
    assert (ev.involved_object.kind, ev.involved_object.name, ev.type) == ("Node", "c",
                                                                           "Warning")
    del inf.store["a"]
    await ctrl.reconcile("a")
    assert "c" in ctrl.queue._dirty
    await ctrl.reconcile("c")
    assert client.updates[-1] == ("c", "10.250.0.0/25")
    await ctrl.queue.shut_down()


async def test_duplicate_pre_assigned_subnet_stays_used() -> None:
    ctrl, client, inf = setup()
    add(client, inf, node("a", cidr="10.244.0.0/24"))
    add(client, inf, node("b", cidr="10.244.0.0/24"))
    ctrl.rebuild()
    del inf.store["a"]
    await ctrl.reconcile("a")
    assert ctrl.allocator.in_use("10.244.0.0/24")


class Boom:
    async def run(self) -> None:
        raise ValueError("boom")


async def test_manager_fails_loudly_when_a_controller_dies() -> None:
    m = mgr.ControllerManager(mgr.ControllerManagerConfig(controllers=("nodeipam",)))
    m.informers = {}
    m.controllers = {"boom": Boom()}
    with pytest.raises(RuntimeError, match="controller boom died"):
        await m._run()
    await m.client.close()


@pytest.mark.parametrize(("kwargs", "needle"), [
    pytest.param({"apiserver": "nowhere"}, "HOST:PORT", id="apiserver"),
    pytest.param({"controllers": ("nope",)}, "unknown controller", id="unknown"),
    pytest.param({"controllers": ()}, "at least one", id="none"),
    pytest.param({"cluster_cidr": "10.0.0.0/33"}, "--cluster-cidr", id="cidr"),
    pytest.param({"node_cidr_mask_size": 12}, "between", id="mask"),
])
def test_config_rejects(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        mgr.ControllerManagerConfig(**kwargs)  # type: ignore[arg-type]
