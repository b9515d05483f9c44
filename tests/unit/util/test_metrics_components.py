"""The components' own series without processes: DNS wire parsing and labels, the agent's
pod start latency and per-phase counts, the scheduler's pending pods."""

from __future__ import annotations

import time

import grpc
import pytest
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord  # type: ignore[import-untyped]

from kemu.api.v1 import api_pb2
from kemu.dns.metrics import DnsMetrics, qtype_of
from kemu.nodeagent.metrics import AgentMetrics
from kemu.services.apiserver.requestmetrics import http_code
from kemu.services.scheduler.metrics import SchedulerMetrics
from kemu.services.scheduler.queue import SchedulingQueue


def _with_edns(name: str, qtype: str) -> bytes:
    q = DNSRecord.question(name, qtype)
    q.add_ar(EDNS0(udp_len=1232))
    return bytes(q.pack())


@pytest.mark.parametrize(("query", "want"), [
    pytest.param(DNSRecord.question("web.default.svc.cluster.local", "A").pack(), QTYPE.A,
                 id="A"),
    pytest.param(DNSRecord.question("_http._tcp.web.ns.svc.cluster.local", "SRV").pack(),
                 QTYPE.SRV, id="SRV"),
    pytest.param(DNSRecord.question(".", "NS").pack(), QTYPE.NS, id="root"),
    pytest.param(b"\x00" * 11, -1, id="short-header"),
    pytest.param(b"\x00" * 12 + b"\x03abc", -1, id="truncated-name"),
    pytest.param(b"\x00" * 12 + b"\xc0\x0c\x00\x01\x00\x01", -1, id="pointer"),
    pytest.param(DNSRecord.parse(DNSRecord.question("web.cluster.local", "TXT").pack())
                 .pack(), QTYPE.TXT, id="one-question-fast-path"),
    pytest.param(_with_edns("web.cluster.local", "SRV"), QTYPE.SRV, id="edns-walks-the-name"),
])
def test_qtype_of(query: bytes, want: int) -> None:
    assert qtype_of(query) == want


def test_dns_record_labels() -> None:
    m = DnsMetrics("dns://127.0.0.1:53")
    query = DNSRecord.question("nothere.cluster.local", "AAAA")
    reply = query.reply()
    reply.header.rcode = RCODE.NXDOMAIN
    for _ in range(2):
        m.record(query.pack(), reply.pack(), "udp", time.perf_counter())
    m.record(DNSRecord.question("x.cluster.local", "NAPTR").pack(), None, "tcp",
             time.perf_counter())
    base = {"server": "dns://127.0.0.1:53", "zone": "."}
    get = m.registry.get_sample_value
    assert get("coredns_dns_requests_total",
               {**base, "proto": "udp", "family": "1", "type": "AAAA"}) == 2
    assert get("coredns_dns_requests_total",
               {**base, "proto": "tcp", "family": "1", "type": "other"}) == 1
    assert get("coredns_dns_responses_total", {**base, "rcode": "NXDOMAIN"}) == 2
    assert get("coredns_dns_request_duration_seconds_count", {**base, "type": "other"}) == 1
    assert get("coredns_dns_request_duration_seconds_bucket",
               {**base, "type": "AAAA", "le": "+Inf"}) == 2  # cumulative up to +Inf
    assert get("coredns_dns_request_duration_seconds_bucket",
               {**base, "type": "AAAA", "le": "0.00025"}) in (0, 1, 2)


@pytest.mark.parametrize(("method", "reason", "code", "want"), [
    pytest.param("Create", None, None, "201", id="created"),
    pytest.param("Get", None, None, "200", id="ok"),
    pytest.param("AccessReview", None, None, "200", id="review-is-not-a-create"),
    pytest.param("Update", "Conflict", None, "409", id="conflict"),
    pytest.param("Create", "Invalid", None, "422", id="invalid"),
    pytest.param("Get", None, grpc.StatusCode.UNAUTHENTICATED, "401", id="bare-code"),
    pytest.param("Get", None, grpc.StatusCode.NOT_FOUND.value[0], "404", id="code-as-int"),
    pytest.param("Get", "SomethingNew", None, "500", id="unknown-reason"),
])
def test_apiserver_http_code(method: str, reason: str | None, code: object, want: str
                             ) -> None:
    assert http_code(method, reason, code) == want  # type: ignore[arg-type]


def _pod(uid: str, phase: str) -> api_pb2.Object:
    obj = api_pb2.Object()
    obj.pod.metadata.uid, obj.pod.metadata.name = uid, uid
    obj.pod.status.phase = phase
    return obj


def test_agent_pod_start_counts_pods_seen_before_running() -> None:
    m = AgentMetrics()
    pods = {"new": _pod("new", "Pending"), "adopted": _pod("adopted", "Running"),
            "gone": _pod("gone", "")}
    m.watch_pods(lambda: list(pods.values()))
    for obj in pods.values():
        m.on_pod(None, obj)
    running = _pod("new", "Running")
    m.on_pod(pods["new"], running)
    pods["new"] = running
    m.on_pod(pods.pop("gone"), None)
    get = m.registry.get_sample_value
    assert get("kubelet_pod_start_duration_seconds_count") == 1  # not the adopted one
    assert get("kubelet_pods", {"phase": "Running"}) == 2
    assert get("kubelet_pods", {"phase": "Pending"}) == 0
    assert get("kubelet_running_pods") == 2
    assert not m._first_seen  # nothing kept for pods running or gone
    m.proxy_synced(0.02, True)
    m.proxy_synced(0.03, False)
    assert get("kubeproxy_sync_proxy_rules_duration_seconds_count") == 2
    assert get("kubeproxy_sync_proxy_rules_last_timestamp_seconds") > 0


async def test_scheduler_pending_pods_per_queue() -> None:
    queue = SchedulingQueue(initial_backoff=30)
    m = SchedulerMetrics(queue, profile="default-scheduler")
    queue.add("ns/active")
    queue.mark_unschedulable("ns/parked")
    queue.mark_error("ns/failed")
    get = m.registry.get_sample_value
    assert get("scheduler_pending_pods", {"queue": "active"}) == 1
    assert get("scheduler_pending_pods", {"queue": "unschedulable"}) == 1
    assert get("scheduler_pending_pods", {"queue": "backoff"}) == 1
    m.attempt("scheduled", time.perf_counter())
    labels = {"result": "scheduled", "profile": "default-scheduler"}
    assert get("scheduler_schedule_attempts_total", labels) == 1
    assert get("scheduler_scheduling_attempt_duration_seconds_count", labels) == 1
    await queue.shut_down()
