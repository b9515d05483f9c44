"""A throwaway one-node topology of network namespaces for the data-path benchmark.

One "node" namespace routes between "pod" namespaces, each joined to it by its own veth
pair, as the ptp CNI plugin (kind's kindnet) wires pods: the pod has its address as a /32 on
`eth0`, a link route to the gateway and a default route through it; the node side of every
veth carries the gateway address (a /32) and the node has one /32 route per pod. Pod to pod
traffic, and pod to ClusterIP traffic, is therefore forwarded by the node namespace, where
kube-proxy style rules DNAT it in nat PREROUTING.

Everything is created inside namespaces made here (`kemu-bench-<random>-<role>`): each veth
is created in the node namespace with its peer moved straight into the pod's, so nothing
appears in, or is changed in, the host's own network namespace. `down()` kills the
processes started with `spawn` by their pid and deletes the namespaces (and with them every
interface, route and rule in them); it runs on any exit from the `with` block, Ctrl-C
included.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

PREFIX = "kemu-bench-"
GATEWAY = "10.244.0.1"
"""The node side of every pod veth: each pod's default gateway (ptp style)."""


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def list_netns() -> list[str]:
    """Names of all named network namespaces (`ip netns list`)."""
    out = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


@dataclass(frozen=True)
class Pod:
    """One pod namespace: its role, namespace name, IP and the node-side veth name."""

    role: str
    netns: str
    ip: str
    host_veth: str


@dataclass
class NodeTopology:
    """A node namespace and pod namespaces `{role: ip}` routed through it.

    Use as a context manager: `__enter__` builds it (tearing down what was made if that
    fails), `__exit__` calls `down()`.
    """

    pod_ips: dict[str, str]
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    pods: dict[str, Pod] = field(default_factory=dict)
    made: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def node(self) -> str:
        return f"{PREFIX}{self.tag}-node"

    def _add_netns(self, name: str) -> None:
        _ip("netns", "add", name)
        self.made.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def up(self) -> NodeTopology:
        """Create the namespaces, veths, addresses and routes, and turn on forwarding."""
        self._add_netns(self.node)
        self.sysctl(self.node, "net.ipv4.ip_forward", "1")
        for i, (role, ip) in enumerate(self.pod_ips.items(), start=1):
            ns = f"{PREFIX}{self.tag}-{role}"
            self._add_netns(ns)
            veth = f"veth{i}"
            _ip("-n", self.node, "link", "add", veth, "type", "veth",
                "peer", "name", "eth0", "netns", ns)
            _ip("-n", self.node, "addr", "add", f"{GATEWAY}/32", "dev", veth)
            _ip("-n", self.node, "link", "set", veth, "up")
            _ip("-n", self.node, "route", "add", f"{ip}/32", "dev", veth)
            _ip("-n", ns, "addr", "add", f"{ip}/32", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "route", "add", GATEWAY, "dev", "eth0", "scope", "link")
            _ip("-n", ns, "route", "add", "default", "via", GATEWAY, "dev", "eth0")
            self.pods[role] = Pod(role, ns, ip, veth)
        return self

    def sysctl(self, netns: str, key: str, value: str) -> None:
        """Set a net.* sysctl in `netns`: /proc/sys/net is per network namespace."""
        if not key.startswith("net."):
            raise ValueError(f"{key}: only per-namespace net.* sysctls may be set here")
        if netns not in self.made:
            raise ValueError(f"{netns} is not a namespace of this topology")
        self.run(netns, "sysctl", "-q", "-w", f"{key}={value}")

    def ns(self, role: str) -> str:
        """The namespace name of a pod role, or of the node for "node"."""
        return self.node if role == "node" else self.pods[role].netns

    def run(self, netns: str, *argv: str, timeout: float = 60.0
            ) -> subprocess.CompletedProcess[str]:
        """Run a command to completion in `netns`; raise with its stderr when it fails."""
        done = subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True,
                              text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"in {netns}: {' '.join(argv)} exited {done.returncode}: "
                               f"{(done.stderr or done.stdout).strip()[-500:]}")
        return done

    def spawn(self, netns: str, argv: Sequence[str], log: Path | None = None
              ) -> subprocess.Popen[bytes]:
        """Start a long-running process in `netns`; `down()` kills it by its pid.

        `ip netns exec` execs the command, so the pid is the command's own. It gets its own
        session so that Ctrl-C in the terminal reaches this script, which then stops it.
        """
        out: IO[bytes] | int = log.open("ab") if log else subprocess.DEVNULL
        try:
            proc = subprocess.Popen(["ip", "netns", "exec", netns, *argv], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        finally:
            if not isinstance(out, int):
                out.close()
        self.procs.append(proc)
        return proc

    def listening(self, netns: str, port: int) -> bool:
        """Whether a TCP socket listens on `port` in `netns` (asks `ss`, connects nothing)."""
        out = self.run(netns, "ss", "-Hltn", f"sport = :{port}").stdout
        return bool(out.strip())

    def down(self) -> None:
        """Kill spawned processes by pid, then delete every namespace made here.

        Ctrl-C is ignored while this runs so that a second one cannot leave half of it.
        """
        with _no_sigint():
            for proc in self.procs:
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGTERM)
            for proc in self.procs:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)
            self.procs.clear()
            for name in reversed(self.made):
                subprocess.run(["ip", "netns", "del", name], capture_output=True,
                               timeout=30, check=False)
            self.made.clear()

    def leftovers(self) -> list[str]:
        """Namespaces of this topology that still exist (empty after `down()`)."""
        return [n for n in list_netns() if n.startswith(f"{PREFIX}{self.tag}-")]

    def __enter__(self) -> NodeTopology:
        try:
            return self.up()
        except BaseException:
            self.down()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.down()


@contextlib.contextmanager
def _no_sigint() -> Iterator[None]:
    try:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to guard
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
