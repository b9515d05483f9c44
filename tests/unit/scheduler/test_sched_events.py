"""The event recorder: Scheduled events, and FailedScheduling aggregated into one Event
whose count grows (also across a restart of the recorder)."""

from __future__ import annotations

from kemu.services.scheduler.events import EventRecorder, series_name
from tests.unit.scheduler.sched_builders import FakeClient, pod


async def test_scheduled_event() -> None:
    client = FakeClient()
    rec = EventRecorder(client, clock=lambda: 1_700_000_000.5)
    rec.scheduled(pod("web", namespace="prod"), "node-1")
    await rec.flush()
    [(_, e)] = [(k, v.event) for k, v in client.events.items()]
    assert (e.type, e.reason, e.message) == ("Normal", "Scheduled",
                                            "Successfully assigned prod/web to node-1")
    assert e.metadata.name.startswith("web.")
    assert (e.involved_object.kind, e.involved_object.name, e.involved_object.namespace) == \
        ("Pod", "web", "prod")
    assert e.source.component == "default-scheduler"
    assert e.count == 1 and e.first_timestamp.seconds == 1_700_000_000


async def test_failed_scheduling_is_aggregated() -> None:
    client = FakeClient()
    now = [100.0]
    rec = EventRecorder(client, clock=lambda: now[0])
    p = pod("big")
    msg = "0/3 nodes are available: 3 Insufficient cpu."
    rec.failed_scheduling(p, msg)
    await rec.flush()
    now[0] = 160.0
    rec.failed_scheduling(p, msg)
    rec.failed_scheduling(p, msg)  # coalesced with the previous while it is in flight
    await rec.flush()
    assert len(client.events) == 1
    e = client.events[("default", series_name(p, "FailedScheduling", msg))].event
    assert (e.type, e.reason, e.message, e.count) == ("Warning", "FailedScheduling", msg, 3)
    assert (e.first_timestamp.seconds, e.last_timestamp.seconds) == (100, 160)
    assert len(client.event_writes) <= 3


async def test_new_message_is_a_new_event() -> None:
    client = FakeClient()
    rec = EventRecorder(client)
    rec.failed_scheduling(pod("big"), "0/3 nodes are available: 3 Insufficient cpu.")
    rec.failed_scheduling(pod("big"), "0/4 nodes are available: 4 Insufficient cpu.")
    await rec.flush()
    assert len(client.events) == 2


async def test_restarted_recorder_continues_the_same_event() -> None:
    client = FakeClient()
    p = pod("big")
    for _ in range(2):
        rec = EventRecorder(client)
        rec.failed_scheduling(p, "no nodes available to schedule pods")
        await rec.flush()
    [e] = [v.event for v in client.events.values()]
    assert e.count == 2
