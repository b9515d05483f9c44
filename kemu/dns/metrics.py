"""CoreDNS's series for the cluster DNS: requests by protocol and type, responses by rcode,
and request latency by type.

They are read from the wire bytes (the question's type after its name; the reply's rcode
in its fourth byte), so the cached fast path stays a dict lookup plus a few counter
increments; labelled children are made once per protocol, type and rcode. Types outside
CoreDNS's monitored set count as `other`, as CoreDNS counts them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from dnslib import QTYPE, RCODE  # type: ignore[import-untyped]
from prometheus_client import CollectorRegistry, Counter, Histogram

from kemu.util.metrics import new_registry

MONITORED_TYPES = frozenset(("A", "AAAA", "MX", "SOA", "CNAME", "PTR", "TXT", "NS", "SRV",
                             "DS", "DNSKEY", "RRSIG", "NSEC", "NSEC3", "HTTPS", "IXFR",
                             "AXFR", "ANY"))
# CoreDNS's: exponential from 0.25 ms, factor 2, 16 buckets (to about 8 s).
DURATION_BUCKETS = tuple(0.00025 * 2 ** i for i in range(16))


def qtype_of(query: bytes) -> int:
    """The QTYPE of a query's first question, -1 if the message is too short or odd."""
    i, n = 12, len(query)
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
        self._requests = Counter("coredns_dns_requests", "Counter of DNS requests made per "
                                 "zone, protocol and family.",
                                 ("server", "zone", "proto", "family", "type"),
                                 registry=self.registry)
        self._responses = Counter("coredns_dns_responses", "Counter of response status "
                                  "codes.", ("server", "zone", "rcode"), registry=self.registry)
        self._duration = Histogram("coredns_dns_request_duration_seconds", "Histogram of the "
                                   "time (in seconds) each request took.",
                                   ("server", "zone", "type"), buckets=DURATION_BUCKETS,
                                   registry=self.registry)
        self.family = "2" if server.startswith("dns://[") else "1"
        self._per_type: dict[tuple[str, int], tuple[Callable[[], None],
                                                    Callable[[float], None]]] = {}
        self._per_rcode: dict[int, Callable[[], None]] = {}

    def _type_children(self, proto: str, qtype: int
                       ) -> tuple[Callable[[], None], Callable[[float], None]]:
        name = QTYPE.get(qtype, "other") if qtype >= 0 else "other"
        if name not in MONITORED_TYPES:
            name = "other"
        children = (self._requests.labels(self.server, self.zone, proto, self.family,
                                          name).inc,
                    self._duration.labels(self.server, self.zone, name).observe)
        if name != "other" or len(self._per_type) < 256:  # unmonitored types share a child
            self._per_type[(proto, qtype)] = children
        return children

    def record(self, query: bytes, reply: bytes | None, proto: str, started: float) -> None:
        qtype = qtype_of(query)
        children = self._per_type.get((proto, qtype)) or self._type_children(proto, qtype)
        children[0]()
        if reply is not None and len(reply) >= 4:
            rcode = reply[3] & 0x0F
            inc = self._per_rcode.get(rcode)
            if inc is None:
                inc = self._per_rcode[rcode] = self._responses.labels(
                    self.server, self.zone, str(RCODE.get(rcode, rcode))).inc
            inc()
        children[1](time.perf_counter() - started)
