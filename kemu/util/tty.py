"""Terminal niceties that must never reach a pipe: colour and a self-rewriting status line.

Both are on only when the stream is a terminal, NO_COLOR (https://no-color.org) is unset
for colour, and TERM is not `dumb`; a script reading kemu's output gets plain lines.
"""

from __future__ import annotations

import os
from typing import IO, Any

_CODES = {"green": "32", "red": "31", "yellow": "33", "bold": "1"}


def is_terminal(stream: IO[Any] | Any) -> bool:
    try:
        return bool(stream.isatty()) and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, OSError, ValueError):
        return False


def paint(text: str, colour: str, stream: IO[Any] | Any) -> str:
    """`text` in `colour` (green, red, yellow, bold) when `stream` is a colour terminal."""
    if "NO_COLOR" in os.environ or not is_terminal(stream):
        return text
    return f"\033[{_CODES[colour]}m{text}\033[0m"


def health(text: str, stream: IO[Any] | Any) -> str:
    """A health or status word coloured by meaning: green when good, red when bad."""
    good = text in ("Healthy", "Ready", "Running", "Succeeded", "Complete")
    bad = text in ("Unhealthy", "Stopped", "NotReady", "Failed", "Error", "CrashLoopBackOff")
    return paint(text, "green", stream) if good else paint(text, "red", stream) if bad else text


class StatusLine:
    """One line of progress that rewrites itself on a terminal (`\\r`, clear to end of
    line) and prints nothing at all elsewhere; `clear()` removes it before real output."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.enabled = is_terminal(stream)
        self._shown = False

    def show(self, text: str) -> None:
        if self.enabled:
            self.stream.write(f"\r\033[K{text}")
            self.stream.flush()
            self._shown = True

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._shown = False
