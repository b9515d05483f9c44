"""Fakes for the pod worker's side effects: an in-memory container runtime, a recording
API client and event recorder. Tests drive time with FakeClock and container exits with
`FakeRuntime.exit`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kemu.api.v1 import api_pb2
from kemu.nodeagent.clock import FakeClock
from kemu.nodeagent.runtime import (
    ContainerInfo,
    ContainerNotFound,
    CreateSpec,
    ExecSession,
    ImagePullError,
    RuntimeEvent,
)


@dataclass
class FakeRuntime:
    """Containers in a dict; every call is recorded as (verb, name-or-id)."""

    clock: FakeClock
    images: set[str] = field(default_factory=set)
    containers: dict[str, ContainerInfo] = field(default_factory=dict)
    specs: dict[str, CreateSpec] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    _next: int = 0

    async def ping(self) -> None:
        return None

    async def version(self) -> str:
        return "fake"

    async def ensure_network(self, name: str, subnet: str, labels: Mapping[str, str], *,
                             masquerade: bool = True) -> None:
        return None

    async def list_containers(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        return [c for c in self.containers.values()
                if all(c.labels.get(k) == v for k, v in labels.items())]

    async def image_present(self, image: str) -> bool:
        return image in self.images

    async def pull(self, image: str) -> None:
        self.calls.append(("pull", image))
        raise ImagePullError(f"pull access denied for {image}")

    async def create(self, spec: CreateSpec) -> str:
        self._next += 1
        cid = f"c{self._next:03d}"
        ip = f"10.0.0.{self._next}" if spec.network else ""
        self.containers[cid] = ContainerInfo(id=cid, name=spec.name, labels=dict(spec.labels),
                                             state="created", image=spec.image, ip=ip,
                                             created_at=self.clock.now())
        self.specs[cid] = spec
        self.calls.append(("create", spec.name))
        return cid

    async def start(self, container_id: str) -> None:
        c = self.containers[container_id]
        self.containers[container_id] = replace(c, state="running", started_at=self.clock.now())
        self.calls.append(("start", c.name))

    def exit(self, container_id: str, code: int) -> None:
        c = self.containers[container_id]
        self.containers[container_id] = replace(c, state="exited", exit_code=code,
                                                finished_at=self.clock.now())

    async def stop(self, container_id: str, timeout: float) -> None:
        c = self.containers.get(container_id)
        if c is None:
            return
        self.calls.append(("stop", f"{c.name}/{timeout:g}"))
        if c.running:
            self.exit(container_id, 137 if timeout == 0 else 0)

    async def remove(self, container_id: str) -> None:
        c = self.containers.pop(container_id, None)
        if c is not None:
            self.calls.append(("remove", c.name))

    def invalidate(self, container_id: str) -> None:
        return None

    async def inspect(self, container_id: str) -> ContainerInfo:
        if container_id not in self.containers:
            raise ContainerNotFound(container_id)
        return self.containers[container_id]

    async def exec(self, container_id: str, command: Sequence[str],
                   timeout: float) -> tuple[int, bytes]:
        return 0, b""

    async def logs(self, container_id: str, *, follow: bool, tail: int, timestamps: bool,
                   since: int) -> AsyncIterator[bytes]:
        yield b""

    async def exec_session(self, container_id: str, command: Sequence[str], *, stdin: bool,
                           tty: bool) -> ExecSession:
        raise NotImplementedError

    async def events(self, labels: Mapping[str, str]) -> AsyncIterator[RuntimeEvent]:
        if False:  # pragma: no cover - an empty async generator
            yield RuntimeEvent("", "", {})

    def named(self, container: str) -> list[ContainerInfo]:
        return [c for c in self.containers.values()
                if c.labels.get("io.kemu.container") == container]


@dataclass
class FakeClient:
    """Records status writes and deletes."""

    statuses: list[api_pb2.Object] = field(default_factory=list)
    deletes: list[tuple[str, str, str, int | None, str]] = field(default_factory=list)

    async def update_status(self, obj: api_pb2.Object) -> api_pb2.Object:
        self.statuses.append(obj)
        return obj

    async def delete(self, resource: str, name: str, namespace: str = "", *,
                     grace_period_seconds: int | None = None, uid: str = "") -> Any:
        self.deletes.append((resource, namespace, name, grace_period_seconds, uid))


@dataclass
class FakeRecorder:
    events: list[tuple[str, str, str, str]] = field(default_factory=list)

    def event(self, pod: Any, type_: str, reason: str, message: str,
              container: str = "") -> None:
        self.events.append((type_, reason, message, container))

    def reasons(self) -> list[str]:
        return [e[1] for e in self.events]


@dataclass
class FakeProvisioner:
    """Claims resolve to directories under `root`."""

    root: Any

    async def claim_path(self, namespace: str, claim: str) -> Any:
        path = self.root / f"{namespace}-{claim}"
        path.mkdir(parents=True, exist_ok=True)
        return path
