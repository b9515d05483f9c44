"""The event recorder: involvedObject, field paths, and aggregation of repeats."""

from __future__ import annotations

import asyncio

from kemu.api import manifest
from kemu.api.v1 import api_pb2
from kemu.client.errors import NotFound
from kemu.client.events import EventRecorder


class FakeWriter:
    def __init__(self) -> None:
        self.created: list[api_pb2.Object] = []
        self.updated: list[api_pb2.Object] = []
        self.fail_update = False

    async def create(self, obj: api_pb2.Object) -> api_pb2.Object:
        self.created.append(obj)
        return obj

    async def update(self, obj: api_pb2.Object) -> api_pb2.Object:
        if self.fail_update:
            raise NotFound("gone")
        self.updated.append(obj)
        return obj


POD = manifest.from_dict({"apiVersion": "v1", "kind": "Pod",
                          "metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
                          "spec": {"initContainers": [{"name": "setup", "image": "i"}],
                                   "containers": [{"name": "app", "image": "i"}]}}).pod


async def test_create_then_count_repeats() -> None:
    w = FakeWriter()
    rec = EventRecorder(w, "kubelet", instance="node-1", host="node-1")
    rec.start()
    rec.event(POD, "Warning", "BackOff", "Back-off restarting failed container", "app")
    rec.event(POD, "Warning", "BackOff", "Back-off restarting failed container", "app")
    rec.event(POD, "Normal", "Started", "Started container setup", "setup")
    await rec.flush()
    await asyncio.sleep(0.01)
    await rec.stop()
    assert len(w.created) == 2 and len(w.updated) == 1
    ev = w.created[0].event
    assert (ev.metadata.namespace, ev.type, ev.reason, ev.count) == ("shop", "Warning",
                                                                    "BackOff", 1)
    ref = ev.involved_object
    assert (ref.kind, ref.name, ref.uid, ref.field_path) == ("Pod", "web", "u1",
                                                              "spec.containers{app}")
    assert ev.source.component == "kubelet" and ev.source.host == "node-1"
    assert ev.metadata.name.startswith("web.")
    assert w.updated[0].event.count == 2
    assert w.created[1].event.involved_object.field_path == "spec.initContainers{setup}"


async def test_deleted_event_is_created_again() -> None:
    w = FakeWriter()
    rec = EventRecorder(w, "kubelet", instance="n", host="n")
    rec.start()
    rec.event(POD, "Normal", "Pulled", "x")
    await rec.flush()
    await asyncio.sleep(0.01)
    w.fail_update = True
    rec.event(POD, "Normal", "Pulled", "x")
    await rec.flush()
    await asyncio.sleep(0.01)
    await rec.stop()
    assert len(w.created) == 2
