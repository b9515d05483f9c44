"""kemu.util.metrics: the gRPC interceptor's series per method and code, the work-queue
series, and the HTTP endpoint scraped with urllib and parsed with prometheus_client."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from kemu.client.workqueue import WorkQueue
from kemu.util.argtypes import OneLineParser
from kemu.util.metrics import (
    CallbackCollector,
    GrpcServerMetrics,
    WorkQueueMetricsProvider,
    new_registry,
    serve_metrics,
)
from kemu.util.metricsflag import add_metrics_flag

SERVICE = "test.Echo"


async def _ok(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


async def _not_found(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    raise AssertionError("abort returns")


async def _set_code(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    context.set_code(grpc.StatusCode.ALREADY_EXISTS)
    return b""


async def _boom(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise ValueError("a bug")


async def _stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    for i in range(3):
        yield bytes([i])


class _FreshHandlers(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Hands out a new handler per call, as the apiserver's around-interceptors do."""

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            handler.unary_unary, handler.request_deserializer, handler.response_serializer)


def _server(registry: CollectorRegistry, *inner: grpc.aio.ServerInterceptor
            ) -> grpc.aio.Server:
    metrics = GrpcServerMetrics(registry)
    server = grpc.aio.server(interceptors=[metrics, *inner])
    server.metrics = metrics  # type: ignore[attr-defined]
    handlers = {name: grpc.unary_unary_rpc_method_handler(fn) for name, fn in (
        ("Ok", _ok), ("NotFound", _not_found), ("SetCode", _set_code), ("Boom", _boom))}
    handlers["Stream"] = grpc.unary_stream_rpc_method_handler(_stream)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    return server


def _handled(registry: CollectorRegistry, method: str, code: str, kind: str = "unary"
             ) -> float | None:
    return registry.get_sample_value("grpc_server_handled_total", {
        "grpc_type": kind, "grpc_service": SERVICE, "grpc_method": method, "grpc_code": code})


@pytest.mark.parametrize("inner", [
    pytest.param((), id="stable-handlers"),
    pytest.param((_FreshHandlers(),), id="a-new-handler-per-call"),
])
async def test_grpc_series_per_method_and_code(
        inner: tuple[grpc.aio.ServerInterceptor, ...]) -> None:
    registry = new_registry()
    server = _server(registry, *inner)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            ok = ch.unary_unary(f"/{SERVICE}/Ok")
            for _ in range(3):
                assert await ok(b"x") == b"x"
            for method, code in (("NotFound", grpc.StatusCode.NOT_FOUND),
                                 ("SetCode", grpc.StatusCode.ALREADY_EXISTS),
                                 ("Boom", grpc.StatusCode.UNKNOWN)):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await ch.unary_unary(f"/{SERVICE}/{method}")(b"")
                assert err.value.code() == code
            got = [r async for r in ch.unary_stream(f"/{SERVICE}/Stream")(b"")]
            assert got == [b"\x00", b"\x01", b"\x02"]
    finally:
        await server.stop(None)
    assert _handled(registry, "Ok", "OK") == 3
    assert _handled(registry, "NotFound", "NOT_FOUND") == 1
    assert _handled(registry, "SetCode", "ALREADY_EXISTS") == 1
    assert _handled(registry, "Boom", "UNKNOWN") == 1
    assert _handled(registry, "Stream", "OK", "server_stream") == 1
    labels = {"grpc_type": "unary", "grpc_service": SERVICE, "grpc_method": "Ok"}
    assert registry.get_sample_value("grpc_server_started_total", labels) == 3
    assert registry.get_sample_value("grpc_server_handling_seconds_count", labels) == 3
    assert registry.get_sample_value("grpc_server_handling_seconds_sum", labels) > 0
    # children made once per method, however often the handler underneath is new
    assert len(server.metrics._methods) == 5  # type: ignore[attr-defined]


async def test_workqueue_series() -> None:
    registry = new_registry()
    queue: WorkQueue[str] = WorkQueue(
        base_delay=0.001, metrics=WorkQueueMetricsProvider(registry).for_queue("demo"))

    def value(name: str) -> float | None:
        return registry.get_sample_value(name, {"name": "demo"})

    assert value("workqueue_depth") == 0
    queue.add("a")
    queue.add("a")  # de-duplicated: one add
    queue.add("b")
    assert value("workqueue_adds_total") == 2
    assert value("workqueue_depth") == 2
    key = await queue.get()
    assert value("workqueue_depth") == 1
    assert value("workqueue_queue_duration_seconds_count") == 1
    queue.add_rate_limited(key)
    queue.done(key)
    assert value("workqueue_retries_total") == 1
    assert value("workqueue_work_duration_seconds_count") == 1
    assert value("workqueue_longest_running_processor_seconds") == 0  # nothing in progress
    second = await queue.get()
    assert (value("workqueue_unfinished_work_seconds") or 0) > 0  # since the get
    assert (value("workqueue_longest_running_processor_seconds") or 0) > 0
    queue.done(second)
    async with asyncio.timeout(5):
        while value("workqueue_adds_total") != 3:  # the retry's add, after its back-off
            await asyncio.sleep(0.001)
    await queue.shut_down()


def _scrape(url: str, accept: str = "") -> tuple[int, str, str]:
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


async def test_endpoint_serves_the_registry_and_collects_at_scrape_time() -> None:
    registry = new_registry()
    Gauge("demo_static", "a gauge", registry=registry).set(7)
    calls = []

    def collect() -> list[GaugeMetricFamily]:
        calls.append(1)
        return [GaugeMetricFamily("demo_scraped", "built per scrape", value=len(calls))]
    registry.register(CallbackCollector(collect))
    endpoint = await serve_metrics("127.0.0.1:0", registry)
    url = f"http://127.0.0.1:{endpoint.port}"
    try:
        status, ctype, body = await asyncio.to_thread(_scrape, f"{url}/metrics")
        assert status == 200 and ctype.startswith("text/plain")
        values = {s.name: s.value for f in text_string_to_metric_families(body)
                  for s in f.samples}
        assert values["demo_static"] == 7
        assert values["demo_scraped"] == len(calls) >= 1
        status, ctype, body = await asyncio.to_thread(
            _scrape, f"{url}/metrics", "application/openmetrics-text; version=1.0.0")
        assert status == 200 and ctype.startswith("application/openmetrics-text")
        assert body.endswith("# EOF\n")
        assert (await asyncio.to_thread(_scrape, f"{url}/nothing"))[0] == 404
    finally:
        await endpoint.stop()


async def test_endpoint_refuses_a_taken_port_in_one_line() -> None:
    endpoint = await serve_metrics("127.0.0.1:0", new_registry())
    try:
        with pytest.raises(OSError, match=rf"cannot listen on 127.0.0.1:{endpoint.port}"):
            await serve_metrics(f"127.0.0.1:{endpoint.port}", new_registry())
    finally:
        await endpoint.stop()


@pytest.mark.parametrize(("argv", "want"), [
    pytest.param([], None, id="off-by-default"),
    pytest.param(["--metrics-listen", "127.0.0.1:9100"], "127.0.0.1:9100", id="host-port"),
])
def test_flag(argv: list[str], want: str | None) -> None:
    parser = OneLineParser(prog="x")
    add_metrics_flag(parser)
    assert parser.parse_args(argv).metrics_listen == want


def test_flag_rejects_a_bare_port(capsys: pytest.CaptureFixture[str]) -> None:
    parser = OneLineParser(prog="x")
    add_metrics_flag(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--metrics-listen", "9100"])
    assert "expected HOST:PORT" in capsys.readouterr().err
