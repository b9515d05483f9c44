"""The dashboard's server: one asyncio loop that keeps an informer (list + watch) per shown
resource and serves a static page plus two Server-Sent Event streams to browsers.

- `GET /api/stream`: a `snapshot` event with every row, then one `change` event per
  ADDED/MODIFIED/DELETED the informers see. A browser too slow to keep up is cut off; its
  EventSource reconnects and gets a fresh snapshot, so nothing is lost or shown twice.
- `GET /api/logs?namespace=&pod=&container=`: the container's log through the Logs RPC
  (what `kemuctl logs -f` reads), as `log` events, then `end`, or `failed` with the API's
  one-line error.

The HTTP side is deliberately tiny (GET only, one request per connection, bounded request
heads) and refuses any Host header but the address it serves, so that a web page a user
visits cannot read the cluster through a DNS name rebound to 127.0.0.1. Responses carry a
Content-Security-Policy that allows only the page's own script and style.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import errno
import json
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import grpc

from kemu.api.v1 import api_pb2
from kemu.cli.dashboard.rows import ROWS, Row, row_of
from kemu.client.aio import AsyncClient
from kemu.client.errors import ClientError, Timeout, Unavailable, from_rpc_error
from kemu.client.informer import Informer
from kemu.util import httphead
from kemu.util.httphead import read_request
from kemu.util.tls import ClientTLS

log = logging.getLogger(__name__)

# A browser's queue of change events; past it the browser is cut off and re-syncs.
QUEUE_LIMIT = 5000
# A comment line on idle streams, so a vanished browser is noticed and proxies stay open.
PING_SECONDS = 15.0
# Log lines fetched before following (kubectl's default is all; a page wants a bound).
LOG_TAIL = 1000
MAX_HEAD_BYTES = 16 * 1024
STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}
SECURITY_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "
                                "connect-src 'self'; img-src 'self'; base-uri 'none'; "
                                "form-action 'none'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)


class DashboardError(Exception):
    """The dashboard cannot start; printed as one line."""


@dataclass(frozen=True)
class DashboardConfig:
    """Where to serve and which apiserver to show."""

    host: str
    port: int
    server: str
    token: str = ""
    tls: ClientTLS | None = None
    # Seconds the start-up check waits for the apiserver.
    connect_timeout: float = 10.0


@dataclass(eq=False)
class Subscriber:
    """One browser following /api/stream."""

    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)


class Hub:
    """The current row of every watched object, and the browsers to tell of changes."""

    def __init__(self, server: str = "", clock: Callable[[], float] = time.time) -> None:
        self.server = server
        self.rows: dict[str, dict[str, Row]] = {r: {} for r in ROWS}
        self.subscribers: set[Subscriber] = set()
        self.clock = clock
        # Why the apiserver cannot be read right now ("" while it can).
        self.problem = ""

    def handler(self, resource: str) -> Callable[[api_pb2.Object | None,
                                                  api_pb2.Object | None], None]:
        def handle(old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
            if new is not None:
                row = row_of(resource, new, self.clock())
                self.rows[resource][row["key"]] = row
                self.publish({"resource": resource, "key": row["key"], "row": row})
            elif old is not None:
                key = row_of(resource, old, self.clock())["key"]
                self.rows[resource].pop(key, None)
                self.publish({"resource": resource, "key": key, "row": None})
        return handle

    def set_problem(self, problem: str) -> None:
        """Tell every browser that the apiserver stopped (or started again) answering."""
        if problem != self.problem:
            self.problem = problem
            self.broadcast(sse("status", {"problem": problem}))

    def publish(self, change: dict[str, Any]) -> None:
        self.broadcast(sse("change", change))

    def broadcast(self, message: str) -> None:
        for sub in self.subscribers:
            try:
                sub.queue.put_nowait(message)
            except asyncio.QueueFull:
                sub.overflowed.set()

    def snapshot(self) -> str:
        return sse("snapshot", {"server": self.server, "problem": self.problem, "resources": {
            r: list(rows.values()) for r, rows in self.rows.items()}})

    def subscribe(self) -> tuple[Subscriber, str]:
        """A new subscriber and the snapshot it starts from (atomic: one loop)."""
        sub = Subscriber()
        self.subscribers.add(sub)
        return sub, self.snapshot()


class WatchingClient(AsyncClient):
    """The informers' client, telling the hub when the apiserver cannot be reached: a list
    or watch that fails UNAVAILABLE (or times out) reports it; an answer clears it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_problem: Callable[[str], None] = lambda problem: None

    async def list(self, *args: Any, **kwargs: Any) -> api_pb2.ListResponse:
        try:
            resp = await super().list(*args, **kwargs)
        except (Unavailable, Timeout) as e:
            self.on_problem(e.message)
            raise
        self.on_problem("")
        return resp

    async def watch(self, *args: Any, **kwargs: Any) -> AsyncIterator[api_pb2.WatchEvent]:
        try:
            async for event in super().watch(*args, **kwargs):
                self.on_problem("")
                yield event
        except (Unavailable, Timeout) as e:
            self.on_problem(e.message)
            raise


def sse(event: str, data: Any) -> str:
    """One Server-Sent Event; the JSON has no raw newline, so it is one `data:` line."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def allowed_hosts(host: str, port: int) -> frozenset[str] | None:
    """Host headers accepted: the address served and loopback names; None (any) when
    serving on every address, where no one name is the right one."""
    if host in ("0.0.0.0", "::", ""):
        return None
    names = {f"[{host}]" if ":" in host else host, "localhost", "127.0.0.1", "[::1]"}
    return frozenset(f"{n}:{port}" for n in names)


class Dashboard:
    """The HTTP server and the informers behind it."""

    def __init__(self, config: DashboardConfig, client: WatchingClient) -> None:
        self.config = config
        self.client = client
        self.hub = Hub(config.server)
        client.on_problem = self._on_problem
        self._recovery: asyncio.Task[None] | None = None
        self.informers = [Informer(client, resource) for resource in ROWS]
        for informer in self.informers:
            informer.add_handler(self.hub.handler(informer.resource))
        self.address = f"{config.host}:{config.port}"
        self.hosts = allowed_hosts(config.host, config.port)
        self.tasks: set[asyncio.Task[None]] = set()

    def bound(self, port: int) -> str:
        """The page's URL, once the listening port is known (it may have been 0)."""
        host = self.config.host
        self.hosts = allowed_hosts(host, port)
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return f"http://{self.address}/"

    def _on_problem(self, problem: str) -> None:
        if problem != self.hub.problem:
            if problem:
                log.warning("the page shows the last known state: %s", problem)
            else:
                log.warning("apiserver %s answers again; the page is live", self.client.server)
        self.hub.set_problem(problem)
        if problem and (self._recovery is None or self._recovery.done()):
            self._recovery = asyncio.create_task(self._recover())

    async def _recover(self) -> None:
        """Ask the apiserver until it answers, then clear the problem: a watch that opens
        again says nothing until something changes."""
        backoff = 0.5
        while self.hub.problem:
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
            with contextlib.suppress(ClientError):
                await self.client.api_resources()
                self._on_problem("")

    async def stop(self) -> None:
        for informer in self.informers:
            await informer.stop()
        if self._recovery is not None:
            self._recovery.cancel()
            await asyncio.gather(self._recovery, return_exceptions=True)

    async def synced(self) -> None:
        await asyncio.gather(*(i.synced.wait() for i in self.informers))

    # ---- HTTP ----------------------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self._serve_one(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        req = await read_request(reader)
        if req is None:
            return await respond(writer, 400, "bad request\n")
        if self.hosts is not None and req.headers.get("host", "") not in self.hosts:
            return await respond(writer, 421, "this dashboard answers only to "
                                 f"http://{self.address}/\n")
        if req.method != "GET" and (req.method != "HEAD" or req.path.startswith("/api/")):
            return await respond(writer, 405, "read-only: GET only\n",
                                 headers=(("Allow", "GET, HEAD"),))
        if req.path in STATIC:
            name, content_type = STATIC[req.path]
            body = resources.files(__package__).joinpath("static", name).read_bytes()
            return await respond(writer, 200, body, content_type=content_type,
                                 head_only=req.method == "HEAD")
        if req.path == "/healthz":
            return await respond(writer, 200, "ok\n")
        if req.path == "/api/stream":
            return await self._until_gone(reader, writer, self._stream(writer))
        if req.path == "/api/logs":
            ns, pod = req.query.get("namespace", ""), req.query.get("pod", "")
            if not ns or not pod:
                return await respond(writer, 400, "namespace and pod are required\n")
            return await self._until_gone(reader, writer, self._logs(
                writer, ns, pod, req.query.get("container", ""),
                follow=req.query.get("follow", "1") != "0"))
        return await respond(writer, 404, "not found\n")

    async def _until_gone(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          body: Awaitable[None]) -> None:
        """Run a streaming response until it ends or the browser goes away."""
        await start_sse(writer)
        stream = asyncio.ensure_future(body)
        gone = asyncio.ensure_future(reader.read())  # b"" at the browser's close
        try:
            await asyncio.wait((stream, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (stream, gone):
                t.cancel()
            results = await asyncio.gather(stream, gone, return_exceptions=True)
            if isinstance(results[0], Exception) and not isinstance(results[0], ConnectionError):
                log.error("dashboard stream failed: %r", results[0], exc_info=results[0])

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        await self.synced()
        sub, snapshot = self.hub.subscribe()
        try:
            writer.write(snapshot.encode())
            await writer.drain()
            while not sub.overflowed.is_set():
                try:
                    message = await asyncio.wait_for(sub.queue.get(), PING_SECONDS)
                except TimeoutError:
                    message = ": ping\n\n"
                writer.write(message.encode())
                await writer.drain()
        finally:
            self.hub.subscribers.discard(sub)

    async def _logs(self, writer: asyncio.StreamWriter, namespace: str, pod: str,
                    container: str, *, follow: bool) -> None:
        request = api_pb2.LogsRequest(namespace=namespace, name=pod, container=container,
                                      follow=follow, tail_lines=LOG_TAIL)
        call = self.client.resources.Logs(request, metadata=self.client.metadata)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            async for chunk in call:
                text = decoder.decode(chunk.data)
                if text:
                    writer.write(sse("log", {"text": text}).encode())
                    await writer.drain()
            writer.write(sse("end", {"text": decoder.decode(b"", final=True)}).encode())
        except grpc.aio.AioRpcError as e:
            err = from_rpc_error(e, self.client.server)
            writer.write(sse("failed", {"message": err.message}).encode())
        finally:
            call.cancel()
        await writer.drain()


async def respond(writer: asyncio.StreamWriter, status: int, body: str | bytes, *,
                  content_type: str = "text/plain; charset=utf-8",
                  headers: tuple[tuple[str, str], ...] = (), head_only: bool = False) -> None:
    """`httphead.respond` with the dashboard's security headers on every answer."""
    await httphead.respond(writer, status, body, content_type=content_type,
                           headers=(*SECURITY_HEADERS, *headers), head_only=head_only)


async def start_sse(writer: asyncio.StreamWriter) -> None:
    lines = ["HTTP/1.1 200 OK", "Content-Type: text/event-stream; charset=utf-8",
             "Connection: close", *(f"{k}: {v}" for k, v in SECURITY_HEADERS)]
    writer.write(("\r\n".join(lines) + "\r\n\r\nretry: 2000\n\n").encode())
    await writer.drain()


async def check_apiserver(client: AsyncClient, server: str) -> None:
    """Fail at once, in one line, when the apiserver cannot be reached or refuses us."""
    try:
        await client.api_resources()
    except ClientError as e:
        raise DashboardError(f"apiserver {server}: {e.message}") from None


async def serve(config: DashboardConfig, *, announce: Callable[[str], None] = print) -> None:
    """Serve until SIGINT or SIGTERM."""
    client = WatchingClient(config.server, timeout=config.connect_timeout, read_retry_seconds=0,
                         token=config.token or None, tls=config.tls)
    try:
        await check_apiserver(client, config.server)
        dashboard = Dashboard(config, client)
        try:
            server = await asyncio.start_server(dashboard.handle, config.host, config.port,
                                                limit=MAX_HEAD_BYTES)
        except OSError as e:
            why = "address already in use" if e.errno == errno.EADDRINUSE else \
                (e.strerror or str(e))
            raise DashboardError(f"cannot listen on {config.host}:{config.port}: {why}") \
                from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        for informer in dashboard.informers:
            informer.start()
        url = dashboard.bound(int(server.sockets[0].getsockname()[1]))
        announce(f"Serving the dashboard of {config.server} on {url} (read-only; Ctrl-C "
                 "stops)")
        try:
            await stop.wait()
        finally:
            server.close()
            for task in list(dashboard.tasks):
                task.cancel()
            await asyncio.gather(*dashboard.tasks, return_exceptions=True)
            await dashboard.stop()
            with contextlib.suppress(Exception):
                await server.wait_closed()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    finally:
        await client.close()
