"""The little HTTP/1.x that kemu's own small servers speak: read one bounded request head,
write one response and close.

Two servers need no more than that, the /metrics endpoint of every component and `kemu
dashboard`, and both run on the component's own event loop, where a web framework would
bring a second loop or a thread. Bodies are never read (both serve GET and HEAD only), a
head must arrive within `timeout` seconds and fit the StreamReader's limit, and anything
else is treated as a client that went away.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

HEAD_TIMEOUT = 10.0


@dataclass(frozen=True)
class Request:
    """A request head: method, path without its query, the query's first values and the
    headers with lower-case names."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


async def read_request(reader: asyncio.StreamReader, *, timeout: float = HEAD_TIMEOUT
                       ) -> Request | None:
    """The request head, or None when it is not a well-formed, bounded HTTP/1.x head
    (too long for the reader's limit, too slow, cut short or garbled)."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
            ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    url = urlsplit(parts[1])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    return Request(parts[0], url.path, query, headers)


async def respond(writer: asyncio.StreamWriter, status: int, body: str | bytes, *,
                  content_type: str = "text/plain; charset=utf-8",
                  headers: tuple[tuple[str, str], ...] = (), head_only: bool = False) -> None:
    """Write one complete response (`Connection: close`); with `head_only` (a HEAD
    request) its headers only, Content-Length still that of `body`."""
    data = body.encode() if isinstance(body, str) else body
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}",
             f"Content-Length: {len(data)}", "Connection: close",
             *(f"{k}: {v}" for k, v in headers)]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
                 + (b"" if head_only else data))
    await writer.drain()
