"""Events the scheduler reports about pods: Scheduled (Normal) and FailedScheduling (Warning).

Events are ordinary objects written through the API, off the scheduling path: a cycle
only queues the write. A pod that keeps failing for the same reason must not produce a new
Event per retry, so FailedScheduling events are aggregated as kubectl users know them
("(x12 over 5m)"): one Event per pod, reason and message, whose count and lastTimestamp
are updated. Its name is derived from those (pod name + hash), so a restarted scheduler
finds and continues the same Event instead of starting another. Writes for one Event are
coalesced: while one is in flight, further occurrences only raise the count it will write
next.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from kemu.api.v1 import api_pb2, core_pb2
from kemu.client.errors import AlreadyExists, ClientError, Conflict, NotFound

log = logging.getLogger("kemu.scheduler.events")
COMPONENT = "default-scheduler"


class EventClient(Protocol):
    """The API calls the recorder makes (AsyncClient has them)."""

    async def create(self, obj: api_pb2.Object) -> api_pb2.Object: ...
    async def get(self, resource: str, name: str, namespace: str = "") -> api_pb2.Object: ...
    async def update(self, obj: api_pb2.Object) -> api_pb2.Object: ...


def series_name(pod: core_pb2.Pod, reason: str, message: str) -> str:
    """A stable Event name for one (pod, reason, message): `<pod>.<16 hex>`."""
    digest = hashlib.sha256(f"{pod.metadata.uid}\0{reason}\0{message}".encode()).hexdigest()
    return f"{pod.metadata.name[:200]}.{digest[:16]}"


def build_event(pod: core_pb2.Pod, *, name: str, type_: str, reason: str, message: str,
                action: str, now: float, count: int = 1, component: str = COMPONENT
                ) -> api_pb2.Object:
    obj = api_pb2.Object()
    e = obj.event
    e.metadata.name = name
    e.metadata.namespace = pod.metadata.namespace
    ref = e.involved_object
    ref.kind, ref.api_version = "Pod", "v1"
    ref.namespace, ref.name, ref.uid = pod.metadata.namespace, pod.metadata.name, \
        pod.metadata.uid
    ref.resource_version = pod.metadata.resource_version
    e.reason, e.message, e.type, e.action = reason, message, type_, action
    e.source.component = component
    e.reporting_component = component
    e.reporting_instance = f"{component}-{socket.gethostname()}"
    e.first_timestamp.FromSeconds(int(now))
    e.last_timestamp.FromSeconds(int(now))
    e.count = count
    return obj


@dataclass
class _Series:
    pod: core_pb2.Pod
    reason: str
    message: str
    name: str
    pending: int = 0
    last_seen: float = 0.0
    written: api_pb2.Object | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class EventRecorder:
    """Queue Event writes; aggregate repeated warnings."""

    def __init__(self, client: EventClient, *, component: str = COMPONENT,
                 clock: Callable[[], float] = time.time, max_in_flight: int = 32) -> None:
        self.client = client
        self.component = component
        self.clock = clock
        self._series: dict[str, dict[tuple[str, str], _Series]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(max_in_flight)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def scheduled(self, pod: core_pb2.Pod, node: str) -> None:
        """Normal/Scheduled: `Successfully assigned <ns>/<pod> to <node>`."""
        now = self.clock()
        message = f"Successfully assigned {pod.metadata.namespace}/{pod.metadata.name} " \
                  f"to {node}"
        name = f"{pod.metadata.name[:200]}.{int(now * 1e9):x}"
        obj = build_event(pod, name=name, type_="Normal", reason="Scheduled", message=message,
                          action="Binding", now=now, component=self.component)
        self._spawn(self._create(obj))

    def failed_scheduling(self, pod: core_pb2.Pod, message: str) -> None:
        """Warning/FailedScheduling, aggregated per (pod, message)."""
        self.warning(pod, "FailedScheduling", message, action="Scheduling")

    def warning(self, pod: core_pb2.Pod, reason: str, message: str, *, action: str) -> None:
        per_pod = self._series.setdefault(pod.metadata.uid, {})
        s = per_pod.get((reason, message))
        if s is None:
            s = per_pod[(reason, message)] = _Series(pod, reason, message,
                                                     series_name(pod, reason, message))
        s.pod = pod
        s.pending += 1
        s.last_seen = self.clock()
        if s.task is None or s.task.done():
            s.task = self._spawn(self._write_series(s, action))

    def forget_pod(self, uid: str) -> None:
        """The pod is scheduled or gone: stop tracking its warnings."""
        self._series.pop(uid, None)

    async def _create(self, obj: api_pb2.Object) -> None:
        async with self._slots:
            try:
                await self.client.create(obj)
            except ClientError as e:
                log.warning("event %s/%s not recorded: %s", obj.event.metadata.namespace,
                            obj.event.metadata.name, e.message)

    async def _write_series(self, s: _Series, action: str) -> None:
        async with self._slots:
            while s.pending > 0:
                n, s.pending = s.pending, 0
                try:
                    s.written = await self._write_once(s, n, action)
                except ClientError as e:
                    log.warning("event %s/%s not recorded: %s", s.pod.metadata.namespace,
                                s.name, e.message)
                    s.written = None
                    return

    async def _write_once(self, s: _Series, n: int, action: str) -> api_pb2.Object:
        ns = s.pod.metadata.namespace
        for _attempt in range(3):
            if s.written is None:
                obj = build_event(s.pod, name=s.name, type_="Warning", reason=s.reason,
                                  message=s.message, action=action, now=s.last_seen, count=n,
                                  component=self.component)
                try:
                    return await self.client.create(obj)
                except AlreadyExists:
                    # Written before (by us, before a restart): continue its count.
                    s.written = await self.client.get("events", s.name, ns)
                    continue
            obj = api_pb2.Object()
            obj.CopyFrom(s.written)
            obj.event.count += n
            obj.event.last_timestamp.FromSeconds(int(s.last_seen))
            try:
                return await self.client.update(obj)
            except Conflict:
                s.written = await self.client.get("events", s.name, ns)
            except NotFound:
                s.written = None
        raise Conflict(f"event {ns}/{s.name} kept changing")

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait (bounded) for queued writes, e.g. before shutting down."""
        if self._tasks:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True),
                                       timeout)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)
