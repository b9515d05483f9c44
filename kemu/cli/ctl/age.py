"""Ages and durations worded as kubectl words them (apimachinery's `duration.HumanDuration`):
5s, 119s, 3m2s, 12m, 5h30m, 2d3h, 150d, 3y20d. Users read these columns at a glance and
scripts grep them, so the breakpoints match kubectl's exactly."""

from __future__ import annotations

import datetime
import time
from typing import Any


def human_duration(seconds: float) -> str:
    """kubectl's HumanDuration of a number of seconds."""
    secs = int(seconds)
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 60 * 2:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        rest = secs % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def seconds_of(ts: Any) -> float | None:
    """A google.protobuf.Timestamp as epoch seconds; None when unset (zero)."""
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return float(ts.seconds) + float(ts.nanos) / 1e9


def since(ts: Any, now: float | None = None) -> str:
    """kubectl's translateTimestampSince: the age of a timestamp, `<unknown>` when unset."""
    at = seconds_of(ts)
    if at is None:
        return "<unknown>"
    return human_duration((time.time() if now is None else now) - at)


def rfc1123z(ts: Any) -> str:
    """`Mon, 02 Jan 2006 15:04:05 +0000`, the time format of kubectl describe."""
    at = seconds_of(ts)
    if at is None:
        return "<unset>"
    moment = datetime.datetime.fromtimestamp(at, tz=datetime.UTC).astimezone()
    return moment.strftime("%a, %d %b %Y %H:%M:%S %z")
