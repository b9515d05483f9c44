"""The fake container runtime, for scale work only: `kemu agent --runtime fake`.

Nothing runs. Containers live in a dict: created, started and stopped at once, with a
sandbox IP taken from the pod network's subnet; exec answers exit code 0 with no output,
logs say that nothing ran, events never come, stats are zero. The real agent (pod workers,
status, Lease, node status) runs unchanged on top, with Service rules and the pod network
off, so one machine can register many nodes whose pods go Running without Docker. The Node
says so: its containerRuntimeVersion is `fake://kemu-simulated`.

`kemu simulate nodes` (simulate.py) is the light-weight form for thousands of nodes in one
process; this runtime is for one full agent per node.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from kemu.api.v1 import core_pb2
from kemu.nodeagent.node import NodeStatus
from kemu.nodeagent.runtime import (
    ContainerInfo,
    ContainerNotFound,
    CreateSpec,
    ExecSession,
    RuntimeEvent,
)

FAKE_RUNTIME_NAME = "fake"
FAKE_RUNTIME_VERSION = "fake://kemu-simulated"
NO_OUTPUT = b"kemu fake runtime: this container never ran (simulated node)\n"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Network:
    subnet: str
    labels: dict[str, str]
    attached: set[str] = field(default_factory=set)


class FakeExec:
    """An exec session that ends at once with exit code 0."""

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        if False:  # pragma: no cover - an empty async generator
            yield 1, b""

    async def write(self, data: bytes) -> None:
        return None

    async def close_stdin(self) -> None:
        return None

    async def resize(self, width: int, height: int) -> None:
        return None

    async def exit_code(self) -> int:
        return 0

    async def close(self) -> None:
        return None


class FakeRuntime:
    """ContainerRuntime in memory (plus the network calls the agent makes on Docker)."""

    def __init__(self) -> None:
        self.containers: dict[str, ContainerInfo] = {}
        self.networks: dict[str, _Network] = {}
        self._ids = itertools.count(1)

    async def ping(self) -> None:
        return None

    async def version(self) -> str:
        return FAKE_RUNTIME_VERSION

    async def close(self) -> None:
        return None

    async def ensure_network(self, name: str, subnet: str, labels: Mapping[str, str], *,
                             masquerade: bool = True) -> None:
        if name not in self.networks:
            self.networks[name] = _Network(subnet, dict(labels))

    async def network_subnet(self, name: str) -> tuple[str, int] | None:
        net = self.networks.get(name)
        return None if net is None else (net.subnet, len(net.attached))

    async def remove_network(self, name: str) -> None:
        self.networks.pop(name, None)

    def _address(self, network: str, container_id: str) -> str:
        """The lowest free address of the network's subnet from .2 (.1 is the bridge)."""
        net = self.networks.get(network)
        if net is None or not net.subnet:
            return ""
        subnet = ipaddress.ip_network(net.subnet, strict=False)
        taken = {c.ip for c in self.containers.values() if c.ip}
        for host in range(2, subnet.num_addresses - 1):
            ip = str(subnet.network_address + host)
            if ip not in taken:
                net.attached.add(container_id)
                return ip
        return ""

    async def list_containers(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        return [c for c in self.containers.values()
                if all(c.labels.get(k) == v for k, v in labels.items())]

    async def image_present(self, image: str) -> bool:
        return True

    async def pull(self, image: str) -> None:
        return None

    async def create(self, spec: CreateSpec) -> str:
        cid = f"fake{next(self._ids):012d}"
        ip = ""
        if spec.network and not spec.network_mode:
            ip = self._address(spec.network, cid)
        elif spec.network_mode.startswith("container:"):
            owner = self.containers.get(spec.network_mode.removeprefix("container:"))
            ip = owner.ip if owner is not None else ""
        self.containers[cid] = ContainerInfo(
            id=cid, name=spec.name, labels=dict(spec.labels), state="created",
            created_at=_now(), image=spec.image, image_id=f"sha256:fake-{spec.image}", ip=ip)
        return cid

    def _get(self, container_id: str) -> ContainerInfo:
        info = self.containers.get(container_id)
        if info is None:
            raise ContainerNotFound(f"No such container: {container_id}")
        return info

    async def start(self, container_id: str) -> None:
        info = self._get(container_id)
        self.containers[container_id] = replace(info, state="running", started_at=_now())

    async def stop(self, container_id: str, timeout: float) -> None:
        info = self.containers.get(container_id)
        if info is not None and info.running:
            self.containers[container_id] = replace(info, state="exited", exit_code=0,
                                                    finished_at=_now())

    async def remove(self, container_id: str) -> None:
        self.containers.pop(container_id, None)
        for net in self.networks.values():
            net.attached.discard(container_id)

    def invalidate(self, container_id: str) -> None:
        return None

    async def inspect(self, container_id: str) -> ContainerInfo:
        return self._get(container_id)

    async def exec(self, container_id: str, command: Sequence[str],
                   timeout: float) -> tuple[int, bytes]:
        self._get(container_id)
        return 0, b""

    async def logs(self, container_id: str, *, follow: bool, tail: int, timestamps: bool,
                   since: int) -> AsyncIterator[bytes]:
        self._get(container_id)
        yield NO_OUTPUT

    async def exec_session(self, container_id: str, command: Sequence[str], *, stdin: bool,
                           tty: bool) -> ExecSession:
        self._get(container_id)
        return FakeExec()

    async def events(self, labels: Mapping[str, str]) -> AsyncIterator[RuntimeEvent]:
        await asyncio.Event().wait()  # nothing ever dies on its own
        yield RuntimeEvent("", "", {})  # pragma: no cover

    async def stats(self, container_id: str) -> Mapping[str, Any]:
        self._get(container_id)
        return {"cpu_stats": {}, "precpu_stats": {}, "memory_stats": {"usage": 0}}


class FakeNodeStatus(NodeStatus):
    """The agent's Node status on the fake runtime: containerRuntimeVersion says fake."""

    def build_status(self) -> core_pb2.NodeStatus:
        st = super().build_status()
        st.node_info.container_runtime_version = FAKE_RUNTIME_VERSION
        return st
