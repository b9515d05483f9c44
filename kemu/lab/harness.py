"""`Lab`: N namespaces on a lab bridge, one dockerd each; a context manager.

    with Lab("demo", nodes=2) as lab:
        for node in lab.nodes:
            print(node.netns, node.ip, node.docker_host)

`down()` removes everything `up()` made, in reverse order, and is also run when `up()`
fails half way, so a failed test leaves no namespace, veth, bridge, process or mount.
"""

from __future__ import annotations

import contextlib
import ipaddress
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType

from kemu.lab import bridge, dockerd, images, netns, registry
from kemu.lab._run import LabError, run


@dataclass
class LabNode:
    """One lab node, as a VM would be known: its namespace, address and Docker engine."""

    index: int
    netns: str
    veth_port: str
    ip: ipaddress.IPv4Address
    dockerd: dockerd.Dockerd | None = None

    @property
    def netns_path(self) -> str:
        """The file to pass to `nsenter --net=`."""
        return netns.path(self.netns)

    @property
    def docker_host(self) -> str:
        """DOCKER_HOST for this node's engine."""
        return dockerd.DockerdPaths(self.netns).docker_host

    def exec(self, *argv: str, timeout: float = 30.0, check: bool = True) -> str:
        """Run a command in the node's network namespace (as if on the VM)."""
        return run(["nsenter", f"--net={self.netns_path}", "--", *argv],
                   timeout=timeout, check=check)

    def docker(self, *args: str, timeout: float = 60.0) -> str:
        """Run the docker CLI against this node's engine."""
        return run(["docker", "--host", self.docker_host, *args], timeout=timeout)


class Lab:
    """A lab of `nodes` namespaces named after `name`, on the /24 `subnet`."""

    def __init__(self, name: str, nodes: int = 2, *, subnet: str = netns.DEFAULT_SUBNET,
                 dockerd_timeout: float = 30.0, with_registry: bool = False) -> None:
        netns.validate_cluster_name(name)
        self.plan = netns.AddressPlan.parse(subnet)
        if not 1 <= nodes <= self.plan.max_nodes:
            raise ValueError(f"nodes must be 1..{self.plan.max_nodes}")
        self.name = name
        self.nodes_wanted = nodes
        self.subnet = subnet
        self.dockerd_timeout = dockerd_timeout
        self.with_registry = with_registry
        #: HOST:PORT of the lab's registry (the nodes' Docker Hub mirror), when it has one.
        self.registry: str | None = None
        self.nodes: list[LabNode] = []
        self.timings: dict[str, float] = {}
        #: The host's port on the lab (with the .1) and the namespace holding the bridge.
        self.bridge = bridge.bridge_name(name)
        self.switch_netns = bridge.switch_netns_name(name)

    def planned_nodes(self) -> list[LabNode]:
        """The nodes this lab would have (names and addresses), without making anything."""
        return [
            LabNode(n, netns.netns_name(self.name, n), netns.veth_port_name(self.name, n),
                    self.plan.node_ip(n))
            for n in range(1, self.nodes_wanted + 1)
        ]

    def up(self) -> Lab:
        """Make the bridge, the namespaces and the dockerds; on any failure, undo it all."""
        t0 = time.monotonic()
        planned = self.planned_nodes()
        for node in planned:
            if netns.exists(node.netns):
                raise LabError(f"lab {self.name} node {node.netns} exists: run down() first")
        if bridge.link_exists(self.bridge) or netns.exists(self.switch_netns):
            raise LabError(f"lab bridge {self.bridge} exists: run down() first")
        netns.check_subnet_free(self.plan.subnet)
        try:
            bridge.create(self.name, f"{self.plan.gateway}/{self.plan.subnet.prefixlen}")
            for node in planned:
                netns.create(node.netns, node.veth_port, self.plan.node_cidr(node.index),
                             self.switch_netns, bridge.SWITCH_BRIDGE)
                self.nodes.append(node)
            self.timings["network"] = time.monotonic() - t0
            if self.with_registry:
                self.registry = registry.start(self.name, str(self.plan.gateway))
            for node in self.nodes:
                node.dockerd = dockerd.start(node.netns, node.netns_path,
                                             timeout=self.dockerd_timeout,
                                             registry=self.registry)
        except BaseException:
            self.down()
            raise
        self.timings["up"] = time.monotonic() - t0
        return self

    def ensure_registry(self) -> str:
        """Start the registry of a lab made earlier (by another `kemu up`) if it has
        stopped; the nodes' engines already name it as their mirror."""
        self.registry = registry.start(self.name, str(self.plan.gateway))
        return self.registry

    def pull_images(self, refs: Sequence[str]) -> None:
        """Push `refs` from the host's engine into the lab's registry, then have every
        node pull them, all nodes at once, as VMs pull from a registry."""
        if self.registry is None:
            raise LabError(f"lab {self.name} has no registry (Lab(..., with_registry=True))")
        t0 = time.monotonic()
        registry.push(refs, self.registry)
        self.timings["push_images"] = time.monotonic() - t0
        with ThreadPoolExecutor(max_workers=max(1, len(self.nodes))) as pool:
            futures = [pool.submit(registry.pull, refs, n.docker_host) for n in self.nodes]
            for f in futures:
                f.result()
        self.timings["pull_images"] = time.monotonic() - t0 - self.timings["push_images"]

    def load_images(self, refs: Sequence[str]) -> None:
        """Copy images from the host's engine into every node's dockerd, all nodes at
        once (each copy is a save|load pipe, mostly waiting on I/O)."""
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=max(1, len(self.nodes))) as pool:
            futures = [pool.submit(images.copy_images, refs, n.docker_host)
                       for n in self.nodes]
            for f in futures:
                f.result()
        self.timings["load_images"] = time.monotonic() - t0

    def down(self) -> None:
        """Stop every dockerd, delete namespaces, veths and the bridge; idempotent.

        Errors in one step do not stop the others; the first is re-raised at the end.
        """
        t0 = time.monotonic()
        errors: list[BaseException] = []
        for node in reversed(self.nodes):
            if node.dockerd is not None:
                try:
                    dockerd.stop(node.dockerd)
                except (OSError, LabError, subprocess.SubprocessError) as e:
                    errors.append(e)
                node.dockerd = None
        handled = {n.netns for n in self.nodes if n.dockerd is not None}
        for node in reversed(self.planned_nodes()):
            if node.netns not in handled and netns.exists(node.netns):
                # A lab made by another process (`kemu up`): its dockerd has no handle here.
                try:
                    dockerd.stop_detached(dockerd.DockerdPaths(node.netns))
                except (OSError, LabError, subprocess.SubprocessError) as e:
                    errors.append(e)
            try:
                netns.delete(node.netns)
            except (OSError, LabError, subprocess.SubprocessError) as e:
                errors.append(e)
            with contextlib.suppress(OSError):
                dockerd.cleanup_dirs(dockerd.DockerdPaths(node.netns))
        try:
            registry.stop(self.name)
        except (OSError, LabError, subprocess.SubprocessError) as e:
            errors.append(e)
        self.registry = None
        try:
            bridge.delete(self.name)
        except (OSError, LabError, subprocess.SubprocessError) as e:
            errors.append(e)
        self.nodes = []
        self.timings["down"] = time.monotonic() - t0
        if errors:
            raise errors[0]

    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.down()
