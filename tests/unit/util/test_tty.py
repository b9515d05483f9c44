"""Colour and the status line appear on a terminal only, never in a pipe or with NO_COLOR."""

from __future__ import annotations

import io
import os
import pty
from collections.abc import Iterator
from typing import TextIO

import pytest

from kemu.util.tty import StatusLine, health, paint


def test_pipes_get_plain_text() -> None:
    out = io.StringIO()
    assert paint("up", "green", out) == "up"
    assert health("Unhealthy", out) == "Unhealthy"
    line = StatusLine(out)
    line.show("waiting")
    line.clear()
    assert out.getvalue() == ""


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[TextIO]:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    leader, follower = pty.openpty()
    with os.fdopen(follower, "w") as stream:
        yield stream
    os.close(leader)


def test_terminals_get_colour_by_meaning(terminal: TextIO,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert health("Healthy", terminal) == "\033[32mHealthy\033[0m"
    assert health("Stopped", terminal) == "\033[31mStopped\033[0m"
    assert health("Pending", terminal) == "Pending"
    monkeypatch.setenv("NO_COLOR", "1")
    assert paint("up", "green", terminal) == "up"
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert paint("up", "green", terminal) == "up"


def test_status_line_rewrites_itself_and_clears(terminal: TextIO) -> None:
    written: list[str] = []
    terminal.write = written.append  # type: ignore[method-assign,assignment]
    line = StatusLine(terminal)
    line.show("waiting 1s")
    line.show("waiting 2s")
    line.clear()
    line.clear()
    assert written == ["\r\033[Kwaiting 1s", "\r\033[Kwaiting 2s", "\r\033[K"]
