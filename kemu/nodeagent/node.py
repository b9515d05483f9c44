"""The Node object: registration, and the status heartbeat with its conditions.

Capacity comes from the host (/proc and statvfs: no extra dependency); allocatable equals
capacity (no reservations). Ready follows the container runtime: the agent pings Docker
every `ping_interval` seconds and writes the status at once when the answer changes, and
every `node_status_interval` seconds otherwise, as the kubelet's node status loop does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from kemu.api.v1 import api_pb2, core_pb2, meta_pb2
from kemu.client.aio import AsyncClient
from kemu.client.errors import AlreadyExists, ClientError, NotFound
from kemu.nodeagent.clock import Clock
from kemu.nodeagent.config import AgentConfig
from kemu.nodeagent.runtime import ContainerRuntime, ContainerRuntimeError

log = logging.getLogger(__name__)
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
         "s390x": "s390x"}


def kemu_version() -> str:
    try:
        from importlib.metadata import version

        return version("kemu")
    except Exception:
        return "0.0.0"


def arch() -> str:
    machine = platform.machine()
    return _ARCH.get(machine, machine)


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                out[key] = int(parts[0])  # KiB
    except OSError:
        pass
    return out


def _os_image() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def capacity(data_dir: Path, max_pods: int) -> dict[str, str]:
    """cpu, memory, pods and ephemeral-storage as Kubernetes writes them."""
    cap = {"cpu": str(os.cpu_count() or 1), "pods": str(max_pods)}
    mem = _meminfo().get("MemTotal")
    if mem:
        cap["memory"] = f"{mem}Ki"
    probe = data_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        st = os.statvfs(probe)
        cap["ephemeral-storage"] = f"{st.f_blocks * st.f_frsize // 1024}Ki"
    except OSError:
        pass
    return cap


def _ts(dt: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(dt.replace(microsecond=0))
    return t


def node_labels(config: AgentConfig) -> dict[str, str]:
    labels = {"kubernetes.io/hostname": config.node_name, "kubernetes.io/os": "linux",
              "kubernetes.io/arch": arch(), "beta.kubernetes.io/os": "linux",
              "beta.kubernetes.io/arch": arch()}
    labels.update(config.labels)
    return labels


class NodeStatus:
    """Registers the node and keeps its status current."""

    def __init__(self, config: AgentConfig, client: AsyncClient, runtime: ContainerRuntime,
                 clock: Clock, *, ping_interval: float = 2.0) -> None:
        self.config = config
        self.client = client
        self.runtime = runtime
        self.clock = clock
        self.ping_interval = ping_interval
        self.runtime_version = "unknown"
        self.runtime_error = ""
        self.pod_cidr = ""
        self._conditions: dict[str, meta_pb2.Condition] = {}
        self._capacity = capacity(config.data_dir, config.max_pods)
        self._changed = asyncio.Event()
        # Called on every heartbeat while the node has a podCIDR (the network follows it).
        self.on_pod_cidr: Callable[[str], Awaitable[None]] | None = None
        # Set by `poke()` to run the next heartbeat now (e.g. a podCIDR was just assigned).
        self._wake = asyncio.Event()

    def allocatable(self) -> dict[str, str]:
        return dict(self._capacity)

    def build_status(self) -> core_pb2.NodeStatus:
        now = self.clock.now()
        st = core_pb2.NodeStatus()
        st.capacity.update(self._capacity)
        st.allocatable.update(self._capacity)
        st.addresses.add(type="InternalIP", address=self.config.node_ip)
        st.addresses.add(type="Hostname", address=self.config.node_name)
        st.daemon_endpoints.kubelet_endpoint.port = self.config.port
        info = st.node_info
        info.machine_id = _read("/etc/machine-id")
        info.boot_id = _read("/proc/sys/kernel/random/boot_id")
        info.system_uuid = _read("/sys/class/dmi/id/product_uuid") or info.machine_id
        info.kernel_version = platform.release()
        info.os_image = _os_image()
        info.container_runtime_version = f"docker://{self.runtime_version}"
        info.kubelet_version = f"v{kemu_version()}"
        info.kube_proxy_version = f"v{kemu_version()}"
        info.operating_system = "linux"
        info.architecture = arch()
        mem = _meminfo()
        available_ki = mem.get("MemAvailable", 1 << 30)
        mem_pressure = available_ki < 100 * 1024
        try:
            sv = os.statvfs(self.config.data_dir if self.config.data_dir.exists() else "/")
            disk_pressure = sv.f_bavail < 0.1 * sv.f_blocks
        except OSError:
            disk_pressure = False
        ready = not self.runtime_error
        table = [
            ("Ready", ready, "KubeletReady" if ready else "KubeletNotReady",
             "kubelet is posting ready status" if ready else
             f"container runtime is down: {self.runtime_error}"),
            ("MemoryPressure", mem_pressure,
             "KubeletHasInsufficientMemory" if mem_pressure else "KubeletHasSufficientMemory",
             "kubelet has insufficient memory available" if mem_pressure
             else "kubelet has sufficient memory available"),
            ("DiskPressure", disk_pressure,
             "KubeletHasDiskPressure" if disk_pressure else "KubeletHasNoDiskPressure",
             "kubelet has disk pressure" if disk_pressure else "kubelet has no disk pressure"),
            ("PIDPressure", False, "KubeletHasSufficientPID",
             "kubelet has sufficient PID available"),
        ]
        for type_, status, reason, message in table:
            text = "True" if status else "False"
            prev = self._conditions.get(type_)
            c = meta_pb2.Condition(type=type_, status=text, reason=reason, message=message)
            c.last_heartbeat_time.CopyFrom(_ts(now))
            if prev is not None and prev.status == text:
                c.last_transition_time.CopyFrom(prev.last_transition_time)
            else:
                c.last_transition_time.CopyFrom(_ts(now))
            self._conditions[type_] = c
        st.conditions.extend(self._conditions[t] for t, *_ in table)
        return st

    async def register(self) -> api_pb2.Object:
        """Create the Node, or take over an existing one of the same name (the agent was
        restarted): merge our labels and replace the status."""
        self.runtime_version = await self.runtime.version()
        node = core_pb2.Node()
        node.metadata.name = self.config.node_name
        node.metadata.labels.update(node_labels(self.config))
        node.status.CopyFrom(self.build_status())
        try:
            obj = await self.client.create(api_pb2.Object(node=node))
            log.info("registered node %s", self.config.node_name)
        except AlreadyExists:
            obj = await self.client.get("nodes", self.config.node_name)
            wanted = node_labels(self.config)
            if any(obj.node.metadata.labels.get(k) != v for k, v in wanted.items()):
                obj.node.metadata.labels.update(wanted)
                obj = await self.client.update(obj)
            log.info("node %s already registered; updating it", self.config.node_name)
        self.pod_cidr = obj.node.spec.pod_cidr or (obj.node.spec.pod_cidrs[0]
                                                   if obj.node.spec.pod_cidrs else "")
        await self.write_status()
        return obj

    async def write_status(self) -> None:
        try:
            obj = await self.client.get("nodes", self.config.node_name)
        except NotFound:
            await self.register()
            return
        cidr = obj.node.spec.pod_cidr or (obj.node.spec.pod_cidrs[0]
                                          if obj.node.spec.pod_cidrs else "")
        if cidr != self.pod_cidr:
            log.info("node %s podCIDR is now %s", self.config.node_name, cidr or "(none)")
            self.pod_cidr = cidr
        if cidr and self.on_pod_cidr is not None:
            await self.on_pod_cidr(cidr)
        obj.node.status.CopyFrom(self.build_status())
        obj.node.metadata.resource_version = ""
        await self.client.update_status(obj)

    def poke(self) -> None:
        """Write status (and follow the podCIDR) now instead of at the next interval."""
        self._wake.set()

    async def _check_runtime(self) -> bool:
        """Ping Docker; True when the answer changed since the last check."""
        try:
            await asyncio.wait_for(self.runtime.ping(), timeout=5)
            error = ""
        except (ContainerRuntimeError, TimeoutError) as e:
            error = str(e) or "Docker did not answer the ping in time"
        changed = error != self.runtime_error
        if changed:
            log.warning("container runtime %s", f"down: {error}" if error else "is back")
        self.runtime_error = error
        return changed

    async def run(self, on_runtime_back: Callable[[], None] | None = None) -> None:
        """Heartbeat loop: ping Docker, write status on change or every interval."""
        loop = asyncio.get_running_loop()
        last_write = loop.time()
        while True:
            poked = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.ping_interval)
                poked = True
            self._wake.clear()
            changed = await self._check_runtime()
            if changed and not self.runtime_error and on_runtime_back is not None:
                on_runtime_back()
            if poked or changed or loop.time() - last_write >= self.config.node_status_interval:
                try:
                    await self.write_status()
                    last_write = loop.time()
                except ClientError as e:
                    log.info("node status not written: %s", e.message)
