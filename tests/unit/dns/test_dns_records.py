"""The zone function, table-driven: objects in, (rcode, answers, authority) out, no sockets."""

from __future__ import annotations

from typing import Any

import pytest
from dnslib import QTYPE, RCODE  # type: ignore[import-untyped]

from kemu.api.v1 import core_pb2, meta_pb2
from kemu.dns.records import Zone, dashed, normalize, reverse_name


def _meta(name: str, ns: str = "default") -> meta_pb2.ObjectMeta:
    return meta_pb2.ObjectMeta(name=name, namespace=ns)


def svc(name: str, ns: str = "default", *, cluster_ip: str = "", type: str = "ClusterIP",
        external_name: str = "", ports: tuple[tuple[str, str, int], ...] = (),
        publish_not_ready: bool = False) -> core_pb2.Service:
    spec = core_pb2.ServiceSpec(
        cluster_ip=cluster_ip, type=type, external_name=external_name,
        cluster_ips=[cluster_ip] if cluster_ip and cluster_ip != "None" else [],
        publish_not_ready_addresses=publish_not_ready,
        ports=[core_pb2.ServicePort(name=n, protocol=p, port=port) for n, p, port in ports])
    return core_pb2.Service(metadata=_meta(name, ns), spec=spec)


def eps(name: str, ns: str = "default", *, ready: tuple[tuple[str, str], ...] = (),
        not_ready: tuple[tuple[str, str], ...] = (),
        ports: tuple[tuple[str, str, int], ...] = ()) -> core_pb2.Endpoints:
    subset = core_pb2.EndpointSubset(
        addresses=[core_pb2.EndpointAddress(ip=ip, hostname=h) for ip, h in ready],
        not_ready_addresses=[core_pb2.EndpointAddress(ip=ip, hostname=h) for ip, h in not_ready],
        ports=[core_pb2.EndpointPort(name=n, protocol=p, port=port) for n, p, port in ports])
    return core_pb2.Endpoints(metadata=_meta(name, ns), subsets=[subset])


def pod(name: str, ip: str, ns: str = "default", *, hostname: str = "",
        subdomain: str = "") -> core_pb2.Pod:
    return core_pb2.Pod(metadata=_meta(name, ns),
                        spec=core_pb2.PodSpec(hostname=hostname, subdomain=subdomain),
                        status=core_pb2.PodStatus(pod_ip=ip))


SERVICES = [
    svc("web", cluster_ip="10.96.0.20", ports=(("http", "TCP", 80), ("", "TCP", 8080),
                                               ("dns", "UDP", 53))),
    svc("db", "prod", cluster_ip="None", ports=(("pg", "TCP", 5432),)),
    svc("empty", cluster_ip="None"),
    svc("warming", cluster_ip="None"),
    svc("published", cluster_ip="None", publish_not_ready=True),
    svc("ext", type="ExternalName", external_name="example.com"),
]
ENDPOINTS = [
    eps("db", "prod", ready=(("10.244.1.5", "db-0"), ("10.244.1.6", "")),
        not_ready=(("10.244.1.7", "db-2"),), ports=(("pg", "TCP", 5432),)),
    eps("empty"),
    eps("warming", not_ready=(("10.244.2.9", ""),)),
    eps("published", not_ready=(("10.244.2.10", ""),)),
]
PODS = [
    pod("hello", "10.244.0.7"),
    pod("db-0", "10.244.1.5", "prod", hostname="db-0", subdomain="db"),
    pod("lonely", "10.244.3.3", "prod", hostname="x", subdomain="nosuch"),
    pod("pending", ""),
]
ZONE = Zone.build(SERVICES, ENDPOINTS, PODS, serial=42)


def _rdata(rr: Any) -> str:
    return str(rr.rdata)


CASES = [
    # name, qtype, rcode, answers as "TYPE rdata" (sorted)
    pytest.param("web.default.svc.cluster.local", "A", "NOERROR", ["A 10.96.0.20"],
                 id="clusterip-a"),
    pytest.param("WEB.Default.SVC.cluster.LOCAL.", "A", "NOERROR", ["A 10.96.0.20"],
                 id="case-insensitive"),
    pytest.param("_http._tcp.web.default.svc.cluster.local", "SRV", "NOERROR",
                 ["SRV 0 100 80 web.default.svc.cluster.local."], id="clusterip-srv"),
    pytest.param("_dns._udp.web.default.svc.cluster.local", "SRV", "NOERROR",
                 ["SRV 0 100 53 web.default.svc.cluster.local."], id="clusterip-srv-udp"),
    pytest.param("20.0.96.10.in-addr.arpa", "PTR", "NOERROR",
                 ["PTR web.default.svc.cluster.local."], id="clusterip-ptr"),
    pytest.param("web.default.svc.cluster.local", "TXT", "NOERROR", [], id="wrong-type"),
    pytest.param("db.prod.svc.cluster.local", "A", "NOERROR",
                 ["A 10.244.1.5", "A 10.244.1.6"], id="headless-ready-only"),
    pytest.param("db-0.db.prod.svc.cluster.local", "A", "NOERROR", ["A 10.244.1.5"],
                 id="headless-endpoint-hostname"),
    pytest.param("10-244-1-6.db.prod.svc.cluster.local", "A", "NOERROR", ["A 10.244.1.6"],
                 id="headless-endpoint-dashed-ip"),
    pytest.param("db-2.db.prod.svc.cluster.local", "A", "NXDOMAIN", [],
                 id="headless-not-ready-absent"),
    pytest.param("_pg._tcp.db.prod.svc.cluster.local", "SRV", "NOERROR",
                 ["SRV 0 100 5432 10-244-1-6.db.prod.svc.cluster.local.",
                  "SRV 0 100 5432 db-0.db.prod.svc.cluster.local."], id="headless-srv"),
    pytest.param("5.1.244.10.in-addr.arpa", "PTR", "NOERROR",
                 ["PTR db-0.db.prod.svc.cluster.local."], id="headless-ptr"),
    pytest.param("empty.default.svc.cluster.local", "A", "NXDOMAIN", [],
                 id="headless-no-endpoints"),
    pytest.param("warming.default.svc.cluster.local", "A", "NXDOMAIN", [],
                 id="headless-only-not-ready"),
    pytest.param("published.default.svc.cluster.local", "A", "NOERROR", ["A 10.244.2.10"],
                 id="headless-publish-not-ready"),
    pytest.param("ext.default.svc.cluster.local", "A", "NOERROR", ["CNAME example.com."],
                 id="externalname-cname-for-a"),
    pytest.param("ext.default.svc.cluster.local", "CNAME", "NOERROR", ["CNAME example.com."],
                 id="externalname-cname"),
    pytest.param("10-244-0-7.default.pod.cluster.local", "A", "NOERROR", ["A 10.244.0.7"],
                 id="pod-a"),
    pytest.param("10-244-0-8.default.pod.cluster.local", "A", "NXDOMAIN", [],
                 id="pod-a-unknown-ip"),
    pytest.param("10-244-0-7.prod.pod.cluster.local", "A", "NXDOMAIN", [],
                 id="pod-a-wrong-namespace"),
    pytest.param("7.0.244.10.in-addr.arpa", "PTR", "NOERROR",
                 ["PTR 10-244-0-7.default.pod.cluster.local."], id="pod-ptr"),
    pytest.param("x.nosuch.prod.svc.cluster.local", "A", "NXDOMAIN", [],
                 id="pod-subdomain-without-service"),
    pytest.param("dns-version.cluster.local", "TXT", "NOERROR", ['TXT "1.1.0"'],
                 id="dns-version"),
    pytest.param("nope.default.svc.cluster.local", "A", "NXDOMAIN", [], id="nxdomain"),
    pytest.param("a.b.c.cluster.local", "AAAA", "NXDOMAIN", [], id="nxdomain-deep"),
    pytest.param("default.svc.cluster.local", "A", "NOERROR", [],
                 id="namespace-empty-non-terminal"),
    pytest.param("cluster.local", "SOA", "NOERROR",
                 ["SOA ns.dns.cluster.local. hostmaster.cluster.local. 42 7200 1800 86400 5"],
                 id="apex-soa"),
]


@pytest.mark.parametrize(("name", "qtype", "rcode", "answers"), CASES)
def test_resolve(name: str, qtype: str, rcode: str, answers: list[str]) -> None:
    answer = ZONE.resolve(name, getattr(QTYPE, qtype))
    assert answer is not None
    assert RCODE.get(answer.rcode) == rcode
    got = sorted(f"{QTYPE.get(rr.rtype)} {_rdata(rr)}" for rr in answer.answers)
    assert got == sorted(answers)
    assert all(rr.ttl == 5 for rr in answer.answers)
    if not answers:  # NXDOMAIN and NODATA both carry the SOA for negative caching
        assert [QTYPE.get(rr.rtype) for rr in answer.authority] == ["SOA"]


@pytest.mark.parametrize("name", [
    pytest.param("example.com", id="outside-domain"),
    pytest.param("9.9.9.9.in-addr.arpa", id="unknown-reverse"),
    pytest.param("local", id="parent-of-domain"),
])
def test_not_ours_is_forwarded(name: str) -> None:
    assert ZONE.resolve(name, QTYPE.A) is None


def test_custom_domain_and_ttl() -> None:
    zone = Zone.build(SERVICES, ENDPOINTS, PODS, domain="Kemu.Test.", ttl=30)
    answer = zone.resolve("web.default.svc.kemu.test", QTYPE.A)
    assert answer is not None and [rr.ttl for rr in answer.answers] == [30]
    assert zone.resolve("web.default.svc.cluster.local", QTYPE.A) is None


def test_pod_hostname_subdomain_without_endpoint_hostname() -> None:
    """A pod with hostname+subdomain matching a headless Service is named even when its
    endpoint carries no hostname (e.g. before the endpoints controller caught up)."""
    zone = Zone.build([svc("sub", cluster_ip="None")], [eps("sub")],
                      [pod("p", "10.244.5.5", hostname="host", subdomain="sub")])
    answer = zone.resolve("host.sub.default.svc.cluster.local", QTYPE.A)
    assert answer is not None and [str(rr.rdata) for rr in answer.answers] == ["10.244.5.5"]


def test_any_returns_every_type() -> None:
    answer = ZONE.resolve("web.default.svc.cluster.local", QTYPE.ANY)
    assert answer is not None and [QTYPE.get(rr.rtype) for rr in answer.answers] == ["A"]


def test_helpers() -> None:
    assert normalize("A.B.") == "a.b"
    assert dashed("10.1.2.3") == "10-1-2-3"
    assert reverse_name("10.96.0.10") == "10.0.96.10.in-addr.arpa"
    assert reverse_name("nope") is None


@pytest.mark.parametrize(("name", "glue"), [
    pytest.param("_http._tcp.web.default.svc.cluster.local", ["10.96.0.20"], id="clusterip"),
    pytest.param("_pg._tcp.db.prod.svc.cluster.local", ["10.244.1.5", "10.244.1.6"],
                 id="headless"),
])
def test_srv_carries_target_addresses(name: str, glue: list[str]) -> None:
    answer = ZONE.resolve(name, QTYPE.SRV)
    assert answer is not None
    assert sorted(str(rr.rdata) for rr in answer.additional) == glue
