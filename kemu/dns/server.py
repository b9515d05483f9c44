"""The DNS server: informer caches -> Zone -> answers on asyncio UDP and TCP sockets.

Why asyncio sockets and not dnslib's DNSServer: dnslib's server is a thread per request
(socketserver), while the informers are asyncio tasks; one loop for both avoids locks and
thread hops, and the fast path below answers a repeated question without parsing it.

Speed: a cluster DNS sees the same few questions over and over (every pod's resolver asks
for the same Services), so authoritative replies are cached as wire bytes keyed by the
query without its ID; a hit is a dict lookup plus a two-byte ID splice. The cache is
dropped whenever an informer reports a change, and the zone is rebuilt lazily on the next
query, so an answer is never older than the informers' view (well under a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dnslib import EDNS0, QTYPE, RCODE, DNSError, DNSRecord  # type: ignore[import-untyped]

from kemu.api.v1 import api_pb2
from kemu.dns.forward import Forwarder
from kemu.dns.metrics import DnsMetrics
from kemu.dns.records import Zone
from kemu.util.logsetup import event, ms_since
from kemu.util.metrics import MetricsEndpoint, serve_metrics

log = logging.getLogger(__name__)

UDP_LIMIT = 512
CACHE_MAX = 50_000
OPT_T: int = QTYPE.OPT


class Resolver:
    """Bytes in, bytes out: the zone for cluster names, the forwarder for the rest."""

    def __init__(self, zone: Callable[[], Zone], forwarder: Forwarder | None,
                 generation: Callable[[], int] = lambda: 0) -> None:
        self._zone = zone
        self._generation = generation
        self._forwarder = forwarder
        self._cache: dict[bytes, bytes] = {}
        self._cache_gen = -1

    def cached(self, data: bytes, tcp: bool) -> bytes | None:
        """The fast path: a cached reply with this query's ID, or None."""
        gen = self._generation()
        if gen != self._cache_gen:
            self._cache.clear()
            self._cache_gen = gen
            return None
        body = self._cache.get(data[2:] + (b"t" if tcp else b"u"))
        return None if body is None else data[:2] + body

    def local(self, data: bytes, tcp: bool) -> tuple[bytes | None, bool]:
        """(reply, handled): handled False means the name is not ours (forward it)."""
        data = bytes(data)
        hit = self.cached(data, tcp)
        if hit is not None:
            return hit, True
        try:
            req = DNSRecord.parse(data)
        except (DNSError, struct.error, IndexError, ValueError):
            return _formerr(data), True
        if req.header.qr or len(req.questions) != 1:
            return (None if req.header.qr else _reply(req, RCODE.FORMERR, tcp)), True
        if req.header.opcode != 0:  # only QUERY; NOTIFY, UPDATE... are not implemented
            return _reply(req, RCODE.NOTIMP, tcp), True
        q = req.q
        answer = self._zone().resolve(str(q.qname), int(q.qtype))
        if answer is None:
            return None, False
        reply = req.reply()
        reply.header.rcode = answer.rcode
        for rr in answer.answers:
            reply.add_answer(rr)
        for rr in answer.authority:
            reply.add_auth(rr)
        for rr in answer.additional:
            reply.add_ar(rr)
        wire = _pack(req, reply, tcp)
        if len(self._cache) >= CACHE_MAX:
            self._cache.clear()
        self._cache[data[2:] + (b"t" if tcp else b"u")] = wire[2:]
        return wire, True

    async def handle(self, data: bytes, tcp: bool) -> bytes | None:
        """The reply to one query (None: send nothing)."""
        reply, handled = self.local(data, tcp)
        if handled:
            return reply
        if self._forwarder is not None:
            upstream = await self._forwarder.query(bytes(data), tcp=tcp)
            if upstream is not None:
                return upstream
        try:
            return _reply(DNSRecord.parse(data), RCODE.SERVFAIL, tcp, ra=True)
        except (DNSError, struct.error, IndexError, ValueError):
            return _formerr(data)


def _edns(req: DNSRecord) -> int | None:
    """The client's advertised UDP size when it sent an OPT record, else None."""
    for rr in req.ar:
        if rr.rtype == OPT_T:
            return max(UDP_LIMIT, int(rr.rclass))
    return None


def _pack(req: DNSRecord, reply: DNSRecord, tcp: bool) -> bytes:
    """Pack, echoing EDNS when asked, truncating (TC) what does not fit in UDP."""
    size = _edns(req)
    if size is not None:
        reply.add_ar(EDNS0(udp_len=1232))
    wire = bytes(reply.pack())
    if not tcp and len(wire) > (size or UDP_LIMIT):
        short = reply.truncate()
        if size is not None:
            short.add_ar(EDNS0(udp_len=1232))
        wire = bytes(short.pack())
    return wire


def _reply(req: DNSRecord, rcode: int, tcp: bool, ra: bool = True) -> bytes:
    reply = req.reply(ra=int(ra), aa=0)
    reply.header.rcode = rcode
    return _pack(req, reply, tcp)


def _formerr(data: bytes) -> bytes | None:
    """A bare FORMERR header for a message too broken to parse (None if no header)."""
    if len(data) < 12:
        return None
    flags = 0x8000 | (data[2] & 0x78) << 8 | RCODE.FORMERR
    return data[:2] + struct.pack("!HHHHH", flags, 0, 0, 0, 0)


class _Udp:
    """A UDP socket read straight from the selector: each wake-up drains up to BATCH
    datagrams and answers cache hits and zone names inline with `sock.sendto`.

    asyncio's datagram transport costs a callback and a few attribute hops per datagram;
    at tens of thousands of queries a second that overhead is most of the work, and
    draining the socket in one callback roughly halves it. Forwarded names go to a task.
    A reply that does not fit the socket buffer is dropped, as a busy server would drop
    the query; the client retries.
    """

    BATCH = 64

    def __init__(self, sock: socket.socket, resolver: Resolver,
                 metrics: DnsMetrics | None = None) -> None:
        self.sock = sock
        self.resolver = resolver
        self.metrics = metrics
        self.pending: set[asyncio.Task[None]] = set()
        self.query_log = log.isEnabledFor(logging.DEBUG)  # -v 4: one event per query
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(sock.fileno(), self._readable)

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        for task in self.pending:
            task.cancel()
        self.sock.close()

    def _readable(self) -> None:
        sock, local, metrics = self.sock, self.resolver.local, self.metrics
        for _ in range(self.BATCH):
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. an ICMP error for an earlier reply; keep serving
                continue
            started = time.perf_counter()
            try:
                reply, handled = local(data, False)
            except Exception:
                log.exception("dns: query from %s failed", addr)
                continue
            if handled:
                if reply is not None:
                    self._send(reply, addr)
                if metrics is not None:
                    metrics.record(data, reply, "udp", started)
                if self.query_log:
                    log_query(data, reply, "udp", started)
                continue
            task = self.loop.create_task(self._slow(data, addr, started))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

    def _send(self, reply: bytes, addr: tuple[Any, ...]) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendto(reply, addr)

    async def _slow(self, data: bytes, addr: tuple[Any, ...], started: float) -> None:
        reply = await self.resolver.handle(data, False)
        if reply is not None:
            self._send(reply, addr)
        if self.metrics is not None:
            self.metrics.record(data, reply, "udp", started)
        if self.query_log:
            log_query(data, reply, "udp", started)


def log_query(data: bytes, reply: bytes | None, proto: str, started: float) -> None:
    """One event per query at -v 4, as CoreDNS's log plugin: name, type, protocol, rcode
    (none: no reply was sent) and duration."""
    try:
        q = DNSRecord.parse(data).q
        name, qtype = str(q.qname), str(QTYPE.get(q.qtype, q.qtype))
    except (DNSError, struct.error, IndexError, ValueError):
        name, qtype = "", ""
    rcode = str(RCODE.get(reply[3] & 0x0F, reply[3] & 0x0F)) if reply and len(reply) > 3 \
        else "none"
    event(log, "query", v=4, name=name, type=qtype, proto=proto, rcode=rcode,
          duration_ms=ms_since(started))


async def _tcp_client(resolver: Resolver, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter, metrics: DnsMetrics | None = None) -> None:
    """Length-prefixed queries until the client closes (or idles 10 s)."""
    try:
        while True:
            async with asyncio.timeout(10):
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                data = await reader.readexactly(length)
            started = time.perf_counter()
            reply = await resolver.handle(data, True)
            if reply is not None:
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
            if metrics is not None:
                metrics.record(data, reply, "tcp", started)
            if log.isEnabledFor(logging.DEBUG):
                log_query(data, reply, "tcp", started)
    except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
        pass
    except Exception:
        log.exception("dns: tcp client failed")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@dataclass
class Listeners:
    udp: _Udp
    tcp: asyncio.Server

    @property
    def port(self) -> int:
        return int(self.udp.sock.getsockname()[1])

    def close(self) -> None:
        self.udp.close()
        self.tcp.close()


async def listen(resolver: Resolver, host: str, port: int,
                 metrics: DnsMetrics | None = None) -> Listeners:
    """Serve `resolver` on host:port over UDP and TCP (port 0: one free port for both)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        with contextlib.suppress(OSError):  # bursts queue here, not in lost packets
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((host, port))
        port = sock.getsockname()[1]
        tcp = await asyncio.start_server(lambda r, w: _tcp_client(resolver, r, w, metrics),
                                         host, port, reuse_address=True)
    except BaseException:
        sock.close()
        raise
    return Listeners(_Udp(sock, resolver, metrics), tcp)


def _pod_view(obj: api_pb2.Object | None) -> tuple[str, ...] | None:
    """The fields of a pod that DNS answers depend on (None when not a pod)."""
    if obj is None or not obj.HasField("pod"):
        return None
    p = obj.pod
    return (p.metadata.namespace, p.metadata.name, p.status.pod_ip, p.spec.hostname,
            p.spec.subdomain)


class ClusterState:
    """Three informers (services, endpoints, pods) and the zone built from them.

    Most pod updates are status churn (conditions, container states) that no DNS answer
    depends on; those do not count as changes. Real changes mark the zone stale, and it is
    rebuilt on the next question, at most every REBUILD_INTERVAL seconds, so a burst of
    changes costs a few rebuilds while an answer stays well within a second of the API.
    """

    REBUILD_INTERVAL = 0.1

    def __init__(self, apiserver: str, domain: str, ttl: int) -> None:
        from kemu.client.aio import AsyncClient
        from kemu.client.informer import Informer

        self.client = AsyncClient(apiserver, read_retry_seconds=30.0)
        self.domain, self.ttl = domain, ttl
        self.informers = [Informer(self.client, r) for r in ("services", "endpoints", "pods")]
        self.generation = 0
        self._built = -1
        self._built_at = 0.0
        self._zone = Zone(domain=domain, ttl=ttl)
        for inf in self.informers:
            inf.add_handler(self._changed)

    def _changed(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        if old is not None and new is not None and _pod_view(old) is not None \
                and _pod_view(old) == _pod_view(new):
            return
        self.generation += 1

    def zone(self) -> Zone:
        if self._built != self.generation:
            now = time.monotonic()
            if now - self._built_at >= self.REBUILD_INTERVAL or self._built < 0:
                generation = self.generation
                services, endpoints, pods = (inf.list() for inf in self.informers)
                self._zone = Zone.build([o.service for o in services],
                                        [o.endpoints for o in endpoints],
                                        [o.pod for o in pods], domain=self.domain,
                                        ttl=self.ttl)
                self._built, self._built_at = generation, now
        return self._zone

    def version(self) -> int:
        """The generation of the zone answers come from (rebuilding it when due): the
        resolver's reply cache is valid for exactly one such version."""
        self.zone()
        return self._built

    async def start(self, timeout: float = 30.0) -> None:
        for inf in self.informers:
            inf.start()
        try:
            for inf in self.informers:
                await inf.wait_synced(timeout)
        except TimeoutError:
            await self.stop()
            raise TimeoutError(f"could not list services, endpoints and pods from "
                               f"{self.client.server} within {timeout:.0f}s") from None

    async def stop(self) -> None:
        for inf in self.informers:
            await inf.stop()
        await self.client.close()


async def serve(apiserver: str, host: str, port: int, *, domain: str = "cluster.local",
                ttl: int = 5, upstream: tuple[str, int] | None = None,
                sync_timeout: float = 30.0, metrics_listen: str | None = None) -> None:
    """Fill the caches, then answer until SIGTERM/SIGINT. Listening only after the
    caches are synced means a client never sees NXDOMAIN for a Service that exists."""
    state = ClusterState(apiserver, domain, ttl)
    await state.start(sync_timeout)
    # Start-up objects (modules, grpc, the first caches) live for the whole run: moving
    # them out of the collector's view keeps full collections, and so latency tails, short.
    gc.collect()
    gc.freeze()
    forwarder = Forwarder(*upstream) if upstream else None
    resolver = Resolver(state.zone, forwarder, state.version)
    metrics: DnsMetrics | None = None  # no cost per query unless --metrics-listen
    endpoint: MetricsEndpoint | None = None
    if metrics_listen is not None:
        metrics = DnsMetrics(f"dns://[{host}]:{port}" if ":" in host else
                             f"dns://{host}:{port}")
        endpoint = await serve_metrics(metrics_listen, metrics.registry)
    listeners = await listen(resolver, host, port, metrics)
    log.info("dns: serving %s on %s:%d (upstream %s)", domain, host, port, upstream)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        listeners.close()
        if endpoint is not None:
            await endpoint.stop()
        await state.stop()
