"""CoreDNS's series for the cluster DNS: requests by protocol and type, responses by rcode,
and request latency by type.

They are read from the wire bytes (the question's type after its name; the reply's rcode
in its fourth byte), and kept in plain loop-only counters (kemu.util.metrics' LoopCounter
and LoopHistogram: the DNS answers on one event loop, so no locks), built into Prometheus
series only when scraped: a cached answer pays about two microseconds for its metrics.
Series are made once per protocol, type and rcode. Types outside CoreDNS's monitored set
count as `other`, as CoreDNS counts them.
"""

from __future__ import annotations

import time

from dnslib import QTYPE, RCODE  # type: ignore[import-untyped]
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from kemu.util.metrics import (
    CallbackCollector,
    LoopCounter,
    LoopHistogram,
    LoopHistogramChild,
    new_registry,
)

MONITORED_TYPES = frozenset(("A", "AAAA", "MX", "SOA", "CNAME", "PTR", "TXT", "NS", "SRV",
                             "DS", "DNSKEY", "RRSIG", "NSEC", "NSEC3", "HTTPS", "IXFR",
                             "AXFR", "ANY"))
# CoreDNS's: exponential from 0.25 ms, factor 2, 16 buckets (to about 8 s).
DURATION_BUCKETS = tuple(0.00025 * 2 ** i for i in range(16))


def qtype_of(query: bytes) -> int:
    """The QTYPE of a query's first question, -1 if the message is too short or odd."""
    n = len(query)
    if n > 16 and query[4:12] == b"\x00\x01\x00\x00\x00\x00\x00\x00":
        # one question and nothing after it (no EDNS): the type is in the last four bytes
        return query[n - 4] << 8 | query[n - 3]
    i = 12
    while i < n:
        length = query[i]
        if length == 0:
            break
        if length & 0xC0:  # a compression pointer in a question: not from a resolver
            return -1
        i += length + 1
    if i + 3 > n:
        return -1
    return query[i + 1] << 8 | query[i + 2]


class DnsMetrics:
    """`record(query, reply, proto, started)` after each answer (or none)."""

    def __init__(self, server: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else new_registry()
        self.server, self.zone = server, "."
        self.family = "2" if server.startswith("dns://[") else "1"
        self._requests = LoopCounter("coredns_dns_requests", "Counter of DNS requests made "
                                     "per zone, protocol and family.",
                                     ("server", "zone", "proto", "family", "type"))
        self._responses = LoopCounter("coredns_dns_responses", "Counter of response status "
                                      "codes.", ("server", "zone", "rcode"))
        self._duration = LoopHistogram("coredns_dns_request_duration_seconds", "Histogram of "
                                       "the time (in seconds) each request took.",
                                       ("server", "zone", "type"), DURATION_BUCKETS)
        self._per_type: dict[tuple[str, int], tuple[list[float], LoopHistogramChild]] = {}
        self._per_rcode: list[list[float] | None] = [None] * 16
        self.registry.register(CallbackCollector(self._families))

    def _responses_child(self, rcode: int) -> list[float]:
        cell = self._per_rcode[rcode] = self._responses.child(
            (self.server, self.zone, str(RCODE.get(rcode, rcode))))
        return cell

    def _type_children(self, proto: str, qtype: int) -> tuple[list[float], LoopHistogramChild]:
        name = QTYPE.get(qtype, "other") if qtype >= 0 else "other"
        if name not in MONITORED_TYPES:
            name = "other"
        children = (self._requests.child((self.server, self.zone, proto, self.family, name)),
                    self._duration.child((self.server, self.zone, name)))
        if name != "other" or len(self._per_type) < 256:  # unmonitored types share a child
            self._per_type[(proto, qtype)] = children
        return children

    def record(self, query: bytes, reply: bytes | None, proto: str, started: float) -> None:
        qtype = qtype_of(query)
        requests, duration = self._per_type.get((proto, qtype)) or \
            self._type_children(proto, qtype)
        requests[0] += 1
        if reply is not None and len(reply) >= 4:
            rcode = reply[3] & 0x0F
            (self._per_rcode[rcode] or self._responses_child(rcode))[0] += 1
        duration.observe(time.perf_counter() - started)

    def _families(self) -> list[Metric]:
        return [self._requests.family(), self._responses.family(), self._duration.family()]
