"""Start and stop the real processes tests run against: kemu store, kemu apiserver, etcd.

Every process is started with its own free loopback port and temporary directory, waited
for with a deadline (grpc health, or a TCP connect for etcd), and killed by pid at the end.
Servers serve plaintext with `--insecure` unless a test gives them TLS flags (`tls=`: how
the health probe dials them then).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kemu.util.tls import ClientTLS, secure_channel

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
ETCD = "/usr/bin/etcd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: object, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `predicate()` until it is truthy or the deadline passes (then fail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def grpc_serving(address: str, tls: ClientTLS | None = None) -> bool:
    with (secure_channel(address, tls) if tls else grpc.insecure_channel(address)) as ch:
        try:
            resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(),
                                                       timeout=0.5)
        except grpc.RpcError:
            return False
    return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)


def tcp_open(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=0.3):
        return True
    return False


@dataclass
class Proc:
    """A started process with its log file."""

    name: str
    args: list[str]
    log: Path
    address: str
    popen: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    # How the readiness probe dials a server that serves TLS.
    tls: ClientTLS | None = None

    def start(self) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as f:
            self.popen = subprocess.Popen(self.args, stdout=f, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, cwd=ROOT,
                                          env={**os.environ, **self.env},
                                          start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_ready(self, timeout: float = 30.0, *, check: str = "grpc") -> Proc:
        def probe(address: str) -> bool:
            return grpc_serving(address, self.tls) if check == "grpc" else tcp_open(address)

        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited early:\n{self.tail()}")
            # Alive after the probe too: a stranger on the same port must not pass for us.
            return probe(self.address) and self.alive()
        wait_for(ready, timeout, f"{self.name} at {self.address}")
        return self

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def kill9(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            assert self.popen is not None
            self.popen.wait(timeout=10)

    def stop(self, grace: float = 10.0) -> None:
        if not self.alive():
            return
        assert self.popen is not None
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill9()


def _security(extra: tuple[str, ...], tls: ClientTLS | None) -> tuple[str, ...]:
    """`--insecure` unless the server is given TLS (or the test chose itself)."""
    chosen = tls is not None or any(a in extra for a in (
        "--insecure", "--tls-cert-file", "--cert-file"))
    return extra if chosen else ("--insecure", *extra)


def kemu_store(tmp: Path, *, port: int | None = None, name: str = "store",
               extra: tuple[str, ...] = (), tls: ClientTLS | None = None) -> Proc:
    address = f"127.0.0.1:{port or free_port()}"
    return Proc(name, [PYTHON, "-m", "kemu.cli.kemu_main", "store", "--listen", address,
                       "--data-dir", str(tmp / f"{name}-data"), *_security(extra, tls)],
                tmp / f"{name}.log", address, tls=tls)


def kemu_apiserver(tmp: Path, store: str, *, port: int | None = None,
                   name: str = "apiserver", extra: tuple[str, ...] = (),
                   tls: ClientTLS | None = None) -> Proc:
    address = f"127.0.0.1:{port or free_port()}"
    return Proc(name, [PYTHON, "-m", "kemu.cli.kemu_main", "apiserver", "--listen", address,
                       "--store", store, *_security(extra, tls)], tmp / f"{name}.log",
                address, tls=tls)


def etcd(tmp: Path, *, name: str = "etcd") -> Proc:
    client, peer = free_port(), free_port()
    address = f"127.0.0.1:{client}"
    args = [ETCD, "--name", "default", "--data-dir", str(tmp / f"{name}-data"),
            "--listen-client-urls", f"http://{address}", "--advertise-client-urls",
            f"http://{address}", "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"default=http://127.0.0.1:{peer}",
            "--log-level", "warn", "--logger", "zap"]
    return Proc(name, args, tmp / f"{name}.log", address)


@contextlib.contextmanager
def running(*procs: Proc, check: str = "grpc") -> Iterator[None]:
    """Start processes in order, wait for each, and stop them all (reverse order) after."""
    started: list[Proc] = []
    try:
        for p in procs:
            started.append(p.start())
            p.wait_ready(check="tcp" if p.args[0] == ETCD else check)
        yield
    finally:
        for p in reversed(started):
            p.stop()
