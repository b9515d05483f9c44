"""Forwarding names outside the cluster domain to one upstream resolver.

Pods resolve everything through the cluster DNS, so names it does not own go upstream
(CoreDNS's `forward . /etc/resolv.conf`). The raw query bytes are relayed unchanged and the
raw reply is returned, so the upstream's answer reaches the client exactly. A client that
gets no answer within the timeout (about 2 s) is better served by a quick SERVFAIL than by
its own retries piling up, so `query` returns None and the server answers SERVFAIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass

DEFAULT_TIMEOUT = 2.0


def parse_upstream(text: str) -> tuple[str, int]:
    """`ADDR[:PORT]` (IPv6 as `[::1]:53`) -> (host, port); port 53 by default."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest.lstrip(":") or 53)
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, 53


class _OneReply(asyncio.DatagramProtocol):
    """Collects the first datagram whose ID matches the query's."""

    def __init__(self, query_id: bytes) -> None:
        self.query_id = query_id
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if data[:2] == self.query_id and not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


@dataclass
class Forwarder:
    """Relays raw DNS messages to `host:port` over UDP, or TCP when asked or truncated."""

    host: str
    port: int = 53
    timeout: float = DEFAULT_TIMEOUT

    async def query(self, data: bytes, *, tcp: bool = False) -> bytes | None:
        """The upstream's reply to `data`, or None on timeout or error."""
        try:
            async with asyncio.timeout(self.timeout):
                reply = await self._udp(data)
                # Truncated over UDP: a TCP client can take the full answer, so fetch it.
                if tcp and len(reply) > 2 and reply[2] & 0x02:
                    reply = await self._tcp(data)
                return reply
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            return None

    async def _udp(self, data: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(
            lambda: _OneReply(data[:2]), remote_addr=(self.host, self.port))
        try:
            transport.sendto(data)
            return await proto.reply
        finally:
            transport.close()

    async def _tcp(self, data: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(struct.pack("!H", len(data)) + data)
            await writer.drain()
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            return await reader.readexactly(length)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
