"""The agent's networking loop without I/O: which node announces a LoadBalancer address,
which peers get routes, and which informer events wake a sync."""

from __future__ import annotations

from kemu.api.v1 import api_pb2
from kemu.client.informer import Informer, key_of
from kemu.nodeagent.lbannounce import elected_node
from kemu.nodeagent.serviceproxy import ServiceProxy


def node(name: str, ip: str, cidr: str, *, ready: bool = True, heartbeat: int = 0
         ) -> api_pb2.Object:
    obj = api_pb2.Object()
    n = obj.node
    n.metadata.name = name
    n.spec.pod_cidr = cidr
    n.status.addresses.add(type="InternalIP", address=ip)
    cond = n.status.conditions.add(type="Ready", status="True" if ready else "False")
    cond.last_heartbeat_time.seconds = heartbeat
    return obj


def lb_service(name: str, ip: str) -> api_pb2.Object:
    obj = api_pb2.Object()
    s = obj.service
    s.metadata.name, s.metadata.namespace = name, "default"
    s.spec.type = "LoadBalancer"
    s.spec.cluster_ip = "10.96.0.50"
    s.spec.ports.add(port=80)
    s.status.load_balancer.ingress.add(ip=ip)
    return obj


def proxy_for(me: str, nodes: list[api_pb2.Object], services: list[api_pb2.Object]
              ) -> ServiceProxy:
    infs = {r: Informer(None, r) for r in ("services", "endpoints", "nodes")}  # type: ignore[arg-type]
    for obj in nodes:
        infs["nodes"].store[key_of(obj)] = obj
    for obj in services:
        infs["services"].store[key_of(obj)] = obj
    return ServiceProxy(node_name=me, services=infs["services"], endpoints=infs["endpoints"],
                        nodes=infs["nodes"], proxier=None, network=None, announcer=None)


NODES = [node("a", "198.18.0.11", "10.244.0.0/24"), node("b", "198.18.0.12", "10.244.1.0/24"),
         node("c", "198.18.0.13", "10.244.2.0/24", ready=False)]


def test_exactly_one_ready_node_announces_each_address() -> None:
    services = [lb_service(f"s{i}", f"198.18.0.{200 + i}") for i in range(20)]
    plans = {me: proxy_for(me, NODES, services).plan() for me in ("a", "b", "c")}
    announced = [ip for p in plans.values() for ip in p.announce]
    assert sorted(announced) == sorted(f"198.18.0.{200 + i}" for i in range(20))
    assert plans["c"].announce == set()  # not Ready: never chosen
    assert plans["a"].announce and plans["b"].announce  # 20 services spread over both


def test_election_is_stable_and_moves_only_the_lost_nodes_addresses() -> None:
    keys = [f"default/s{i}" for i in range(50)]
    before = {k: elected_node(k, ["a", "b", "c"]) for k in keys}
    after = {k: elected_node(k, ["a", "b"]) for k in keys}
    assert before == {k: elected_node(k, ["c", "b", "a"]) for k in keys}  # order-free
    assert all(after[k] == before[k] for k in keys if before[k] != "c")


def test_plan_lists_peers_and_own_pod_cidr() -> None:
    plan = proxy_for("a", NODES, []).plan()
    assert plan.own_pod_cidr == "10.244.0.0/24"
    assert {(p.name, p.ip, p.pod_cidr) for p in plan.peers} == {
        ("a", "198.18.0.11", "10.244.0.0/24"), ("b", "198.18.0.12", "10.244.1.0/24"),
        ("c", "198.18.0.13", "10.244.2.0/24")}


def test_heartbeats_do_not_wake_a_sync_but_address_changes_do() -> None:
    proxy = proxy_for("a", NODES, [])
    proxy._dirty.clear()
    proxy._on_node(node("b", "198.18.0.12", "10.244.1.0/24"),
                   node("b", "198.18.0.12", "10.244.1.0/24", heartbeat=10))
    assert not proxy._dirty.is_set()
    proxy._on_node(node("b", "198.18.0.12", "10.244.1.0/24"),
                   node("b", "198.18.0.99", "10.244.1.0/24"))
    assert proxy._dirty.is_set()
