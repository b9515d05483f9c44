"""The HTTP/1.x head reader and response writer shared by /metrics and `kemu dashboard`."""

from __future__ import annotations

import asyncio

import pytest

from kemu.util import httphead


@pytest.mark.parametrize(("head", "expected"), [
    pytest.param(b"GET /api/logs?namespace=a&pod=b%2Fc HTTP/1.1\r\nHost: x:1\r\n\r\n",
                 ("GET", "/api/logs", {"namespace": "a", "pod": "b/c"}, "x:1"), id="get"),
    pytest.param(b"GET / HTTP/2\r\n\r\n", None, id="not-http1"),
    pytest.param(b"nonsense\r\n\r\n", None, id="garbage"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n", None, id="unterminated"),
    pytest.param(b"GET / HTTP/1.1\r\nX: " + b"a" * 100_000 + b"\r\n\r\n", None, id="too-big"),
])
def test_read_request(head: bytes, expected: tuple[str, str, dict[str, str], str] | None
                      ) -> None:
    async def parse() -> httphead.Request | None:
        reader = asyncio.StreamReader(limit=16 * 1024)
        reader.feed_data(head)
        reader.feed_eof()
        return await httphead.read_request(reader)

    req = asyncio.run(parse())
    if expected is None:
        assert req is None
    else:
        assert req is not None
        assert (req.method, req.path, req.query, req.headers.get("host")) == expected


class _Sink:
    """What `respond` needs of a StreamWriter: write and drain."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None


@pytest.mark.parametrize(("head_only", "status", "phrase"), [
    (False, 200, "OK"), (True, 200, "OK"), (False, 421, "Misdirected Request"),
    (False, 599, "Error")])
def test_respond_writes_one_closed_response(head_only: bool, status: int, phrase: str) -> None:
    sink = _Sink()
    asyncio.run(httphead.respond(sink, status, "héllo", headers=(("X-A", "b"),),  # type: ignore[arg-type]
                                 head_only=head_only))
    head, _, body = sink.data.partition(b"\r\n\r\n")
    assert head.decode().split("\r\n") == [
        f"HTTP/1.1 {status} {phrase}", "Content-Type: text/plain; charset=utf-8",
        "Content-Length: 6", "Connection: close", "X-A: b"]
    assert body == (b"" if head_only else "héllo".encode())
