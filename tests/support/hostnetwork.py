"""One test at a time may own this machine's network: the `host_network` fixture.

A cluster whose node agent runs in the host's network namespace (`make up`, `kemu up` with
one node) takes the namespace's lock (kemu/nodeagent/netnslock.py) and programs the host's
iptables, routes and the docker network of its podCIDR. A second such test running at the
same time (`pytest -n 2` puts files on two workers) would find the lock taken: its agent
runs without Service rules, or `kemu up` moves its node into a lab namespace, and its
host-level checks fail. Tests that need the host's network take this fixture, and so run
one after the other instead of colliding. The lock is an flock on a file in /tmp, which the
kernel drops when the holding process dies, so a killed worker never leaves it stale.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

LOCK_FILE = Path("/tmp/kemu-tests-host-network.lock")
# Long enough for the longest holder (the README walkthrough) to finish.
WAIT_SECONDS = 1200.0


def acquire(path: Path = LOCK_FILE, timeout: float = WAIT_SECONDS) -> int:
    """An fd holding the exclusive lock; fails the test when another holds it too long."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = path.read_text().strip() or "unknown"
                os.close(fd)
                pytest.fail(f"another test (pid {holder}) has owned the host's network for "
                            f"{timeout:.0f}s ({path})")
            time.sleep(0.5)  # polling the lock until the deadline, not waiting on a guess
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


@pytest.fixture
def host_network() -> Iterator[None]:
    """Held for the whole test: no other test runs a host-network node agent meanwhile."""
    fd = acquire()
    try:
        yield
    finally:
        os.close(fd)


def leftovers(cluster: str, nodes: tuple[str, ...]) -> dict[str, str]:
    """What of a host-network cluster is still on this machine after `kemu down`: its
    containers and node networks, and the agent's KEMU chains (nat, filter) and proto 76
    routes. The rules are read only when no other agent holds the netns lock (a running
    agent's rules are its own, not leftovers)."""
    import subprocess

    import docker  # type: ignore[import-untyped]

    from kemu.nodeagent.netnslock import NetnsLock

    engine = docker.from_env()
    found = {
        "containers": " ".join(sorted(
            {c.name for c in engine.containers.list(
                all=True, filters={"label": f"io.kemu.cluster={cluster}"})}
            | {c.name for node in nodes for c in engine.containers.list(
                all=True, filters={"label": f"io.kemu.node={node}"})})),
        "networks": " ".join(n.name for node in nodes
                             for n in engine.networks.list(names=[f"kemu-{node}"])),
    }
    engine.close()
    lock = NetnsLock.acquire()
    if lock is not None:
        try:
            chains = [line for table in ("nat", "filter") for line in subprocess.run(
                ["iptables-save", "-t", table], capture_output=True, text=True,
                timeout=30).stdout.splitlines() if line.startswith(":KEMU")]
            found["chains"] = " ".join(chains)
            routes = subprocess.run(["ip", "route", "show", "table", "all"],
                                    capture_output=True, text=True, timeout=30).stdout
            found["routes"] = "\n".join(r for r in routes.splitlines() if "proto 76" in r)
        finally:
            lock.release()
    return {k: v for k, v in found.items() if v}
