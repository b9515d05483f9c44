"""The local terminal for `exec -t`: is a stream a terminal, how big is it, raw mode that is
always restored, and a SIGWINCH hook.

kubectl puts the terminal in raw mode for an interactive session so that every key
(Ctrl-C and Ctrl-D included) goes to the remote program, whose own TTY does the echoing
and line editing; it sends the window size first and again whenever the window changes.
A terminal left in raw mode after a crash is unusable, so restoring it lives in a
`finally` here and nowhere else. Everything takes file descriptors, so the unit tests
drive these helpers with `pty.openpty()` instead of a real terminal.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import struct
import termios
import threading
import tty
from collections.abc import Callable, Iterator
from typing import IO, Any


def fileno(stream: IO[Any] | Any) -> int | None:
    """The stream's descriptor, or None for in-memory streams (tests, redirected main)."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return fd if isinstance(fd, int) else None


def is_terminal(stream: IO[Any] | Any) -> bool:
    fd = fileno(stream)
    return fd is not None and os.isatty(fd)


def size(fd: int) -> tuple[int, int] | None:
    """(columns, rows) of the terminal on `fd`; None when it is not a terminal or reports
    zero (a pty nobody has sized yet)."""
    try:
        packed = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None
    rows, cols, _, _ = struct.unpack("HHHH", packed)
    if not rows and not cols:
        return None
    return cols, rows


def set_size(fd: int, cols: int, rows: int) -> None:
    """Set a terminal's size (tests size their ptys with this)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


@contextlib.contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """The terminal on `fd` in raw mode for the block; its previous settings afterwards,
    whatever happens inside (an exception, KeyboardInterrupt, a broken stream)."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def on_resize(callback: Callable[[], None]) -> Iterator[bool]:
    """Call `callback` on SIGWINCH during the block; yields whether the hook is installed
    (signals can only be handled in the main thread, so elsewhere it is not)."""
    if threading.current_thread() is not threading.main_thread():
        yield False
        return

    def handler(signum: int, frame: object) -> None:
        callback()

    previous = signal.signal(signal.SIGWINCH, handler)
    try:
        yield True
    finally:
        signal.signal(signal.SIGWINCH, previous)
