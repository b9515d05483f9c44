"""Recording Events the way client-go's EventRecorder does, for every component.

The node agent records pod events (Pulling, Started, BackOff, Unhealthy...), controllers
record theirs (SuccessfulCreate, ScalingReplicaSet, SuccessfulDelete...). Recording never
blocks the caller: events go on a bounded queue drained by one task. A repeat of the same
(object, reason, message) updates the existing Event's count and lastTimestamp instead of
creating another, as client-go's event correlator does, so a crash-looping container shows
`BackOff (x12 over 5m)` in `kemuctl describe`.

    recorder = EventRecorder(client, "replicaset-controller")
    recorder.start()
    recorder.emit("ReplicaSet", rs, NORMAL, "SuccessfulCreate", f"Created pod: {name}")
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from kemu.api import kinds
from kemu.api.v1 import api_pb2, core_pb2, meta_pb2
from kemu.client.errors import ClientError, Conflict, NotFound
from kemu.util.logsetup import v_level

log = logging.getLogger(__name__)
V3 = v_level(3)
NORMAL, WARNING = "Normal", "Warning"


class Recorder(Protocol):
    """Where the node agent's parts send pod events."""

    def event(self, pod: Any, type_: str, reason: str, message: str,
              container: str = "") -> None: ...


class ObjectRecorder(Protocol):
    """Where controllers send events about any object."""

    def emit(self, kind: str, obj: Any, type_: str, reason: str, message: str, *,
             field_path: str = "") -> None: ...


class EventWriter(Protocol):
    """The subset of AsyncClient the recorder needs (a fake in unit tests)."""

    async def create(self, obj: api_pb2.Object) -> api_pb2.Object: ...

    async def update(self, obj: api_pb2.Object) -> api_pb2.Object: ...


@dataclass
class _Pending:
    ref: meta_pb2.ObjectReference
    type: str
    reason: str
    message: str
    at: float


def field_path(pod: Any, container: str) -> str:
    if not container:
        return ""
    if any(c.name == container for c in pod.spec.init_containers):
        return f"spec.initContainers{{{container}}}"
    return f"spec.containers{{{container}}}"


class EventRecorder:
    """Aggregating, non-blocking event recorder for one component.

    `component` is the Event's source and reportingComponent (`kubelet`,
    `deployment-controller`...); `instance` its reportingInstance and `host` its source
    host (the node name for the kubelet)."""

    def __init__(self, client: EventWriter, component: str, *, instance: str = "",
                 host: str = "", max_cached: int = 4096, queue_size: int = 2048) -> None:
        self.client = client
        self.component = component
        self.instance = instance
        self.host = host
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=queue_size)
        self._seen: OrderedDict[tuple[str, ...], api_pb2.Object] = OrderedDict()
        self._max = max_cached
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._drain(), name="events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def event(self, pod: Any, type_: str, reason: str, message: str,
              container: str = "") -> None:
        """A pod event, optionally about one of its containers (the kubelet's form)."""
        self.emit("Pod", pod, type_, reason, message, field_path=field_path(pod, container))

    def emit(self, kind: str, obj: Any, type_: str, reason: str, message: str, *,
             field_path: str = "") -> None:
        """An event about `obj`, a typed object of `kind` (e.g. a core_pb2.Pod)."""
        m = obj.metadata
        ref = meta_pb2.ObjectReference(kind=kind, namespace=m.namespace, name=m.name,
                                       uid=m.uid, api_version=kinds.resolve(kind).api_version,
                                       resource_version=m.resource_version,
                                       field_path=field_path)
        # At -v 3, not INFO: a burst of pods records thousands of events, and a line for
        # each cost the controller manager time it needed for its informers;
        # `kemuctl get events` shows them all.
        log.log(V3, "event %s %s/%s %s %s: %s", kind, m.namespace, m.name, type_, reason,
                message)
        try:
            self._queue.put_nowait(_Pending(ref, type_, reason, message, time.time()))
        except asyncio.QueueFull:
            log.warning("event queue full; dropping %s %s", reason, message)

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until queued events are written, including the one being written (used at
        shutdown and in tests)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout)

    async def _drain(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._write(item)
            except asyncio.CancelledError:
                raise
            except ClientError as e:
                log.info("event %s not recorded: %s", item.reason, e.message)
            except Exception:
                log.exception("event %s not recorded", item.reason)
            finally:
                self._queue.task_done()

    async def _write(self, item: _Pending) -> None:
        key = (item.ref.uid, item.ref.field_path, item.type, item.reason, item.message)
        ts = core_pb2.Event().last_timestamp
        ts.FromSeconds(int(item.at))
        prior = self._seen.get(key)
        if prior is not None:
            obj = api_pb2.Object()
            obj.CopyFrom(prior)
            obj.event.count += 1
            obj.event.last_timestamp.CopyFrom(ts)
            obj.event.series.count = obj.event.count
            obj.event.series.last_observed_time.CopyFrom(ts)
            try:
                updated = await self.client.update(obj)
            except (Conflict, NotFound):
                self._seen.pop(key, None)
            else:
                self._remember(key, updated)
                return
        ev = core_pb2.Event(involved_object=item.ref, reason=item.reason, message=item.message,
                            type=item.type, count=1, reporting_component=self.component,
                            reporting_instance=self.instance,
                            source=core_pb2.EventSource(component=self.component,
                                                        host=self.host))
        ev.metadata.namespace = item.ref.namespace or "default"
        ev.metadata.name = f"{item.ref.name}.{time.time_ns():x}"
        ev.first_timestamp.CopyFrom(ts)
        ev.last_timestamp.CopyFrom(ts)
        obj = api_pb2.Object(event=ev)
        created = await self.client.create(obj)
        self._remember(key, created)

    def _remember(self, key: tuple[str, ...], obj: api_pb2.Object) -> None:
        self._seen[key] = obj
        self._seen.move_to_end(key)
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)


class Discard:
    """An ObjectRecorder that records nothing: the default of controllers built without a
    recorder (unit tests, tools)."""

    def emit(self, kind: str, obj: Any, type_: str, reason: str, message: str, *,
             field_path: str = "") -> None:
        del kind, obj, type_, reason, message, field_path


DISCARD = Discard()
