"""The load-balancer address controller against a fake client and a hand-filled cache:
lowest free address, loadBalancerIP honoured, addresses kept across restarts, never given
twice, freed on delete and on a type change, and `<pending>` when the pool is used up."""

from __future__ import annotations

import pytest

from kemu.api.v1 import api_pb2
from kemu.client.errors import NotFound
from kemu.client.informer import Informer, key_of
from kemu.services.controllers.lbipam import LoadBalancerIPController, PoolError, parse_pool


def svc(name: str, type_: str = "LoadBalancer", *, ip: str = "", want: str = ""
        ) -> api_pb2.Object:
    obj = api_pb2.Object()
    s = obj.service
    s.metadata.name, s.metadata.namespace = name, "default"
    s.spec.type = type_
    if want:
        s.spec.load_balancer_ip = want
    if ip:
        s.status.load_balancer.ingress.add(ip=ip)
    return obj


class FakeClient:
    def __init__(self) -> None:
        self.services: dict[str, api_pb2.Object] = {}
        self.writes: list[tuple[str, list[str]]] = []

    async def get(self, resource: str, name: str, namespace: str = "") -> api_pb2.Object:
        if name not in self.services:
            raise NotFound(name)
        copy = api_pb2.Object()
        copy.CopyFrom(self.services[name])
        return copy

    async def update_status(self, obj: api_pb2.Object) -> api_pb2.Object:
        self.services[obj.service.metadata.name] = obj
        self.writes.append((obj.service.metadata.name,
                            [i.ip for i in obj.service.status.load_balancer.ingress]))
        return obj


def setup(pool: str = "198.18.9.10-198.18.9.12"
          ) -> tuple[LoadBalancerIPController, FakeClient, Informer]:
    client = FakeClient()
    inf = Informer(client, "services")  # type: ignore[arg-type]
    return LoadBalancerIPController(client, {"services": inf}, parse_pool(pool)), client, inf


def put(client: FakeClient, inf: Informer, obj: api_pb2.Object) -> None:
    client.services[obj.service.metadata.name] = obj
    inf.store[key_of(obj)] = obj


def test_pool_syntax() -> None:
    assert parse_pool("198.18.9.0/30") == ["198.18.9.1", "198.18.9.2"]
    assert parse_pool("198.18.9.7/32") == ["198.18.9.7"]
    assert parse_pool("10.0.0.254-10.0.1.1") == ["10.0.0.254", "10.0.0.255", "10.0.1.0",
                                                   "10.0.1.1"]
    for bad in ("nope", "10.0.0.9-10.0.0.1", "10.0.0.1-x"):
        with pytest.raises(PoolError, match="--load-balancer-pool"):
            parse_pool(bad)


async def test_lowest_free_then_requested_then_exhausted() -> None:
    ctrl, client, inf = setup()
    put(client, inf, svc("a"))
    put(client, inf, svc("b", want="198.18.9.12"))
    put(client, inf, svc("c"))
    put(client, inf, svc("d"))
    put(client, inf, svc("plain", "ClusterIP"))
    for name in ("a", "b", "c", "d", "plain"):
        await ctrl.reconcile(f"default/{name}")
    assert client.writes == [("a", ["198.18.9.10"]), ("b", ["198.18.9.12"]),
                             ("c", ["198.18.9.11"])]
    assert "default/d" not in ctrl.owner.values()  # pending until an address frees up


async def test_restart_keeps_addresses_and_never_doubles() -> None:
    ctrl, client, inf = setup()
    put(client, inf, svc("a", ip="198.18.9.11"))
    put(client, inf, svc("b"))
    ctrl.rebuild()
    await ctrl.reconcile("default/b")
    await ctrl.reconcile("default/a")
    assert client.writes == [("b", ["198.18.9.10"])]  # a keeps its .11, no write


async def test_delete_and_type_change_free_the_address() -> None:
    ctrl, client, inf = setup("198.18.9.10/32")
    put(client, inf, svc("a"))
    await ctrl.reconcile("default/a")
    put(client, inf, svc("b"))
    await ctrl.reconcile("default/b")
    assert client.writes == [("a", ["198.18.9.10"])]
    # a becomes a ClusterIP Service: its status is cleared and b gets the address.
    changed = await client.get("services", "a")
    changed.service.spec.type = "ClusterIP"
    put(client, inf, changed)
    await ctrl.reconcile("default/a")
    await ctrl.reconcile("default/b")
    assert client.writes[1:] == [("a", []), ("b", ["198.18.9.10"])]
    # b deleted: the address is free again.
    del inf.store["default/b"]
    await ctrl.reconcile("default/b")
    assert ctrl.owner == {}
