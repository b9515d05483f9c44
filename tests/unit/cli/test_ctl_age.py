"""AGE cells read as kubectl's: the same breakpoints between s, m, h, d and y."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from kemu.cli.ctl.age import human_duration, since


@pytest.mark.parametrize(("seconds", "text"), [
    pytest.param(-5, "<invalid>", id="future-beyond-skew"),
    pytest.param(-1, "0s", id="clock-skew"),
    pytest.param(0, "0s", id="zero"),
    pytest.param(5, "5s", id="seconds"),
    pytest.param(119, "119s", id="under-two-minutes-stays-seconds"),
    pytest.param(120, "2m", id="two-minutes"),
    pytest.param(182, "3m2s", id="minutes-and-seconds"),
    pytest.param(300, "5m", id="whole-minutes"),
    pytest.param(10 * 60 + 59, "10m", id="ten-minutes-drops-seconds"),
    pytest.param(3 * 3600 - 1, "179m", id="under-three-hours-in-minutes"),
    pytest.param(3 * 3600, "3h", id="three-hours"),
    pytest.param(5 * 3600 + 30 * 60, "5h30m", id="hours-and-minutes"),
    pytest.param(20 * 3600, "20h", id="hours-only-past-eight"),
    pytest.param(2 * 86400 + 3 * 3600, "2d3h", id="days-and-hours"),
    pytest.param(3 * 86400, "3d", id="whole-days"),
    pytest.param(150 * 86400, "150d", id="days-only-past-eight"),
    pytest.param(3 * 365 * 86400 + 20 * 86400, "3y20d", id="years-and-days"),
    pytest.param(10 * 365 * 86400, "10y", id="years"),
])
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_since_unset_timestamp_is_unknown() -> None:
    assert since(Timestamp(), now=1000.0) == "<unknown>"


def test_since_counts_from_now() -> None:
    assert since(Timestamp(seconds=1000), now=1000.0 + 182) == "3m2s"
