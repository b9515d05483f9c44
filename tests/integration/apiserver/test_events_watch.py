"""Event watches, served without the watch cache (as kube-apiserver's "events": 0): each
one reads the store itself, with the same contract as every other kind's."""

from __future__ import annotations

import itertools
import uuid

import pytest

from kemu.api import manifest, objects
from kemu.api.v1 import api_pb2
from kemu.client import Client

pytestmark = pytest.mark.integration
W = api_pb2.WatchEvent
_names = itertools.count()


def namespace(api: Client) -> str:
    name = f"ev-{next(_names)}-{uuid.uuid4().hex[:4]}"
    api.create(manifest.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": name}}))
    return name


def event(name: str, ns: str, reason: str = "Started") -> api_pb2.Object:
    return manifest.from_dict({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "a"}},
        "involvedObject": {"kind": "Pod", "name": name, "namespace": ns},
        "reason": reason, "message": f"{name}: {reason}", "type": "Normal", "count": 1})


def names(events: list[api_pb2.WatchEvent]) -> list[tuple[int, str]]:
    return [(e.type, objects.meta(e.object).name) for e in events]


def test_event_watch_from_now_lists_existing_events_then_follows(api: Client) -> None:
    ns = namespace(api)
    api.create(event("old", ns))
    stream = iter(api.watch("events", ns, timeout=10))
    first = next(stream)
    assert (first.type, objects.meta(first.object).name) == (W.ADDED, "old")
    assert first.object.event.kind == "Event" and first.object.event.reason == "Started"
    api.create(event("new", ns))
    second = next(stream)
    assert (second.type, objects.meta(second.object).name) == (W.ADDED, "new")


def test_event_watch_resumes_and_reports_updates_deletes_and_selectors(api: Client) -> None:
    ns = namespace(api)
    start = api.list("events", ns).resource_version
    created = api.create(event("e", ns))
    created.event.count = 2
    updated = api.update(created)
    updated.event.metadata.labels["app"] = "b"
    api.update(updated)
    api.delete("events", "e", ns)
    seen: list[api_pb2.WatchEvent] = []
    for ev in api.watch("events", ns, resource_version=start, timeout=10):
        seen.append(ev)
        if len(seen) == 4:
            break
    assert names(seen) == [(W.ADDED, "e"), (W.MODIFIED, "e"), (W.MODIFIED, "e"),
                           (W.DELETED, "e")]
    assert seen[1].object.event.count == 2
    rvs = [int(objects.meta(e.object).resource_version) for e in seen]
    assert rvs == sorted(rvs) and len(set(rvs)) == 4
    selected: list[api_pb2.WatchEvent] = []
    for ev in api.watch("events", ns, label_selector="app=a", resource_version=start,
                        timeout=10):
        selected.append(ev)
        if len(selected) == 3:
            break
    # The relabelled event leaves the selector: DELETED, as with the watch cache.
    assert names(selected) == [(W.ADDED, "e"), (W.MODIFIED, "e"), (W.DELETED, "e")]


def test_event_watch_bookmarks_carry_a_version(api: Client) -> None:
    ns = namespace(api)
    api.create(event("b", ns))
    for ev in api.watch("events", ns, resource_version=api.list("events", ns).resource_version,
                        allow_bookmarks=True, timeout=15):
        assert ev.type == W.BOOKMARK
        assert int(objects.meta(ev.object).resource_version) > 0
        break
    else:
        pytest.fail("no bookmark within 15 s")
