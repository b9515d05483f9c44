"""`kemu logs COMPONENT [--name CLUSTER] [-f] [--tail N]`: a component's log, wherever it runs.

`kemu up` runs the control plane as containers of the kemu image (named
`kemu-CLUSTER-COMPONENT`, labelled io.kemu.cluster=CLUSTER) or as processes, and the node
agents as processes; every process writes its output to `logs/COMPONENT.log` in the
cluster's state directory (~/.kemu/clusters/CLUSTER, or $KEMU_HOME/clusters/CLUSTER). A
container's log is read from Docker (`docker logs`), a process's from its file; the cluster
DNS runs as the kube-dns pods, whose containers are read from this machine's dockerd.
`-f` follows as `docker logs -f` and `tail -f` do: until the component stops, or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from kemu.cli import lifecycle
from kemu.nodeagent import naming

COMPONENTS = ("store", "apiserver", "scheduler", "controller-manager", "agent", "dns")
_AGENT_N = re.compile(r"^agent-\d+$")
POLL_SECONDS = 0.2


class LogsError(Exception):
    """The log asked for cannot be found; the message is the one line printed."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `logs` on kemu's subcommands (an argparse _SubParsersAction)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "logs", help="print a cluster component's log (container or process)",
        description="Print the log of one component of a `kemu up` cluster: "
                    "store, apiserver, scheduler, controller-manager, agent (agent-N on a "
                    "lab of several nodes) or dns.")
    p.add_argument("component", metavar="COMPONENT",
                   help="store, apiserver, scheduler, controller-manager, agent, agent-N, dns")
    p.add_argument("--name", default="kemu", help="the cluster (default kemu)")
    p.add_argument("-f", "--follow", action="store_true",
                   help="keep printing what is written until the component stops (Ctrl-C "
                        "ends it)")
    p.add_argument("--tail", type=int, default=-1, metavar="N",
                   help="only the last N lines (default -1: all)")
    return p


def run(args: argparse.Namespace) -> int:
    """Print the log; one line on stderr and exit 1 when there is none to print."""
    try:
        check_component(args.component)
        write_log(args.name, args.component, follow=args.follow, tail=args.tail,
                  out=sys.stdout.buffer)
    except LogsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def check_component(component: str) -> None:
    if component not in COMPONENTS and not _AGENT_N.match(component):
        raise LogsError(f"unknown component {component!r}: one of {', '.join(COMPONENTS)} "
                        f"or agent-N")


def write_log(cluster: str, component: str, *, follow: bool = False, tail: int = -1,
              out: BinaryIO) -> None:
    """Write `component`'s log to `out`: from its container when it runs as one, else its
    log file; LogsError (one line) when there is neither."""
    container = _container(cluster, component)
    if container is not None:
        _docker_logs(container, follow=follow, tail=tail, out=out)
        return
    d = lifecycle.state_dir(cluster)
    if not d.is_dir():
        raise LogsError(f"no cluster named {cluster!r} (no {d}); `kemu up --name {cluster}` "
                        f"makes one")
    path = log_path(cluster, component)
    if not path.exists():
        raise LogsError(_missing(cluster, component, d))
    _file_logs(path, follow=follow, tail=tail, out=out,
               pid_file=d / f"{component}.pid")


def log_path(cluster: str, component: str) -> Path:
    """Where a process of cluster `cluster` writes its output (kemu.cli.lifecycle._start)."""
    return lifecycle.state_dir(cluster) / "logs" / f"{component}.log"


def _missing(cluster: str, component: str, d: Path) -> str:
    logs = sorted(p.stem for p in (d / "logs").glob("*.log"))
    if component == "agent" and any(_AGENT_N.match(n) for n in logs):
        agents = ", ".join(n for n in logs if _AGENT_N.match(n))
        return f"cluster {cluster!r} has one agent per node: name one ({agents})"
    if component == "dns":
        return (f"no kube-dns container of cluster {cluster!r} on this machine's dockerd; "
                f"try `kemuctl logs -n kube-system POD` with a pod of `kemuctl get pods -n "
                f"kube-system`")
    have = f" (it has: {', '.join(logs)})" if logs else ""
    return f"cluster {cluster!r} has no log of {component}{have}"


# ---- Docker ---------------------------------------------------------------------------------


def docker_client() -> Any:
    """A Docker client, or None when there is no dockerd to ask (processes only, then)."""
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=10)
        client.ping()
        return client
    except Exception:
        return None


def _container(cluster: str, component: str) -> Any:
    """The Docker container that runs `component` of `cluster`, or None."""
    if component.startswith("agent"):
        return None
    client = docker_client()
    if client is None:
        return None
    if component == "dns":
        return _dns_container(client, cluster)
    found = client.containers.list(all=True, filters={
        "name": f"^{lifecycle.container_name(cluster, component)}$",
        "label": f"{lifecycle.CLUSTER_LABEL}={cluster}"})
    return found[0] if found else None


def _dns_container(client: Any, cluster: str) -> Any:
    """An app container of a kube-dns pod on one of the cluster's nodes (running first)."""
    found = [c for c in client.containers.list(all=True, filters={
        "label": [f"{naming.NAMESPACE}=kube-system", f"{naming.KIND}={naming.KIND_APP}"]})
        if c.labels.get(naming.POD, "").startswith("kube-dns")
        and c.labels.get(naming.NODE, "").startswith(f"{cluster}-node-")]
    found.sort(key=lambda c: (c.status != "running", c.labels.get(naming.POD, ""), c.name))
    if len(found) > 1:
        pods = {c.labels.get(naming.POD) for c in found}
        if len(pods) > 1:
            print(f"Found {len(pods)} pods, using pod/{found[0].labels.get(naming.POD)}",
                  file=sys.stderr)
    return found[0] if found else None


def _docker_logs(container: Any, *, follow: bool, tail: int, out: BinaryIO) -> None:
    tail_arg: int | str = tail if tail >= 0 else "all"
    if follow:
        for chunk in container.logs(stream=True, follow=True, tail=tail_arg):
            out.write(chunk)
            out.flush()
        return
    out.write(container.logs(tail=tail_arg))
    out.flush()


# ---- files ----------------------------------------------------------------------------------


def last_lines(path: Path, tail: int) -> tuple[bytes, int]:
    """The last `tail` lines of `path` (all for -1) and the offset its end had."""
    with open(path, "rb") as f:
        if tail < 0:
            data = f.read()
            return data, len(data)
        kept: deque[bytes] = deque(f, maxlen=tail) if tail else deque()
        return b"".join(kept), f.seek(0, os.SEEK_END)


def _alive(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def follow_file(path: Path, offset: int, *, alive: Any) -> Iterator[bytes]:
    """What is appended to `path` after `offset`, until `alive()` is false and nothing more
    was written (a file cut shorter is read again from its start)."""
    while True:
        with contextlib.suppress(OSError):
            size = path.stat().st_size
            if size < offset:
                offset = 0
            if size > offset:
                with open(path, "rb") as f:
                    f.seek(offset)
                    data = f.read(size - offset)
                offset += len(data)
                yield data
                continue
        if not alive():
            return
        time.sleep(POLL_SECONDS)


def _file_logs(path: Path, *, follow: bool, tail: int, out: BinaryIO, pid_file: Path
               ) -> None:
    data, offset = last_lines(path, tail)
    out.write(data)
    out.flush()
    if not follow:
        return
    # Follow while the process runs; with no pid file, until Ctrl-C.
    alive = (lambda: _alive(pid_file)) if pid_file.exists() else (lambda: True)
    for chunk in follow_file(path, offset, alive=alive):
        out.write(chunk)
        out.flush()
