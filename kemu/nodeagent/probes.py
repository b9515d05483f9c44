"""Liveness, readiness and startup probes, as the kubelet's prober workers run them.

One asyncio task per (pod, container, probe kind) probes one container instance (a new
container id gets a new worker): it waits initialDelaySeconds from the container's start,
then probes every periodSeconds with timeoutSeconds. The result only flips after
successThreshold consecutive successes or failureThreshold consecutive failures
(`ProbeState`, pure). Readiness starts as failure, liveness as success, startup as unknown; liveness
and readiness wait until the startup probe has succeeded. A liveness or startup failure is
reported once and the worker stops: the pod worker kills the container and the restart
policy decides what comes next.

httpGet and tcpSocket reach the pod IP from the host (pod IPs on the node's Docker bridge
are routable from the node); exec probes run through `docker exec`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kemu.nodeagent.clock import Clock
from kemu.nodeagent.runtime import ContainerInfo, ContainerRuntime

log = logging.getLogger(__name__)
LIVENESS, READINESS, STARTUP = "Liveness", "Readiness", "Startup"
_FIELD = {LIVENESS: "liveness_probe", READINESS: "readiness_probe", STARTUP: "startup_probe"}
USER_AGENT = "kube-probe/1.30"


@dataclass
class ProbeState:
    """Threshold logic of one probe: the current result and the run of equal outcomes."""

    success_threshold: int = 1
    failure_threshold: int = 3
    result: bool | None = False
    _last: bool | None = None
    _run: int = 0

    def observe(self, ok: bool) -> bool:
        """Record one probe outcome; True when the result changed."""
        if ok == self._last:
            self._run += 1
        else:
            self._last, self._run = ok, 1
        needed = self.success_threshold if ok else self.failure_threshold
        if self._run < needed or self.result == ok:
            return False
        self.result = ok
        return True


def resolve_port(port: Any, container: Any) -> int:
    """An int-or-string probe port: a number, or the name of one of the container's ports."""
    kind = port.WhichOneof("kind") if port is not None else None
    if kind == "number_value":
        return int(port.number_value)
    if kind == "string_value":
        text = port.string_value
        if text.isdigit():
            return int(text)
        for p in container.ports:
            if p.name == text:
                return int(p.container_port)
        raise ValueError(f"port {text!r} not found in the container's ports")
    raise ValueError("probe has no port")


async def http_probe(host: str, port: int, path: str, *, scheme: str = "HTTP",
                     headers: Mapping[str, str] | None = None, timeout: float = 1.0
                     ) -> tuple[bool, str]:
    """GET the URL; success for a status in [200, 400), as the kubelet counts it."""
    ctx = None
    if scheme.upper() == "HTTPS":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    hdrs = {"Host": f"{host}:{port}", "User-Agent": USER_AGENT, "Accept": "*/*",
            "Connection": "close", **(headers or {})}
    request = f"GET {path or '/'} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, ssl=ctx)
            writer.write(request.encode())
            await writer.drain()
            line = await reader.readline()
    except TimeoutError:
        return False, (f'Get "{scheme.lower()}://{host}:{port}{path}": context deadline '
                       "exceeded (Client.Timeout exceeded while awaiting headers)")
    except OSError as e:
        return False, f'Get "{scheme.lower()}://{host}:{port}{path}": dial tcp {host}:{port}: ' \
                      f"connect: {e.strerror or e}"
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
    parts = line.decode(errors="replace").split()
    if len(parts) < 2 or not parts[1].isdigit():
        return False, f"HTTP probe failed: malformed response {line[:80]!r}"
    code = int(parts[1])
    if 200 <= code < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {code}"


async def tcp_probe(host: str, port: int, timeout: float = 1.0) -> tuple[bool, str]:
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return False, f"dial tcp {host}:{port}: i/o timeout"
    except OSError as e:
        return False, f"dial tcp {host}:{port}: connect: {e.strerror or e}"
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True, ""


async def grpc_probe(host: str, port: int, service: str, timeout: float) -> tuple[bool, str]:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(f"{host}:{port}") as ch:
        try:
            resp = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.aio.AioRpcError as e:
            return False, f"failed to connect service {host}:{port}: {e.details()}"
    if resp.status == health_pb2.HealthCheckResponse.SERVING:
        return True, ""
    return False, f"service unhealthy (responded with {resp.status})"


async def run_probe(runtime: ContainerRuntime, probe: Any, container: Any, container_id: str,
                    pod_ip: str) -> tuple[bool, str]:
    """One probe attempt: (success, failure message)."""
    timeout = float(probe.timeout_seconds or 1)
    which = probe.WhichOneof("handler")
    try:
        if which == "exec":
            try:
                code, out = await runtime.exec(container_id, list(probe.exec.command), timeout)
            except TimeoutError:
                return False, f"command timed out: \"{' '.join(probe.exec.command)}\" " \
                              f"timed out after {timeout:.0f}s"
            if code == 0:
                return True, ""
            text = out.decode(errors="replace").strip()
            return False, text or f"command {list(probe.exec.command)} exited with {code}"
        if which == "http_get":
            h = probe.http_get
            port = resolve_port(h.port, container)
            return await http_probe(h.host or pod_ip, port, h.path or "/",
                                    scheme=h.scheme or "HTTP",
                                    headers={x.name: x.value for x in h.http_headers},
                                    timeout=timeout)
        if which == "tcp_socket":
            t = probe.tcp_socket
            return await tcp_probe(t.host or pod_ip, resolve_port(t.port, container), timeout)
        if which == "grpc":
            g = probe.grpc
            return await grpc_probe(pod_ip, g.port, g.service, timeout)
    except ValueError as e:
        return False, str(e)
    except Exception as e:  # a runtime error is a failed probe, not a dead worker
        return False, str(e)
    return False, f"probe has no handler ({which})"


@dataclass
class _Worker:
    kind: str
    container_id: str
    state: ProbeState
    task: asyncio.Task[None] | None = None


@dataclass
class ProbeManager:
    """Probe workers of every pod; results are looked up by (pod uid, container, kind)."""

    runtime: ContainerRuntime
    clock: Clock
    on_change: Callable[[str], None]  # pod key
    on_failure: Callable[[Any, str, str], None]  # (pod, container, message): Unhealthy
    _workers: dict[tuple[str, str, str], _Worker] = field(default_factory=dict)

    def sync(self, pod: Any, key: str, running: Mapping[str, ContainerInfo], pod_ip: str,
             seed: Mapping[str, tuple[str, bool, bool]] | None = None) -> None:
        """Start workers for the pod's running containers, stop those of others. `seed`:
        container -> (container id, ready, started) as last reported in the pod status."""
        uid = pod.metadata.uid
        wanted: set[tuple[str, str, str]] = set()
        for c in pod.spec.containers:
            info = running.get(c.name)
            if info is None:
                continue
            for kind, fieldname in _FIELD.items():
                if not c.HasField(fieldname):
                    continue
                wkey = (uid, c.name, kind)
                wanted.add(wkey)
                w = self._workers.get(wkey)
                if w is not None and w.container_id == info.id:
                    continue
                if w is not None and w.task is not None:
                    w.task.cancel()
                probe = getattr(c, fieldname)
                initial: bool | None = {LIVENESS: True, READINESS: False, STARTUP: None}[kind]
                # After an agent restart, results last reported for this very container
                # carry over, so adopted pods do not flap to NotReady.
                seeded = (seed or {}).get(c.name)
                if seeded is not None and seeded[0] == info.id:
                    if kind == READINESS:
                        initial = seeded[1]
                    elif kind == STARTUP and seeded[2]:
                        initial = True
                state = ProbeState(success_threshold=probe.success_threshold or 1,
                                   failure_threshold=probe.failure_threshold or 3,
                                   result=initial)
                w = _Worker(kind, info.id, state)
                self._workers[wkey] = w
                w.task = asyncio.create_task(
                    self._run(w, pod, key, c, info, pod_ip, probe),
                    name=f"probe-{kind}-{pod.metadata.name}-{c.name}")
        for wkey in [k for k in self._workers if k[0] == uid and k not in wanted]:
            self._stop(wkey)

    def forget(self, uid: str) -> None:
        for wkey in [k for k in self._workers if k[0] == uid]:
            self._stop(wkey)

    def _stop(self, wkey: tuple[str, str, str]) -> None:
        w = self._workers.pop(wkey)
        if w.task is not None:
            w.task.cancel()

    def result(self, uid: str, container: str, kind: str, container_id: str) -> bool | None:
        """The probe's result for that container instance; None when it has no such probe."""
        w = self._workers.get((uid, container, kind))
        if w is None or w.container_id != container_id:
            return None
        return w.state.result

    def has_probe(self, pod: Any, container: str, kind: str) -> bool:
        c = next((c for c in pod.spec.containers if c.name == container), None)
        return c is not None and c.HasField(_FIELD[kind])

    async def stop_all(self) -> None:
        tasks = [w.task for w in self._workers.values() if w.task is not None]
        self._workers.clear()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, w: _Worker, pod: Any, key: str, container: Any, info: ContainerInfo,
                   pod_ip: str, probe: Any) -> None:
        uid = pod.metadata.uid
        started: datetime = info.started_at or self.clock.now()
        delay = float(probe.initial_delay_seconds) - (self.clock.now() - started).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)
        period = float(probe.period_seconds or 10)
        while True:
            if w.kind != STARTUP:
                gate = self._workers.get((uid, container.name, STARTUP))
                if gate is not None and gate.container_id == w.container_id \
                        and gate.state.result is not True:
                    await asyncio.sleep(period)
                    continue
            ok, message = await run_probe(self.runtime, probe, container, w.container_id,
                                          pod_ip)
            if not ok:
                self.on_failure(pod, container.name, f"{w.kind} probe failed: {message}")
            changed = w.state.observe(ok)
            if changed:
                log.info("probe %s %s/%s %s: %s", w.kind, pod.metadata.namespace,
                         container.name, pod.metadata.name, "success" if ok else "failure")
                self.on_change(key)
            if w.kind == STARTUP and w.state.result is True:
                return  # a startup probe stops once it has succeeded
            if w.kind in (LIVENESS, STARTUP) and w.state.result is False:
                return  # the pod worker restarts the container; a new worker follows
            await asyncio.sleep(period)


async def run_hook(runtime: ContainerRuntime, hook: Any, container: Any, container_id: str,
                   pod_ip: str, timeout: float) -> tuple[bool, str]:
    """A lifecycle hook (postStart, preStop): exec, httpGet or sleep, within `timeout`."""
    which = hook.WhichOneof("handler")
    try:
        if which == "sleep":
            await asyncio.sleep(min(float(hook.sleep.seconds), timeout))
            return True, ""
        if which == "exec":
            code, out = await runtime.exec(container_id, list(hook.exec.command), timeout)
            if code == 0:
                return True, ""
            return False, f"command {list(hook.exec.command)!r} exited with {code}: " \
                          f"{out.decode(errors='replace').strip()}"
        if which == "http_get":
            h = hook.http_get
            return await http_probe(h.host or pod_ip, resolve_port(h.port, container),
                                    h.path or "/", scheme=h.scheme or "HTTP",
                                    headers={x.name: x.value for x in h.http_headers},
                                    timeout=timeout)
        if which == "tcp_socket":
            t = hook.tcp_socket
            return await tcp_probe(t.host or pod_ip, resolve_port(t.port, container), timeout)
    except TimeoutError:
        return False, f"hook timed out after {timeout:.0f}s"
    except Exception as e:
        return False, str(e)
    return True, ""
