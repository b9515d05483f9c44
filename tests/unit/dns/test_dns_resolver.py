"""The wire layer without sockets: Resolver turns query bytes into reply bytes."""

from __future__ import annotations

import asyncio
import socket

import pytest
from dnslib import QTYPE, RCODE, DNSRecord  # type: ignore[import-untyped]

from kemu.api import objects
from kemu.api.v1 import core_pb2, meta_pb2
from kemu.dns.records import Zone
from kemu.dns.server import Resolver, _pod_view, serve


def _zone(ip: str = "10.96.0.20", n_endpoints: int = 0) -> Zone:
    svcs = [core_pb2.Service(metadata=meta_pb2.ObjectMeta(name="web", namespace="default"),
                             spec=core_pb2.ServiceSpec(cluster_ip=ip)),
            core_pb2.Service(metadata=meta_pb2.ObjectMeta(name="big", namespace="default"),
                             spec=core_pb2.ServiceSpec(cluster_ip="None"))]
    addrs = [core_pb2.EndpointAddress(ip=f"10.244.{i // 250}.{i % 250 + 1}")
             for i in range(n_endpoints)]
    eps = [core_pb2.Endpoints(metadata=meta_pb2.ObjectMeta(name="big", namespace="default"),
                              subsets=[core_pb2.EndpointSubset(addresses=addrs)])]
    return Zone.build(svcs, eps, [])


def _ask(resolver: Resolver, name: str, qtype: str = "A", tcp: bool = False) -> DNSRecord:
    q = DNSRecord.question(name, qtype)
    wire = asyncio.run(resolver.handle(q.pack(), tcp))
    assert wire is not None
    reply = DNSRecord.parse(wire)
    assert reply.header.id == q.header.id
    return reply


def test_answer_is_authoritative_and_cached_per_generation() -> None:
    state = {"gen": 0, "zone": _zone()}
    resolver = Resolver(lambda: state["zone"], None, lambda: state["gen"])  # type: ignore[arg-type,return-value]
    reply = _ask(resolver, "web.default.svc.cluster.local")
    assert reply.header.aa == 1 and [str(r.rdata) for r in reply.rr] == ["10.96.0.20"]
    again = _ask(resolver, "web.default.svc.cluster.local")  # from the byte cache
    assert [str(r.rdata) for r in again.rr] == ["10.96.0.20"]
    state["zone"], state["gen"] = _zone("10.96.0.21"), 1
    changed = _ask(resolver, "web.default.svc.cluster.local")
    assert [str(r.rdata) for r in changed.rr] == ["10.96.0.21"]


def test_nxdomain_has_soa_and_no_upstream_is_servfail() -> None:
    resolver = Resolver(_zone, None)
    nx = _ask(resolver, "nope.default.svc.cluster.local")
    assert nx.header.rcode == RCODE.NXDOMAIN and nx.auth[0].rtype == QTYPE.SOA
    assert _ask(resolver, "example.com").header.rcode == RCODE.SERVFAIL


def test_large_answer_truncates_over_udp_not_tcp() -> None:
    resolver = Resolver(lambda: _zone(n_endpoints=100), None)
    udp = _ask(resolver, "big.default.svc.cluster.local")
    assert udp.header.tc == 1 and not udp.rr
    tcp = _ask(resolver, "big.default.svc.cluster.local", tcp=True)
    assert tcp.header.tc == 0 and len(tcp.rr) == 100


def test_garbage_gets_formerr_or_nothing() -> None:
    resolver = Resolver(_zone, None)
    assert asyncio.run(resolver.handle(b"\x00\x01", False)) is None
    reply = asyncio.run(resolver.handle(b"\x12\x34" + b"\x01\x00" + b"\x00\x01" + b"\xff" * 10,
                                        False))
    assert reply is not None and reply[:2] == b"\x12\x34" and reply[3] & 0x0F == RCODE.FORMERR


def test_pod_status_churn_is_not_a_change() -> None:
    """Only the pod fields DNS depends on count: a condition flip must not rebuild."""
    a = core_pb2.Pod(metadata=meta_pb2.ObjectMeta(name="p", namespace="d"),
                     status=core_pb2.PodStatus(pod_ip="10.244.0.9", phase="Pending"))
    b = core_pb2.Pod()
    b.CopyFrom(a)
    b.status.phase = "Running"
    assert _pod_view(objects.wrap(a)) == _pod_view(objects.wrap(b))
    b.status.pod_ip = "10.244.0.10"
    assert _pod_view(objects.wrap(a)) != _pod_view(objects.wrap(b))
    assert _pod_view(None) is None


def test_non_query_opcode_is_notimp() -> None:
    q = DNSRecord.question("web.default.svc.cluster.local")
    q.header.opcode = 5  # UPDATE
    wire = asyncio.run(Resolver(_zone, None).handle(q.pack(), False))
    assert wire is not None and DNSRecord.parse(wire).header.rcode == RCODE.NOTIMP


async def test_unreachable_apiserver_is_a_clear_timeout() -> None:
    """Never listen with empty caches: that would answer NXDOMAIN for existing Services."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(TimeoutError, match="could not list services"):
        await serve(dead, "127.0.0.1", 0, sync_timeout=0.5)
