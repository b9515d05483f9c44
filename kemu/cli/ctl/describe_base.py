"""The frame of every `kemuctl describe` output: kubectl's PrefixWriter (two spaces per
level, tab-separated cells laid out by Go's tabwriter with padding 2), the Name /
Namespace / Labels / Annotations header, and the Events section that closes it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kemu.api.v1 import api_pb2
from kemu.cli.ctl import tabwriter
from kemu.cli.ctl.age import seconds_of, since

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MAX_ANNOTATION = 140


class Writer:
    """Collects `level`-indented lines; `text()` aligns their tab-separated cells."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def write(self, level: int, text: str) -> None:
        self._parts.append("  " * level + text)

    def line(self, level: int, *cells: object) -> None:
        self.write(level, "\t".join(str(c) for c in cells) + "\n")

    def text(self) -> str:
        return tabwriter.format_text("".join(self._parts), minwidth=0, padding=2)


def labels_multiline(w: Writer, title: str, labels: Mapping[str, str], *,
                     level: int = 0) -> None:
    """`Labels:  a=1` then one `k=v` per line under it; `<none>` when empty."""
    if not labels:
        w.line(level, f"{title}:", "<none>")
        return
    for i, key in enumerate(sorted(labels)):
        w.line(level, f"{title}:" if i == 0 else "", f"{key}={labels[key]}")


def annotations_multiline(w: Writer, title: str, annotations: Mapping[str, str], *,
                          level: int = 0) -> None:
    """As kubectl: the last-applied configuration is skipped, long values are cut."""
    shown = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    if not shown:
        w.line(level, f"{title}:", "<none>")
        return
    for i, key in enumerate(sorted(shown)):
        value = shown[key].replace("\n", " ")
        if len(value) > MAX_ANNOTATION:
            value = value[:MAX_ANNOTATION] + "..."
        w.line(level, f"{title}:" if i == 0 else "", f"{key}: {value}")


def header(w: Writer, meta: Any, *, namespaced: bool = True) -> None:
    w.line(0, "Name:", meta.name)
    if namespaced:
        w.line(0, "Namespace:", meta.namespace)
    labels_multiline(w, "Labels", meta.labels)
    annotations_multiline(w, "Annotations", meta.annotations)


def controlled_by(w: Writer, meta: Any) -> None:
    for ref in meta.owner_references:
        if ref.HasField("controller") and ref.controller:
            w.line(0, "Controlled By:", f"{ref.kind}/{ref.name}")


def _event_age(event: Any, now: float) -> str:
    first_ts = event.event_time if seconds_of(event.event_time) is not None \
        else event.first_timestamp
    first = since(first_ts, now)
    if event.HasField("series"):
        return f"{since(event.series.last_observed_time, now)} (x{event.series.count} over " \
               f"{first})"
    if event.count > 1:
        return f"{since(event.last_timestamp, now)} (x{event.count} over {first})"
    return first


def _event_time(event: Any) -> float:
    for ts in (event.last_timestamp, event.event_time, event.first_timestamp):
        at = seconds_of(ts)
        if at is not None:
            return at
    return 0.0


def events_section(w: Writer, events: list[api_pb2.Object], now: float) -> None:
    if not events:
        w.line(0, "Events:", "<none>")
        return
    w.write(0, "Events:\n")
    w.line(1, "Type", "Reason", "Age", "From", "Message")
    w.line(1, "----", "------", "----", "----", "-------")
    for obj in sorted(events, key=lambda o: _event_time(o.event)):
        e = obj.event
        source = e.source.component or e.reporting_component
        w.line(1, e.type, e.reason, _event_age(e, now), source, e.message.strip())
