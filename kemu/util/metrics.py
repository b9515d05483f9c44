"""Prometheus metrics shared by every component: the gRPC server interceptor, the work-queue
metrics, and the HTTP endpoint that `--metrics-listen HOST:PORT` starts.

Each component instance owns a `CollectorRegistry` (`new_registry()`), never the global
one, so that several components in one process (tests, the all-in-one runner) do not
collide. Series keep the names Kubernetes and go-grpc-prometheus use, so existing
dashboards and queries apply: `grpc_server_handled_total{grpc_service,grpc_method,
grpc_code}`, `workqueue_depth{name}`... (the list: docs/metrics.md).

Overhead is kept to what a scrape needs: labelled children are looked up once (per method,
per queue, per code) and kept; gauges that mirror state a component already holds (watch
counts, pending pods, pods per phase) are read only when scraped, by a collector callback.
The HTTP endpoint runs on the component's own event loop (no thread), so those callbacks
read the component's state without locks, and a scrape shows the loop's own health: a
stuck loop answers no scrape.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import inspect
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from kemu.util.httphead import read_request, respond
from kemu.util.listen import check_bindable

log = logging.getLogger(__name__)
# No `*_created` series beside every counter and histogram: Kubernetes' (Go) clients do not
# write them, and they double what a scrape carries. (prometheus_client's switch is global.)
disable_created_metrics()  # type: ignore[no-untyped-call]

# prometheus_client's (and client_golang's) default buckets, seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# client-go's workqueue buckets: 1 µs to 10 s by powers of ten.
WORKQUEUE_BUCKETS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


def new_registry() -> CollectorRegistry:
    """A registry for one component instance."""
    return CollectorRegistry(auto_describe=True)


class CallbackCollector(Collector):
    """A collector whose metrics a function builds at scrape time (on the event loop)."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def describe(self) -> Iterable[Metric]:
        """Nothing: registering must not collect (the state may not exist yet)."""
        return []

    def collect(self) -> Iterable[Metric]:
        return list(self._collect())


class LoopCounter:
    """A counter family updated only from the event loop, without locks: `child(values)`
    is a one-element list to add to. Its series are built at scrape time
    (`families()`); for paths where prometheus_client's locked children cost too much
    (a DNS cache hit is a few microseconds)."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self._cells: dict[tuple[str, ...], list[float]] = {}

    def child(self, values: tuple[str, ...]) -> list[float]:
        cell = self._cells.get(values)
        if cell is None:
            cell = self._cells[values] = [0.0]
        return cell

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, cell in self._cells.items():
            family.add_metric(values, cell[0])
        return family


class LoopHistogramChild:
    """One histogram series: `observe(seconds)` is a bisect and two additions."""

    __slots__ = ("_bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self._bounds, value)] += 1
        self.total += value


class LoopHistogram:
    """A histogram family updated only from the event loop, without locks (as LoopCounter)."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...],
                 buckets: tuple[float, ...]) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self.buckets = tuple(sorted(buckets))
        self._children: dict[tuple[str, ...], LoopHistogramChild] = {}

    def child(self, values: tuple[str, ...]) -> LoopHistogramChild:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = LoopHistogramChild(self.buckets)
        return child

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, child in self._children.items():
            cumulative, running = [], 0
            for bound, count in zip((*self.buckets, math.inf), child.counts, strict=True):
                running += count
                cumulative.append(("+Inf" if math.isinf(bound) else repr(bound), running))
            family.add_metric(values, cumulative, child.total)
        return family


def leader_status(name: str, is_leader: Callable[[], bool]) -> CallbackCollector:
    """client-go's `leader_election_master_status{name}`: 1 while this replica holds the
    Lease `name`, else 0."""
    def collect() -> list[Metric]:
        family = GaugeMetricFamily("leader_election_master_status", "Gauge of if the "
                                   "reporting system is master of the relevant lease, 0 "
                                   "indicates backup, 1 indicates master. 'name' is the "
                                   "string used to identify the lease.", labels=("name",))
        family.add_metric((name,), 1 if is_leader() else 0)
        return [family]
    return CallbackCollector(collect)


# ---- gRPC server --------------------------------------------------------------------------

_CODE_NAMES: dict[Any, str] = {}
for _c in grpc.StatusCode:
    _CODE_NAMES[_c] = _c.name
    _CODE_NAMES[_c.value[0]] = _c.name


def _code_name(context: grpc.aio.ServicerContext, default: str) -> str:
    """The status the servicer set on the context (set_code, abort), else `default`."""
    try:
        code = context.code()
    except Exception:  # an older grpc without ServicerContext.code()
        return default
    if code is None:
        return default
    return _CODE_NAMES.get(code, default)


def _failure_code(exc: BaseException, context: grpc.aio.ServicerContext) -> str:
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):  # the client went away
        return "CANCELLED"
    return _code_name(context, "UNKNOWN")


class _MethodMetrics:
    """One method's children: started, handling seconds, and handled per code (lazily)."""

    __slots__ = ("_handled", "_labels", "_started", "handled_family", "handling")

    def __init__(self, m: GrpcServerMetrics, grpc_type: str, service: str, method: str
                 ) -> None:
        self._labels = (grpc_type, service, method)
        self._started = m.started.child(self._labels)
        self.handling = m.handling.child(self._labels)
        self.handled_family = m.handled
        self._handled: dict[str, list[float]] = {}

    def started(self) -> None:
        self._started[0] += 1

    def finish(self, code: str, since: float) -> None:
        cell = self._handled.get(code)
        if cell is None:
            cell = self._handled[code] = self.handled_family.child((*self._labels, code))
        cell[0] += 1
        self.handling.observe(time.perf_counter() - since)


class GrpcServerMetrics(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """go-grpc-prometheus' server series for a grpc.aio server. Put it first among the
    interceptors, so that calls refused by later ones (authentication, rate limits,
    undecodable requests) are counted with their codes too. A grpc.aio server runs every
    call on its event loop, so the counts are loop-only (LoopCounter, LoopHistogram)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("grpc_type", "grpc_service", "grpc_method")
        self.started = LoopCounter("grpc_server_started", "RPCs started on the server.",
                                   labels)
        self.handled = LoopCounter("grpc_server_handled", "RPCs completed on the server, "
                                   "regardless of success or failure.", (*labels, "grpc_code"))
        self.handling = LoopHistogram("grpc_server_handling_seconds", "Response latency "
                                      "(seconds) of RPCs handled by the server.", labels,
                                      LATENCY_BUCKETS)
        registry.register(CallbackCollector(lambda: [
            self.started.family(), self.handled.family(), self.handling.family()]))
        # method -> (the handler as registered, its wrapped form)
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}
        # (method, type) -> its children: kept even when later interceptors hand out a new
        # handler per call (the apiserver's do), so only the wrapping is per call then
        self._methods: dict[tuple[str, str], _MethodMetrics] = {}

    async def intercept_service(
            self, continuation: Callable[[grpc.HandlerCallDetails],
                                         Awaitable[grpc.RpcMethodHandler]],
            handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is None or known[0] is not handler:
            known = self._wrapped[method] = (handler, self._wrap(method, handler))
        return known[1]

    def _children(self, full_method: str, grpc_type: str) -> _MethodMetrics:
        mm = self._methods.get((full_method, grpc_type))
        if mm is None:
            service, _, method = full_method.lstrip("/").rpartition("/")
            mm = self._methods[(full_method, grpc_type)] = _MethodMetrics(
                self, grpc_type, service, method)
        return mm

    def _wrap(self, full_method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        deserialize, serialize = handler.request_deserializer, handler.response_serializer
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(_measured(
                handler.unary_unary, self._children(full_method, "unary")),
                deserialize, serialize)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(_measured(
                handler.unary_stream, self._children(full_method, "server_stream")),
                deserialize, serialize)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(_measured(
                handler.stream_unary, self._children(full_method, "client_stream")),
                deserialize, serialize)
        return grpc.stream_stream_rpc_method_handler(_measured(
            handler.stream_stream, self._children(full_method, "bidi_stream")),
            deserialize, serialize)


def _measured(behaviour: Callable[..., Any], mm: _MethodMetrics) -> Callable[..., Any]:
    """`behaviour` counted and timed; an async generator stays one, a coroutine one."""
    if inspect.isasyncgenfunction(behaviour):
        async def generate(request: Any, context: grpc.aio.ServicerContext
                           ) -> AsyncIterator[Any]:
            mm.started()
            since = time.perf_counter()
            code = "OK"
            try:
                async for response in behaviour(request, context):
                    yield response
            except BaseException as e:
                code = _failure_code(e, context)
                raise
            finally:
                mm.finish(_code_name(context, "OK") if code == "OK" else code, since)
        return generate

    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        mm.started()
        since = time.perf_counter()
        code = "OK"
        try:
            return await behaviour(request, context)
        except BaseException as e:
            code = _failure_code(e, context)
            raise
        finally:
            mm.finish(_code_name(context, "OK") if code == "OK" else code, since)
    return call


# ---- work queues --------------------------------------------------------------------------


class WorkQueueMetrics:
    """One queue's series, as client-go's defaultQueueMetrics: `add` when a key becomes
    dirty, `get` when a worker takes it, `done` when the worker is finished, `retry` per
    rate-limited re-add. Timestamps are kept per key only while it waits or is worked on."""

    __slots__ = ("_added", "_adds", "_depth_dec", "_depth_inc", "_latency", "_retries",
                 "_started", "_work")

    def __init__(self, families: WorkQueueMetricsProvider, name: str) -> None:
        depth = families.depth.labels(name)
        self._depth_inc, self._depth_dec = depth.inc, depth.dec
        self._adds = families.adds.labels(name).inc
        self._latency = families.queue_duration.labels(name).observe
        self._work = families.work_duration.labels(name).observe
        self._retries = families.retries.labels(name).inc
        self._added: dict[Hashable, float] = {}
        self._started: dict[Hashable, float] = {}

    def add(self, key: Hashable) -> None:
        self._adds()
        self._depth_inc()
        if key not in self._added:
            self._added[key] = time.monotonic()

    def get(self, key: Hashable) -> None:
        self._depth_dec()
        now = time.monotonic()
        since = self._added.pop(key, None)
        if since is not None:
            self._latency(now - since)
        self._started[key] = now

    def done(self, key: Hashable) -> None:
        since = self._started.pop(key, None)
        if since is not None:
            self._work(time.monotonic() - since)

    def retry(self) -> None:
        self._retries()

    def in_progress(self) -> list[float]:
        """When each key being worked on was taken (time.monotonic())."""
        return list(self._started.values())


class WorkQueueMetricsProvider:
    """client-go's workqueue series in one registry; `for_queue(name)` per queue."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.depth = Gauge("workqueue_depth", "Current depth of workqueue", ("name",),
                           registry=registry)
        self.adds = Counter("workqueue_adds", "Total number of adds handled by workqueue",
                            ("name",), registry=registry)
        self.queue_duration = Histogram(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested.",
            ("name",), buckets=WORKQUEUE_BUCKETS, registry=registry)
        self.work_duration = Histogram(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes.",
            ("name",), buckets=WORKQUEUE_BUCKETS, registry=registry)
        self.retries = Counter("workqueue_retries", "Total number of retries handled by "
                               "workqueue", ("name",), registry=registry)
        self._queues: dict[str, WorkQueueMetrics] = {}
        registry.register(CallbackCollector(self._in_progress))

    def for_queue(self, name: str) -> WorkQueueMetrics:
        """The queue's metrics; its series exist (at zero) from now on."""
        queue = self._queues[name] = WorkQueueMetrics(self, name)
        return queue

    def _in_progress(self) -> list[Metric]:
        """client-go's stuck-worker gauges, from the keys being worked on at scrape time."""
        unfinished = GaugeMetricFamily(
            "workqueue_unfinished_work_seconds", "How many seconds of work has been done "
            "that is in progress and hasn't been observed by work_duration.", labels=("name",))
        longest = GaugeMetricFamily(
            "workqueue_longest_running_processor_seconds", "How many seconds has the longest "
            "running processor for workqueue been running.", labels=("name",))
        now = time.monotonic()
        for name, queue in self._queues.items():
            running = [now - since for since in queue.in_progress()]
            unfinished.add_metric((name,), sum(running))
            longest.add_metric((name,), max(running, default=0.0))
        return [unfinished, longest]


# ---- the HTTP endpoint ----------------------------------------------------------------------


@dataclass
class MetricsEndpoint:
    """A running /metrics endpoint; `stop()` closes it."""

    server: asyncio.Server
    registry: CollectorRegistry

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self.server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.wait_closed(), 1.0)


_MAX_HEAD = 16 * 1024


SampledRegistry = Callable[[], Awaitable[CollectorRegistry]]
"""A registry served on a path of its own, made current (sampled) before each scrape, as
the node agent's /metrics/resource."""


async def _answer(registry: CollectorRegistry, extra: Mapping[str, SampledRegistry],
                  reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One HTTP/1.x request, then close: GET /metrics (text or OpenMetrics) or one of the
    `extra` paths, /healthz; else 404."""
    try:
        request = await read_request(reader)
        if request is None:
            return
        head_only = request.method == "HEAD"
        encoder, ctype = choose_encoder(request.headers.get("accept", ""))
        if request.method not in ("GET", "HEAD"):
            await respond(writer, 405, b"GET only\n", content_type="text/plain")
        elif request.path in ("/metrics", "/"):
            await respond(writer, 200, encoder(registry), content_type=ctype,
                          head_only=head_only)
        elif request.path in extra:
            sampled = await extra[request.path]()
            await respond(writer, 200, encoder(sampled), content_type=ctype,
                          head_only=head_only)
        elif request.path in ("/healthz", "/livez"):
            await respond(writer, 200, b"ok\n", content_type="text/plain",
                          head_only=head_only)
        else:
            paths = " or ".join(["/metrics", *extra])
            await respond(writer, 404, f"not found: try {paths}\n".encode(),
                          content_type="text/plain", head_only=head_only)
    except (ConnectionError, UnicodeError):
        pass
    except Exception:
        log.exception("metrics: scrape failed")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def serve_metrics(listen: str, registry: CollectorRegistry, *,
                        extra: Mapping[str, SampledRegistry] | None = None
                        ) -> MetricsEndpoint:
    """Serve `registry` at http://listen/metrics on the running loop (port 0: a free one),
    and each of `extra` on its path. OSError with one line when the address cannot be
    bound."""
    paths = dict(extra or {})
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    check_bindable(listen)
    try:
        server = await asyncio.start_server(
            lambda r, w: _answer(registry, paths, r, w), host, int(port), limit=_MAX_HEAD,
            reuse_address=True)
    except OSError as e:
        raise OSError(f"cannot listen on {listen}: {e.strerror or e}") from None
    endpoint = MetricsEndpoint(server, registry)
    log.info("metrics: serving http://%s:%d%s", host, endpoint.port,
             " and ".join(["/metrics", *paths]))
    return endpoint


async def maybe_serve_metrics(listen: str | None, registry: CollectorRegistry
                              ) -> MetricsEndpoint | None:
    """`serve_metrics` when `--metrics-listen` was given, else None."""
    return None if listen is None else await serve_metrics(listen, registry)
