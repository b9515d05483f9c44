"""Start kemu's store and a real etcd as processes, and drive them with etcdctl.

Every wait polls a condition against a deadline; processes are stopped by pid.
Only loopback addresses are used.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from kemu.api.etcd import rpc_pb2, rpc_pb2_grpc

REPO = Path(__file__).resolve().parents[3]
ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(cond: Any, *, timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll cond() until it returns something truthy, or fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = cond()
            if result:
                return result
        except Exception as e:
            last_error = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last_error})")


def grpc_ready(endpoint: str) -> bool:
    with grpc.insecure_channel(endpoint) as ch:
        rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"health"), timeout=1.0)
    return True


@dataclass
class Server:
    """A running store process (kemu or etcd)."""

    kind: str
    endpoint: str
    data_dir: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    argv: list[str] = field(default_factory=list)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=timeout)
        return self.proc.returncode

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def start_kemu(
    data_dir: Path, *, port: int | None = None, extra: list[str] | None = None
) -> Server:
    port = port or free_port()
    endpoint = f"127.0.0.1:{port}"
    argv = [
        sys.executable,
        "-m",
        "kemu.services.store",
        "--listen",
        endpoint,
        "--data-dir",
        str(data_dir),
        "--progress-notify-interval",
        "1",
        "--insecure",
        *(extra or []),
    ]
    return _start("kemu", endpoint, data_dir, argv)


def start_etcd(data_dir: Path) -> Server:
    port, peer = free_port(), free_port()
    endpoint = f"127.0.0.1:{port}"
    argv = [
        ETCD,
        "--data-dir",
        str(data_dir),
        "--name",
        "default",
        "--listen-client-urls",
        f"http://{endpoint}",
        "--advertise-client-urls",
        f"http://{endpoint}",
        "--listen-peer-urls",
        f"http://127.0.0.1:{peer}",
        "--initial-advertise-peer-urls",
        f"http://127.0.0.1:{peer}",
        "--initial-cluster",
        f"default=http://127.0.0.1:{peer}",
        "--experimental-watch-progress-notify-interval",
        "1s",
    ]
    return _start("etcd", endpoint, data_dir, argv)


def _start(kind: str, endpoint: str, data_dir: Path, argv: list[str]) -> Server:
    log_path = data_dir.parent / f"{data_dir.name}-{kind}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, stdin=subprocess.DEVNULL
        )
    server = Server(kind, endpoint, data_dir, proc, log_path, argv)
    try:
        wait_until(
            lambda: proc.poll() is None and grpc_ready(endpoint),
            timeout=20,
            what=f"{kind} on {endpoint}",
        )
    except AssertionError:
        server.stop(signal.SIGKILL)
        raise AssertionError(f"{kind} did not become ready:\n{server.log()}") from None
    return server


def etcdctl(
    endpoint: str, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ETCDCTL_API": "3"}
    res = subprocess.run(
        [ETCDCTL, "--endpoints", endpoint, "--dial-timeout", "5s", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if check and res.returncode != 0:
        raise AssertionError(f"etcdctl {' '.join(args)} failed: {res.stderr}")
    return res


def etcdctl_json(endpoint: str, *args: str, stdin: str | None = None) -> Any:
    return json.loads(etcdctl(endpoint, *args, "-w", "json", stdin=stdin).stdout)


class LineReader:
    """A long-running process whose stdout lines are read with deadlines."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def read(self, n: int, *, timeout: float = 10.0) -> list[str]:
        """The next n lines; fails if they do not all arrive before the deadline."""
        deadline = time.monotonic() + timeout
        out: list[str] = []
        while len(out) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out: got {out!r}, wanted {n} lines")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"process ended after {out!r}")
            out.append(line)
        return out

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._thread.join(timeout=5)


def etcdctl_stream(endpoint: str, *args: str) -> LineReader:
    env = {**os.environ, "ETCDCTL_API": "3"}
    return LineReader([ETCDCTL, "--endpoints", endpoint, *args], env=env)


_IDS = ("cluster_id", "member_id", "raft_term", "ID", "id")


def normalize(obj: Any) -> Any:
    """Drop per-cluster identities so kemu's and etcd's JSON compare equal."""
    if isinstance(obj, dict):
        return {k: "<id>" if k in _IDS else normalize(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [normalize(v) for v in obj]
    return obj
