"""`python -m kemu.dns` against a real apiserver, asked with the real `dig` over UDP and TCP."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.conftest import Cluster
from tests.integration.dns.conftest import UPSTREAM_IP, Dig, Kube, dns_proc
from tests.support import processes

pytestmark = pytest.mark.integration

TRANSPORTS = [pytest.param(False, id="udp"), pytest.param(True, id="tcp")]


@pytest.fixture(scope="module")
def ask(dig: str, dns: processes.Proc) -> Dig:
    return Dig(dig, dns.address)


@pytest.fixture(scope="module")
def objects(kube: Kube, ask: Dig) -> Iterator[dict[str, str]]:
    """A ClusterIP Service with named ports, a headless one with endpoints and a pod behind
    it, an ExternalName Service and a lone pod; waits until the server has seen them."""
    ns = kube.namespace
    web = kube.service("web", ports=[{"name": "http", "port": 80, "protocol": "TCP"},
                                     {"name": "metrics", "port": 9090, "protocol": "UDP"}])
    kube.service("db", clusterIP="None", ports=[{"name": "pg", "port": 5432}])
    kube.endpoints("db", [{"addresses": [{"ip": "10.244.1.5", "hostname": "db-0"},
                                         {"ip": "10.244.1.6"}],
                           "notReadyAddresses": [{"ip": "10.244.1.7"}],
                           "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}])
    kube.service("cold", clusterIP="None")
    kube.endpoints("cold", [{"notReadyAddresses": [{"ip": "10.244.1.8"}]}])
    kube.service("ext", type="ExternalName", externalName="example.org")
    kube.pod("hello", "10.244.0.7")
    deadline = time.monotonic() + 10
    while ask(f"10-244-0-7.{ns}.pod.cluster.local").status != "NOERROR":
        assert time.monotonic() < deadline, "the DNS server never saw the objects"
        time.sleep(0.1)
    yield {"ns": ns, "web_ip": web.spec.cluster_ip}


@pytest.mark.parametrize("tcp", TRANSPORTS)
def test_clusterip_a_and_srv(ask: Dig, objects: dict[str, str], tcp: bool) -> None:
    ns = objects["ns"]
    a = ask(f"web.{ns}.svc.cluster.local", "A", tcp=tcp)
    assert a.status == "NOERROR" and a.rdata("A") == [objects["web_ip"]]
    srv = ask(f"_http._tcp.web.{ns}.svc.cluster.local", "SRV", tcp=tcp)
    assert srv.rdata("SRV") == [f"0 100 80 web.{ns}.svc.cluster.local."]
    udp_port = ask(f"_metrics._udp.web.{ns}.svc.cluster.local", "SRV", tcp=tcp)
    assert udp_port.rdata("SRV") == [f"0 100 9090 web.{ns}.svc.cluster.local."]


@pytest.mark.parametrize("tcp", TRANSPORTS)
def test_case_insensitive(ask: Dig, objects: dict[str, str], tcp: bool) -> None:
    r = ask(f"WEB.{objects['ns'].upper()}.Svc.Cluster.Local", "A", tcp=tcp)
    assert r.rdata("A") == [objects["web_ip"]]


@pytest.mark.parametrize("tcp", TRANSPORTS)
def test_headless(ask: Dig, objects: dict[str, str], tcp: bool) -> None:
    ns = objects["ns"]
    assert ask(f"db.{ns}.svc.cluster.local", tcp=tcp).rdata("A") == ["10.244.1.5",
                                                                      "10.244.1.6"]
    assert ask(f"db-0.db.{ns}.svc.cluster.local", tcp=tcp).rdata("A") == ["10.244.1.5"]
    assert ask(f"10-244-1-6.db.{ns}.svc.cluster.local", tcp=tcp).rdata("A") == ["10.244.1.6"]
    srv = ask(f"_pg._tcp.db.{ns}.svc.cluster.local", "SRV", tcp=tcp)
    assert srv.rdata("SRV") == [f"0 100 5432 10-244-1-6.db.{ns}.svc.cluster.local.",
                                f"0 100 5432 db-0.db.{ns}.svc.cluster.local."]
    assert sorted(r for _, t, r in srv.additional if t == "A") == ["10.244.1.5",
                                                                     "10.244.1.6"]
    none_ready = ask(f"cold.{ns}.svc.cluster.local", tcp=tcp)
    assert none_ready.status == "NXDOMAIN"


@pytest.mark.parametrize("tcp", TRANSPORTS)
def test_ptr(ask: Dig, objects: dict[str, str], tcp: bool) -> None:
    ns = objects["ns"]
    svc_ptr = ask("-x", objects["web_ip"], tcp=tcp)
    assert svc_ptr.rdata("PTR") == [f"web.{ns}.svc.cluster.local."]
    assert ask("-x", "10.244.0.7", tcp=tcp).rdata("PTR") == [
        f"10-244-0-7.{ns}.pod.cluster.local."]
    assert ask("-x", "10.244.1.5", tcp=tcp).rdata("PTR") == [
        f"db-0.db.{ns}.svc.cluster.local."]


@pytest.mark.parametrize("tcp", TRANSPORTS)
def test_txt_cname_pod(ask: Dig, objects: dict[str, str], tcp: bool) -> None:
    ns = objects["ns"]
    assert ask("dns-version.cluster.local", "TXT", tcp=tcp).rdata("TXT") == ['"1.1.0"']
    cname = ask(f"ext.{ns}.svc.cluster.local", "CNAME", tcp=tcp)
    assert cname.rdata("CNAME") == ["example.org."]
    assert ask(f"10-244-0-7.{ns}.pod.cluster.local", tcp=tcp).rdata("A") == ["10.244.0.7"]


@pytest.mark.parametrize("tcp", TRANSPORTS)
def test_nxdomain_with_soa_and_wrong_type(ask: Dig, objects: dict[str, str],
                                          tcp: bool) -> None:
    ns = objects["ns"]
    nx = ask(f"nosuch.{ns}.svc.cluster.local", tcp=tcp)
    assert nx.status == "NXDOMAIN" and not nx.answers
    assert [t for _, t, _ in nx.authority] == ["SOA"]
    assert nx.authority[0][0] == "cluster.local."
    wrong = ask(f"web.{ns}.svc.cluster.local", "TXT", tcp=tcp)
    assert wrong.status == "NOERROR" and not wrong.answers
    assert [t for _, t, _ in wrong.authority] == ["SOA"]


@pytest.mark.parametrize("tcp", TRANSPORTS)
def test_forwarded_to_upstream(ask: Dig, tcp: bool) -> None:
    r = ask("outside.example.test", tcp=tcp)
    assert r.status == "NOERROR" and r.rdata("A") == [UPSTREAM_IP]
    assert ask("missing.example.test", tcp=tcp).status == "NXDOMAIN"


def test_update_propagates_within_a_second(ask: Dig, kube: Kube,
                                           objects: dict[str, str]) -> None:
    ns = objects["ns"]
    name = f"late.{ns}.svc.cluster.local"
    assert ask(name).status == "NXDOMAIN"
    created = kube.service("late", ports=[{"port": 80}])
    start = time.monotonic()
    while ask(name).rdata("A") != [created.spec.cluster_ip]:
        assert time.monotonic() - start < 1.0, "the new Service took over 1 s to appear"
        time.sleep(0.02)
    kube.client.delete("services", "late", kube.namespace)
    start = time.monotonic()
    while ask(name).status != "NXDOMAIN":
        assert time.monotonic() - start < 1.0, "the deleted Service took over 1 s to go"
        time.sleep(0.02)
    # endpoints change: a headless service gains its first ready address
    kube.endpoints("cold2", [{"addresses": [{"ip": "10.244.9.9"}]}])
    kube.service("cold2", clusterIP="None")
    start = time.monotonic()
    while ask(f"cold2.{ns}.svc.cluster.local").rdata("A") != ["10.244.9.9"]:
        assert time.monotonic() - start < 1.0, "the endpoints took over 1 s to appear"
        time.sleep(0.02)


def test_large_answer_truncated_over_udp_then_complete_over_tcp(
        ask: Dig, kube: Kube, objects: dict[str, str]) -> None:
    """120 endpoints do not fit a UDP reply: TC set, and dig's automatic TCP retry (as a
    resolver's) gets every address."""
    ips = [f"10.244.20.{i}" for i in range(1, 121)]
    kube.endpoints("many", [{"addresses": [{"ip": ip} for ip in ips]}])
    kube.service("many", clusterIP="None")
    name = f"many.{objects['ns']}.svc.cluster.local"
    deadline = time.monotonic() + 5
    while len(full := ask(name).rdata("A")) != len(ips):
        assert time.monotonic() < deadline, f"got {len(full)} addresses"
        time.sleep(0.05)
    assert full == sorted(ips)
    truncated = ask(name, "+ignore")  # +ignore: keep the truncated UDP reply
    assert truncated.status == "NOERROR" and "tc" in truncated.flags
    assert len(truncated.rdata("A")) < len(ips)
    assert "aa" in ask(name, tcp=True).flags and "tc" not in ask(name, tcp=True).flags


def test_servfail_quickly_without_upstream(cluster: Cluster, dig: str) -> None:
    proc = dns_proc(cluster.tmp, cluster.server, name="dns-noupstream")
    with processes.running(proc, check="tcp"):
        start = time.monotonic()
        assert Dig(dig, proc.address)("outside.example.test").status == "SERVFAIL"
        assert time.monotonic() - start < 1.0


def test_servfail_when_upstream_times_out(cluster: Cluster, dig: str) -> None:
    """An upstream that never answers (a bound UDP socket that reads nothing): SERVFAIL
    after the ~2 s forward timeout, before the client's own 5 s timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        proc = dns_proc(cluster.tmp, cluster.server, "--upstream", f"127.0.0.1:{port}",
                        name="dns-silent")
        with processes.running(proc, check="tcp"):
            start = time.monotonic()
            r = Dig(dig, proc.address)("outside.example.test", timeout=5)
            assert r.status == "SERVFAIL"
            assert 1.5 < time.monotonic() - start < 3.5


def test_bad_flags_one_line(cluster: Cluster) -> None:
    out = subprocess.run([processes.PYTHON, "-m", "kemu.dns", "--listen", "nope"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "kemu dns: error: --listen: expected ADDR:PORT, got 'nope'"]
