"""Helpers of the high-availability tests: components started with short leader-election
timings, the Lease holder read back, identities read from the components' logs, and a
pod watcher that resumes across apiserver restarts."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kemu.api import objects
from kemu.api.v1 import api_pb2
from kemu.client import Client
from kemu.client.errors import ClientError, Gone, NotFound
from tests.support import processes

LEASE_S, RENEW_S, RETRY_S = 3.0, 2.0, 0.5
# client-go's rule, our jitter: a standby sees the last renewal at most one (jittered)
# retry after it was written and acts at most one retry after the lease ran out.
TAKEOVER_BOUND_S = LEASE_S + 2 * 1.2 * RETRY_S
SHORT_LE = ("--leader-elect-lease-duration", f"{LEASE_S:g}s",
            "--leader-elect-renew-deadline", f"{RENEW_S:g}s",
            "--leader-elect-retry-period", f"{int(RETRY_S * 1000)}ms")
_ACQUIRE = re.compile(r"attempting to acquire as (\S+)")


def component(tmp: Path, module: str, apiserver: str, name: str, *extra: str
              ) -> processes.Proc:
    """`python -m <module>` with a health port and the short election timings."""
    health = f"127.0.0.1:{processes.free_port()}"
    return processes.Proc(name, [processes.PYTHON, "-m", module, "--apiserver", apiserver,
                                 "--health-listen", health, *SHORT_LE, *extra],
                          tmp / f"{name}.log", health)


def scheduler(tmp: Path, apiserver: str, name: str, *extra: str) -> processes.Proc:
    """A scheduler logging each bind (`-v 2`), which tells which one bound a pod."""
    return component(tmp, "kemu.services.scheduler", apiserver, name, "-v", "2", *extra)


def controller_manager(tmp: Path, apiserver: str, name: str, *extra: str) -> processes.Proc:
    return component(tmp, "kemu.services.controllers", apiserver, name, *extra)


def identity(proc: processes.Proc, timeout: float = 10.0) -> str:
    """The identity a component elects with, from its log (the last one if restarted)."""
    found: list[str] = []

    def logged() -> bool:
        found[:] = _ACQUIRE.findall(proc.log.read_text(errors="replace"))
        return bool(found)
    processes.wait_for(logged, timeout, f"{proc.name} to start electing")
    return found[-1]


def holder(client: Client, lease: str) -> str:
    try:
        return client.get("leases", lease, "kube-system").lease.spec.holder_identity
    except (NotFound, ClientError):
        return ""


def wait_holder(client: Client, lease: str, want: Callable[[str], bool], timeout: float,
                what: str) -> tuple[str, float]:
    """Poll the Lease (every 20 ms) until its holder satisfies `want`; (holder, when)."""
    deadline = time.monotonic() + timeout
    while True:
        h = holder(client, lease)
        if want(h):
            return h, time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what} "
                               f"(holder {h!r})")
        time.sleep(0.02)


def log_text(proc: processes.Proc) -> str:
    return proc.log.read_text(errors="replace")


@dataclass
class PodWatch:
    """Pods of one namespace as a client that lists once and then watches, resuming from
    the last resourceVersion after any stream error and relisting only on Gone. Records
    the most live (not terminating) pods ever seen per pod-template-hash and in total."""

    server: str
    namespace: str
    label: str = "pod-template-hash"
    pods: dict[str, api_pb2.Object] = field(default_factory=dict)
    max_per_hash: dict[str, int] = field(default_factory=dict)
    max_total: int = 0
    resumes: int = 0  # streams that broke (apiserver gone) and were reopened from rv
    relists: int = 0
    _broken: bool = False
    events: int = 0
    rv: str = ""
    error: BaseException | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> PodWatch:
        self._thread = threading.Thread(target=self._run, name="pod-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        if self.error is not None:
            raise self.error

    def live(self) -> dict[str, api_pb2.Object]:
        return {n: o for n, o in self.pods.items()
                if not o.pod.metadata.HasField("deletion_timestamp")}

    def _count(self) -> None:
        per: dict[str, int] = {}
        for o in self.live().values():
            h = o.pod.metadata.labels.get(self.label, "")
            per[h] = per.get(h, 0) + 1
        for h, n in per.items():
            self.max_per_hash[h] = max(self.max_per_hash.get(h, 0), n)
        self.max_total = max(self.max_total, sum(per.values()))

    def _list(self, client: Client) -> None:
        resp = client.list("pods", self.namespace)
        self.pods = {o.pod.metadata.name: o for o in resp.items}
        self.rv = resp.resource_version
        self._broken = False
        self._count()

    def _run(self) -> None:
        try:
            with Client(self.server, timeout=5, read_retry_seconds=30) as client:
                self._list(client)
                while not self._stop.is_set():
                    try:
                        for ev in client.watch("pods", self.namespace,
                                               resource_version=self.rv,
                                               allow_bookmarks=True, timeout=2.0):
                            self._apply(ev)
                            if self._stop.is_set():
                                return
                        self._broken = False  # ended at its timeout: a healthy stream
                    except Gone:
                        self.relists += 1
                        self._list(client)
                        continue
                    except ClientError:
                        self.resumes += 0 if self._broken else 1
                        self._broken = True
                        self._stop.wait(0.1)
        except BaseException as e:  # reported by stop()
            self.error = e

    def _apply(self, ev: api_pb2.WatchEvent) -> None:
        self._broken = False
        obj: Any = ev.object
        self.rv = objects.meta(obj).resource_version or self.rv
        if ev.type == api_pb2.WatchEvent.BOOKMARK:
            return
        self.events += 1
        name = obj.pod.metadata.name
        if ev.type == api_pb2.WatchEvent.DELETED:
            self.pods.pop(name, None)
        else:
            self.pods[name] = obj
        self._count()
