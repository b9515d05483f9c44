"""`kemu dns` killed with -9 and started again on the same port answers again, from a
fresh list: a Service made while it was down resolves too. Queries are dnslib's, over UDP
and TCP on loopback; the time from the restart to the first answer is printed."""

from __future__ import annotations

import time

import pytest
from dnslib import QTYPE, DNSRecord  # type: ignore[import-untyped]

from kemu.api import manifest
from kemu.client import Client
from tests.conftest import Cluster
from tests.support import processes

pytestmark = pytest.mark.integration


def dns(cluster: Cluster, port: int, name: str) -> processes.Proc:
    address = f"127.0.0.1:{port}"
    return processes.Proc(name, [processes.PYTHON, "-m", "kemu.dns", "--apiserver",
                                 cluster.server, "--listen", address],
                          cluster.tmp / f"{name}.log", address)


def service(client: Client, ns: str, name: str) -> str:
    obj = client.create(manifest.from_dict({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}}))
    return str(obj.service.spec.cluster_ip)


def a_record(port: int, qname: str, *, tcp: bool = False) -> list[str]:
    """The A answers for `qname`, [] on NXDOMAIN or no reply within a second."""
    try:
        raw = DNSRecord.question(qname, "A").send("127.0.0.1", port, tcp=tcp, timeout=1)
    except OSError:
        return []
    reply = DNSRecord.parse(raw)
    return sorted(str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A)


def test_dns_answers_again_after_kill9(cluster: Cluster) -> None:
    port = processes.free_port()
    with Client(cluster.server, timeout=10) as client:
        client.create(manifest.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": "dnsha"}}))
        before_ip = service(client, "dnsha", "before")
        before = "before.dnsha.svc.cluster.local"
        first = dns(cluster, port, "dns-1")
        first.start().wait_ready(check="tcp")
        try:
            processes.wait_for(lambda: a_record(port, before) == [before_ip], 10,
                               "the first server to answer")
            first.kill9()
            assert a_record(port, before) == [], "nothing answers while it is down"
            during_ip = service(client, "dnsha", "during")

            second = dns(cluster, port, "dns-2")
            restarted = time.monotonic()
            second.start()
            try:
                processes.wait_for(lambda: a_record(port, before) == [before_ip], 20,
                                   "the restarted server to answer")
                answered = time.monotonic() - restarted
                print(f"\ndns: kill -9, restart -> first answer after {answered:.2f}s")
                during = "during.dnsha.svc.cluster.local"
                assert a_record(port, during) == [during_ip]
                assert a_record(port, during, tcp=True) == [during_ip]
                assert second.alive(), second.tail()
            finally:
                second.stop()
        finally:
            first.stop()
