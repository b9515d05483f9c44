"""Shared by the scale benchmarks (bench_scheduler.py, bench_memory.py): a control plane
of real processes on loopback, `kemu simulate nodes` for the nodes, peak RSS sampling of
every process, and the results file.

The apiserver runs with `--max-requests-per-second 0`: every process here shares one IP,
and the per-client limit (1,000/s by default) is not what these benchmarks measure. The
scheduler and controller manager run with `--leader-elect=false`: one replica each, and a
Lease renewal late on a loaded machine would end the run (they exit on a lost Lease).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kemu.client.aio import AsyncClient  # noqa: E402
from tests.support import processes  # noqa: E402

MB = 1024 * 1024


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, 0 once it is gone."""
    try:
        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    except psutil.Error:
        return 0.0


def rss_of(pid: int) -> int:
    """Resident memory of a process and its children, bytes (0 once it is gone)."""
    try:
        proc = psutil.Process(pid)
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return int(total)
    except psutil.Error:
        return 0


class RssSampler:
    """Samples the RSS of named processes every `interval` seconds on a thread; keeps each
    one's peak and the peak of the sum over `group` (sampled at the same instant)."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.pids: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.last: dict[str, int] = {}
        self.cpu: dict[str, float] = {}
        self.cpu_mark: dict[str, float] = {}
        self.group: tuple[str, ...] = ()
        self.group_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss")

    def watch(self, name: str, pid: int) -> None:
        self.pids[name] = pid

    def sample(self) -> None:
        pids = list(self.pids.items())
        now = {name: rss_of(pid) for name, pid in pids}
        for name, pid in pids:
            used = cpu_of(pid)
            if used:
                self.cpu[name] = used
        for name, value in now.items():
            self.peak[name] = max(self.peak.get(name, 0), value)
        self.last = now
        if self.group:
            self.group_peak = max(self.group_peak, sum(now.get(n, 0) for n in self.group))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def mark(self) -> None:
        """Count CPU seconds from now on (e.g. once the nodes are registered)."""
        self.sample()
        self.cpu_mark = dict(self.cpu)

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds each process used since `mark` (or since it started)."""
        return {name: round(value - self.cpu_mark.get(name, 0.0), 1)
                for name, value in self.cpu.items()}

    def peak_mb(self) -> dict[str, float]:
        return {name: round(value / MB, 1) for name, value in self.peak.items()}


def kemu_proc(tmp: Path, name: str, *args: str, health: str = "") -> processes.Proc:
    return processes.Proc(name, [processes.PYTHON, "-m", "kemu.cli.kemu_main", *args],
                          tmp / f"{name}.log", health)


def apiserver(tmp: Path, store: str) -> processes.Proc:
    return processes.kemu_apiserver(tmp, store, extra=("--insecure",
                                                       "--max-requests-per-second", "0"))


def scheduler(tmp: Path, api: str) -> processes.Proc:
    health = f"127.0.0.1:{processes.free_port()}"
    return kemu_proc(tmp, "scheduler", "scheduler", "--apiserver", api, "--health-listen",
                     health, "--leader-elect=false", health=health)


def controller_manager(tmp: Path, api: str) -> processes.Proc:
    health = f"127.0.0.1:{processes.free_port()}"
    return kemu_proc(tmp, "controller-manager", "controller-manager", "--apiserver", api,
                     "--health-listen", health, "--leader-elect=false", health=health)


def simulator(tmp: Path, api: str, count: int, *extra: str) -> processes.Proc:
    return kemu_proc(tmp, "simulator", "simulate", "nodes", "--count", str(count),
                     "--apiserver", api, "--name-prefix", "bench-node", *extra)


async def wait_nodes_ready(api: str, count: int, timeout: float,
                           sim: processes.Proc) -> float:
    """Seconds until `count` Nodes say Ready (the simulator dying fails at once)."""
    started = time.monotonic()
    async with AsyncClient(api) as client:
        while True:
            if not sim.alive():
                raise RuntimeError(f"simulator exited:\n{sim.tail()}")
            nodes = (await client.list("nodes")).items
            ready = sum(1 for o in nodes if any(
                c.type == "Ready" and c.status == "True" for c in o.node.status.conditions))
            if ready >= count:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{ready}/{count} nodes Ready after {timeout:.0f}s")
            await asyncio.sleep(1.0)


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def write_results(path: Path, payload: dict[str, Any]) -> None:
    payload = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
               "commit": git_commit(), "cpus": psutil.cpu_count(),
               # 1, 5 and 15 min load averages at the end: other work on the machine
               "loadavg": [round(x, 1) for x in os.getloadavg()], **payload}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@contextlib.contextmanager
def stopping(*procs: processes.Proc) -> Iterator[None]:
    """Stop the given (already started) processes at the end, last first."""
    try:
        yield
    finally:
        for p in reversed(procs):
            p.stop()
