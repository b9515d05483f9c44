"""A multi-node kemu cluster on the lab harness, for the networking end-to-end tests.

The control plane (store, apiserver, controller manager, scheduler) runs on the host; the
apiserver listens on the host's lab address, which it advertises as the `kubernetes`
Service's endpoint. Each node is a lab namespace with its own dockerd, and its agent runs
in that namespace (`nsenter --net`), so its routes, iptables rules and pods are the node's
own, as on a VM. Everything is stopped and removed on exit, even after a failure.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kemu.api import manifest
from kemu.api.v1 import api_pb2
from kemu.client import Client
from kemu.client.errors import AlreadyExists
from kemu.lab.harness import Lab, LabNode
from tests.support import processes
from tests.support.processes import Proc

PYTHON = sys.executable
PAUSE_IMAGE = "kemu/pause:3.9"


def wait_for(fn: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll `fn()` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except Exception as e:  # a query racing the cluster: try again until the deadline
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


@dataclass
class LabCluster:
    """A running cluster: its lab, processes, apiserver address and node names."""

    lab: Lab
    tmp: Path
    apiserver: str = ""
    procs: list[Proc] = field(default_factory=list)
    agents: dict[str, Proc] = field(default_factory=dict)

    @property
    def host_ip(self) -> str:
        return str(self.lab.plan.gateway)

    def node_name(self, node: LabNode) -> str:
        return f"{self.lab.name}-node-{node.index}"

    def client(self) -> Client:
        return Client(self.apiserver)

    def apply(self, api: Client, doc: dict[str, Any]) -> api_pb2.Object:
        with contextlib.suppress(AlreadyExists):
            return api.create(manifest.from_dict(doc))
        return api.get(doc["kind"], doc["metadata"]["name"],
                       doc["metadata"].get("namespace", "default"))

    def kemuctl(self, *args: str, timeout: float = 120, check: bool = True,
                stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run kemuctl against this cluster as a user would; fail with its output."""
        done = subprocess.run([PYTHON, "-m", "kemu.cli.kemuctl", "-s", self.apiserver, *args],
                              input=stdin, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"kemuctl {' '.join(args)} exited {done.returncode}:\n"
                                 f"{done.stdout}\n{done.stderr}")
        return done

    def node_exec(self, node: LabNode, *argv: str, timeout: float = 30.0) -> str:
        return node.exec(*argv, timeout=timeout)

    def start_agent(self, node: LabNode, *extra: str) -> Proc:
        name = self.node_name(node)
        address = f"{node.ip}:10250"
        args = ["nsenter", f"--net={node.netns_path}", "--", PYTHON, "-m", "kemu.nodeagent",
                "--insecure", "--apiserver", self.apiserver, "--node-name", name,
                "--node-ip", str(node.ip),
                "--address", str(node.ip), "--docker-host", node.docker_host,
                "--data-dir", str(self.tmp / f"agent-{name}"), "--pause-image", PAUSE_IMAGE,
                "--backoff-initial", "1", "--backoff-max", "8", "--resync-interval", "2",
                *extra]
        proc = Proc(f"agent-{name}", args, self.tmp / f"agent-{name}.log", address)
        self.agents[name] = proc
        proc.start().wait_ready(timeout=60)
        return proc

    def stop_agent(self, node: LabNode) -> None:
        proc = self.agents.pop(self.node_name(node), None)
        if proc is not None:
            proc.stop(grace=15)


@contextlib.contextmanager
def lab_cluster(tmp: Path, *, nodes: int = 2, subnet: str, images: list[str],
                controller_args: tuple[str, ...] = ()) -> Iterator[LabCluster]:
    """Up a lab with its registry, have every node pull `images` from it, start the control
    plane and one agent per node; wait until every node is Ready with a podCIDR. Tear all
    of it down after."""
    name = f"n{secrets.token_hex(2)}"
    lab = Lab(name, nodes=nodes, subnet=subnet, with_registry=True)
    cluster = LabCluster(lab, tmp)
    try:
        lab.up()
        lab.pull_images(images)
        host = cluster.host_ip
        store = processes.kemu_store(tmp)
        api_port = processes.free_port()
        cluster.apiserver = f"{host}:{api_port}"
        apiserver = Proc("apiserver", [PYTHON, "-m", "kemu.cli.kemu_main", "apiserver",
                                       "--insecure",
                                       "--listen", cluster.apiserver, "--store", store.address,
                                       "--advertise-address", host],
                         tmp / "apiserver.log", cluster.apiserver)
        cm_health = f"127.0.0.1:{processes.free_port()}"
        cm = Proc("controller-manager", [PYTHON, "-m", "kemu.cli.kemu_main",
                                         "controller-manager", "--apiserver", cluster.apiserver,
                                         "--health-listen", cm_health, *controller_args],
                  tmp / "controller-manager.log", cm_health)
        sched_health = f"127.0.0.1:{processes.free_port()}"
        sched = Proc("scheduler", [PYTHON, "-m", "kemu.cli.kemu_main", "scheduler",
                                   "--apiserver", cluster.apiserver,
                                   "--health-listen", sched_health],
                     tmp / "scheduler.log", sched_health)
        for proc in (store, apiserver, cm, sched):
            cluster.procs.append(proc)
            proc.start().wait_ready(timeout=60)
        for node in lab.nodes:
            cluster.start_agent(node)
        with cluster.client() as api:
            def all_ready() -> bool:
                got = api.list("nodes").items
                ready = [n for n in got if n.node.spec.pod_cidr and any(
                    c.type == "Ready" and c.status == "True" for c in n.node.status.conditions)]
                return len(ready) == nodes
            wait_for(all_ready, 60, "every lab node Ready with a podCIDR")
        yield cluster
    finally:
        for proc in list(cluster.agents.values()):
            proc.stop(grace=15)
        for proc in reversed(cluster.procs):
            proc.stop()
        lab.down()
