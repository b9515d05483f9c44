"""Probe result logic (thresholds), port resolution, and the probe handlers against
loopback servers and a fake runtime."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kemu.api import manifest
from kemu.nodeagent import probes
from kemu.nodeagent.probes import ProbeState


@pytest.mark.parametrize(("initial", "success", "failure", "outcomes", "results"), [
    pytest.param(False, 1, 3, [True], [True], id="readiness-first-success"),
    pytest.param(True, 1, 3, [False, False, False], [True, True, False],
                 id="liveness-three-failures"),
    pytest.param(True, 1, 3, [False, False, True, False, False], [True] * 5,
                 id="failures-not-consecutive"),
    pytest.param(False, 2, 1, [True, False, True, True], [False, False, False, True],
                 id="success-threshold-2"),
    pytest.param(None, 1, 2, [False, False], [None, False], id="startup-unknown-then-failed"),
    pytest.param(None, 1, 2, [False, True], [None, True], id="startup-succeeds"),
])
def test_probe_state(initial: bool | None, success: int, failure: int, outcomes: list[bool],
                     results: list[bool | None]) -> None:
    st = ProbeState(success_threshold=success, failure_threshold=failure, result=initial)
    got = []
    for ok in outcomes:
        st.observe(ok)
        got.append(st.result)
    assert got == results


def test_observe_reports_changes_only() -> None:
    st = ProbeState(success_threshold=1, failure_threshold=1, result=False)
    assert [st.observe(ok) for ok in (True, True, False, False, True)] == [
        True, False, True, False, True]


def container(**kw: Any) -> Any:
    return manifest.from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                               "spec": {"containers": [{"name": "c", "image": "i", **kw}]}}
                              ).pod.spec.containers[0]


@pytest.mark.parametrize(("port", "expected"), [
    pytest.param(8080, 8080, id="number"), pytest.param("9090", 9090, id="digits"),
    pytest.param("http", 8080, id="named"), pytest.param("metrics", 9100, id="named-2"),
])
def test_resolve_port(port: Any, expected: int) -> None:
    c = container(ports=[{"name": "http", "containerPort": 8080},
                         {"name": "metrics", "containerPort": 9100}],
                  readinessProbe={"tcpSocket": {"port": port}})
    assert probes.resolve_port(c.readiness_probe.tcp_socket.port, c) == expected


def test_resolve_unknown_named_port() -> None:
    c = container(readinessProbe={"tcpSocket": {"port": "nope"}})
    with pytest.raises(ValueError, match="'nope' not found"):
        probes.resolve_port(c.readiness_probe.tcp_socket.port, c)


async def _server(status: int) -> tuple[asyncio.Server, int, list[bytes]]:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


@pytest.mark.parametrize(("status", "ok"), [(200, True), (302, True), (399, True),
                                            (404, False), (500, False)])
async def test_http_probe_status_codes(status: int, ok: bool) -> None:
    server, port, seen = await _server(status)
    async with server:
        result, message = await probes.http_probe("127.0.0.1", port, "/healthz",
                                                  headers={"X-Probe": "1"})
    assert result is ok
    assert seen[0].startswith(b"GET /healthz HTTP/1.1\r\n")
    assert b"X-Probe: 1" in seen[0] and b"User-Agent: kube-probe/" in seen[0]
    if not ok:
        assert message == f"HTTP probe failed with statuscode: {status}"


async def test_tcp_and_http_probe_connection_refused() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        assert (await probes.tcp_probe("127.0.0.1", port))[0] is True
    ok, msg = await probes.tcp_probe("127.0.0.1", port)
    assert not ok and msg.startswith(f"dial tcp 127.0.0.1:{port}: connect:")
    ok, msg = await probes.http_probe("127.0.0.1", port, "/")
    assert not ok and "connect:" in msg


async def test_http_probe_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    async with server:
        ok, msg = await probes.http_probe("127.0.0.1", server.sockets[0].getsockname()[1], "/",
                                          timeout=0.2)
    assert not ok and "context deadline exceeded" in msg


class ExecRuntime:
    """Only what an exec probe needs from the runtime."""

    def __init__(self, code: int, output: bytes = b"", delay: float = 0) -> None:
        self.code, self.output, self.delay = code, output, delay
        self.calls: list[tuple[str, list[str]]] = []

    async def exec(self, cid: str, command: list[str], timeout: float) -> tuple[int, bytes]:
        self.calls.append((cid, list(command)))
        async with asyncio.timeout(timeout):
            await asyncio.sleep(self.delay)
        return self.code, self.output

    def logs(self, *a: Any, **k: Any) -> AsyncIterator[bytes]:
        raise NotImplementedError


@pytest.mark.parametrize(("rt", "ok", "message"), [
    pytest.param(ExecRuntime(0), True, "", id="exit-0"),
    pytest.param(ExecRuntime(1, b"not healthy\n"), False, "not healthy", id="exit-1"),
    pytest.param(ExecRuntime(0, delay=5), False, "timed out", id="timeout"),
])
async def test_exec_probe(rt: ExecRuntime, ok: bool, message: str) -> None:
    c = container(livenessProbe={"exec": {"command": ["cat", "/tmp/x"]}, "timeoutSeconds": 1})
    if rt.delay:
        c.liveness_probe.timeout_seconds = 1
    got_ok, got_msg = await probes.run_probe(rt, c.liveness_probe, c, "cid", "10.0.0.1")  # type: ignore[arg-type]
    assert got_ok is ok and message in got_msg
    assert rt.calls == [("cid", ["cat", "/tmp/x"])]


async def test_manager_seeds_results_after_an_agent_restart() -> None:
    from kemu.nodeagent.clock import FakeClock
    from kemu.nodeagent.runtime import ContainerInfo

    p = manifest.from_dict({"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
                            "spec": {"containers": [{
                                "name": "app", "image": "i",
                                "readinessProbe": {"exec": {"command": ["true"]},
                                                   "periodSeconds": 60},
                                "startupProbe": {"exec": {"command": ["true"]},
                                                 "periodSeconds": 60}}]}}).pod
    info = ContainerInfo(id="c1", name="c1", labels={}, state="running")
    changes: list[str] = []
    mgr = probes.ProbeManager(ExecRuntime(1), FakeClock(), on_change=changes.append,  # type: ignore[arg-type]
                              on_failure=lambda *a: None)
    mgr.sync(p, "ns/p", {"app": info}, "10.0.0.1", {"app": ("c1", True, True)})
    assert mgr.result("u1", "app", probes.READINESS, "c1") is True
    assert mgr.result("u1", "app", probes.STARTUP, "c1") is True
    mgr.forget("u1")
    mgr.sync(p, "ns/p", {"app": info}, "10.0.0.1", {"app": ("other", True, True)})
    assert mgr.result("u1", "app", probes.READINESS, "c1") is False
    assert mgr.result("u1", "app", probes.STARTUP, "c1") is None
    assert mgr.result("u1", "app", probes.READINESS, "c2") is None  # another instance
    await mgr.stop_all()
