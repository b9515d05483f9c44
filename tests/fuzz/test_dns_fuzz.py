"""Malformed DNS packets to the DNS server, over UDP and TCP on a loopback port.

The real listeners (kemu.dns.server.listen) run in a thread's event loop over a fixed zone:
random bytes, truncated queries, bad label lengths, compression pointer loops, huge
section counts, responses instead of queries. Each bad packet is followed by a good query
on the same socket or connection: the server answers the bad one with FORMERR (or some
rcode) or drops it, then answers the good one; nothing is logged as a failure, and a good
query on a fresh socket is answered at the end. Pure Resolver cases run in the thousands.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from dnslib import QTYPE, RCODE, DNSRecord  # type: ignore[import-untyped]
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kemu.api.v1 import core_pb2, meta_pb2
from kemu.dns.records import Zone
from kemu.dns.server import Listeners, Resolver, listen
from tests.fuzz import corpus


def _zone() -> Zone:
    svcs = [core_pb2.Service(metadata=meta_pb2.ObjectMeta(name="web", namespace="default"),
                             spec=core_pb2.ServiceSpec(cluster_ip="10.96.0.20")),
            core_pb2.Service(metadata=meta_pb2.ObjectMeta(name="db", namespace="default"),
                             spec=core_pb2.ServiceSpec(cluster_ip="None"))]
    eps = [core_pb2.Endpoints(
        metadata=meta_pb2.ObjectMeta(name="db", namespace="default"),
        subsets=[core_pb2.EndpointSubset(
            addresses=[core_pb2.EndpointAddress(ip=f"10.244.0.{i}") for i in range(1, 40)],
            ports=[core_pb2.EndpointPort(name="pg", port=5432)])])]
    return Zone.build(svcs, eps, [])


ZONE = _zone()
GOOD = [DNSRecord.question(name, qtype).pack() for name, qtype in (
    ("web.default.svc.cluster.local", "A"), ("db.default.svc.cluster.local", "A"),
    ("_pg._tcp.db.default.svc.cluster.local", "SRV"), ("nope.cluster.local", "ANY"),
    ("20.0.96.10.in-addr.arpa", "PTR"), ("example.com", "AAAA"))]


@st.composite
def bad_packets(draw: st.DrawFn) -> bytes:
    """Broken DNS messages of the kinds a parser trips on."""
    good = bytearray(draw(st.sampled_from(GOOD)))
    header, body = good[:12], good[12:]
    kind = draw(st.sampled_from(("random", "truncated", "flipped", "labels", "loop", "counts",
                                 "response", "opcode", "edns")))
    if kind == "random":
        return draw(st.binary(max_size=600))
    if kind == "truncated":
        return bytes(good[:draw(st.integers(0, len(good) - 1))])
    if kind == "flipped":
        for _ in range(draw(st.integers(1, 6))):
            i = draw(st.integers(0, len(good) - 1))
            good[i] = draw(st.integers(0, 255))
        return bytes(good)
    if kind == "labels":  # label lengths that lie, 64-255 (reserved label types included)
        labels = b"".join(bytes([draw(st.integers(0, 255))]) + draw(st.binary(max_size=80))
                          for _ in range(draw(st.integers(1, 8))))
        return bytes(header) + labels + b"\x00\x00\x01\x00\x01"
    if kind == "loop":  # a name that is a pointer to itself or into the header
        offset = draw(st.sampled_from((12, 0, 2, 14, 0x3FFF)))
        return bytes(header) + bytes([0xC0 | offset >> 8, offset & 0xFF]) + b"\x00\x01\x00\x01"
    if kind == "counts":
        counts = [draw(st.sampled_from((0, 1, 2, 255, 0xFFFF))) for _ in range(4)]
        return bytes(header[:4]) + struct.pack("!HHHH", *counts) + bytes(body) + draw(
            st.binary(max_size=40))
    if kind == "response":  # QR set: a reply sent to the server
        header[2] |= 0x80
        return bytes(header + body)
    if kind == "opcode":
        header[2] = (header[2] & 0x87) | (draw(st.integers(1, 15)) << 3)
        return bytes(header + body)
    # an OPT record with odd sizes and options
    header[11] = 1
    opt = b"\x00" + struct.pack("!HHIH", 41, draw(st.sampled_from((0, 1, 512, 65535))), 0,
                                draw(st.integers(0, 20))) + draw(st.binary(max_size=20))
    return bytes(header + body) + opt


class Failures(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[int, Failures]]:
    """The real UDP and TCP listeners on 127.0.0.1, in a thread's event loop."""
    failures = Failures()
    logging.getLogger("kemu.dns").addHandler(failures)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Listeners] = {}

    async def start() -> None:
        holder["l"] = await listen(Resolver(lambda: ZONE, None), "127.0.0.1", 0)
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    assert started.wait(10)
    try:
        yield holder["l"].port, failures
    finally:
        loop.call_soon_threadsafe(holder["l"].close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        logging.getLogger("kemu.dns").removeHandler(failures)


def dns_settings(n: int) -> settings:
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def sentinel(i: int) -> DNSRecord:
    q = DNSRecord.question("web.default.svc.cluster.local", "A")
    q.header.id = 0xA000 + i % 0x1000
    return q


def test_resolver_answers_or_drops_any_bytes(capsys: pytest.CaptureFixture[str]) -> None:
    """The bytes-in, bytes-out core, without sockets: thousands of cases."""
    resolver = Resolver(lambda: ZONE, None)
    outcomes: Counter[str] = Counter()

    @dns_settings(4000)
    @given(bad_packets(), st.booleans())
    def check(packet: bytes, tcp: bool) -> None:
        reply = asyncio.run(resolver.handle(packet, tcp))
        if reply is None:
            outcomes["dropped"] += 1
            return
        parsed = DNSRecord.parse(reply)
        assert parsed.header.qr == 1
        assert parsed.header.id == struct.unpack("!H", packet[:2])[0]
        outcomes[RCODE.get(parsed.header.rcode)] += 1

    check()
    corpus.report(capsys, f"dns resolver {dict(outcomes)}", sum(outcomes.values()))


def test_udp_bad_packets_then_a_good_query(server: tuple[int, Failures],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    port, failures = server
    outcomes: Counter[str] = Counter()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))

        @dns_settings(400)
        @given(bad_packets())
        def check(packet: bytes) -> None:
            good = sentinel(sum(outcomes.values()))
            sock.send(packet)
            sock.send(good.pack())
            while True:  # the bad packet's reply (if any) comes first: one socket, in order
                reply = DNSRecord.parse(sock.recv(65535))
                if reply.header.id == good.header.id and reply.header.rcode == RCODE.NOERROR \
                        and reply.rr and str(reply.q.qname) == str(good.q.qname):
                    outcomes["answered after"] += 1
                    return
                outcomes[RCODE.get(reply.header.rcode)] += 1

        check()
    assert not failures.records, [r.getMessage() for r in failures.records[:5]]
    corpus.report(capsys, f"dns udp {dict(outcomes)}", outcomes["answered after"])


def _tcp_exchange(port: int, payload: bytes, good: DNSRecord) -> str:
    """Send `payload` (raw, framing and all) then the good query; how the server ended."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(payload)
        wire = good.pack()
        conn.sendall(struct.pack("!H", len(wire)) + wire)
        conn.shutdown(socket.SHUT_WR)  # a frame that lies about its length meets end of file
        buffered = b""
        while True:
            chunk = conn.recv(65535)
            if not chunk:
                return "closed"  # a frame that swallowed the good query; the server hung up
            buffered += chunk
            while len(buffered) >= 2 and len(buffered) >= 2 + struct.unpack(
                    "!H", buffered[:2])[0]:
                size = struct.unpack("!H", buffered[:2])[0]
                reply, buffered = DNSRecord.parse(buffered[2:2 + size]), buffered[2 + size:]
                if reply.header.id == good.header.id and reply.rr:
                    return "answered after"


def test_tcp_bad_frames_then_a_good_query(server: tuple[int, Failures],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    port, failures = server
    outcomes: Counter[str] = Counter()

    @dns_settings(150)
    @given(bad_packets(), st.sampled_from(("framed", "short-length", "long-length", "raw")))
    def check(packet: bytes, framing: str) -> None:
        good = sentinel(sum(outcomes.values()))
        size = len(packet)
        if framing == "framed":
            payload = struct.pack("!H", size) + packet
        elif framing == "short-length":
            payload = struct.pack("!H", max(0, size - 3)) + packet
        elif framing == "long-length":  # the server waits for bytes that never come
            payload = struct.pack("!H", min(0xFFFF, size + 3)) + packet
        else:
            payload = packet
        result = _tcp_exchange(port, payload, good)
        if framing == "framed":
            assert result == "answered after", packet
        outcomes[result] += 1

    check()
    assert not failures.records, [r.getMessage() for r in failures.records[:5]]
    corpus.report(capsys, f"dns tcp {dict(outcomes)}", sum(outcomes.values()))


def test_still_answers_on_fresh_sockets(server: tuple[int, Failures]) -> None:
    port, _ = server
    q = DNSRecord.question("web.default.svc.cluster.local", "A")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(q.pack(), ("127.0.0.1", port))
        reply = DNSRecord.parse(sock.recv(65535))
    assert [str(r.rdata) for r in reply.rr if r.rtype == QTYPE.A] == ["10.96.0.20"]
    assert _tcp_exchange(port, b"", q) == "answered after"
