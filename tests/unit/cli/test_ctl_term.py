"""exec's terminal handling, on a pseudo-terminal from pty.openpty() (CI has no real one):
raw mode and its restoration, sizes, SIGWINCH, and the order of the request stream."""

from __future__ import annotations

import io
import os
import pty
import signal
import termios
import threading
from collections.abc import Iterator

import pytest

from kemu.api.v1 import api_pb2
from kemu.cli.ctl import term
from kemu.cli.ctl.cmd_exec import ExecSession, stdin_reader


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, int]]:
    master, slave = pty.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)


def lflag(fd: int) -> int:
    return int(termios.tcgetattr(fd)[3])


def test_raw_mode_clears_echo_and_canonical_mode_and_restores(
        pty_pair: tuple[int, int]) -> None:
    _, slave = pty_pair
    before = termios.tcgetattr(slave)
    assert lflag(slave) & termios.ICANON and lflag(slave) & termios.ECHO
    with term.raw_mode(slave):
        assert not lflag(slave) & (termios.ICANON | termios.ECHO | termios.ISIG)
    assert termios.tcgetattr(slave) == before


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_raw_mode_is_restored_when_the_session_fails(pty_pair: tuple[int, int],
                                                     exc: type[BaseException]) -> None:
    _, slave = pty_pair
    before = termios.tcgetattr(slave)
    with pytest.raises(exc), term.raw_mode(slave):
        raise exc()
    assert termios.tcgetattr(slave) == before


def test_raw_mode_passes_keys_through(pty_pair: tuple[int, int]) -> None:
    master, slave = pty_pair
    with term.raw_mode(slave):
        os.write(master, b"\x03a")  # Ctrl-C is a byte to send, not a signal
        assert os.read(slave, 10) == b"\x03a"


def test_size(pty_pair: tuple[int, int]) -> None:
    master, slave = pty_pair
    term.set_size(master, 132, 43)
    assert term.size(slave) == (132, 43)
    term.set_size(master, 0, 0)
    assert term.size(slave) is None


def test_size_of_a_non_terminal() -> None:
    r, w = os.pipe()
    try:
        assert term.size(r) is None
    finally:
        os.close(r)
        os.close(w)


def test_is_terminal(pty_pair: tuple[int, int]) -> None:
    _, slave = pty_pair
    with open(slave, "rb", buffering=0, closefd=False) as stream:
        assert term.is_terminal(stream)
    assert not term.is_terminal(io.StringIO())
    r, w = os.pipe()
    with open(r, "rb") as pipe_in:
        assert not term.is_terminal(pipe_in)
    os.close(w)


def test_on_resize_calls_back_and_restores_the_handler() -> None:
    called = threading.Event()
    previous = signal.getsignal(signal.SIGWINCH)
    with term.on_resize(called.set) as installed:
        assert installed
        os.kill(os.getpid(), signal.SIGWINCH)
        assert called.wait(5)
    assert signal.getsignal(signal.SIGWINCH) == previous


def test_on_resize_outside_the_main_thread_is_a_no_op() -> None:
    seen: list[bool] = []

    def body() -> None:
        with term.on_resize(lambda: None) as installed:
            seen.append(installed)

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == [False]


def kinds(reqs: list[api_pb2.ExecRequest]) -> list[str | None]:
    return [r.WhichOneof("input") for r in reqs]


def test_session_sends_start_then_resize_then_stdin_then_close() -> None:
    session = ExecSession(api_pb2.ExecRequest.Start(name="p", command=["sh"], stdin=True,
                                                    tty=True))
    session.resize((80, 24))
    session.pump_stdin(stdin_reader(io.BytesIO(b""), raw_fd=None)).join(5)
    session.resize(None)  # no terminal size known: nothing sent
    session.close()
    reqs = list(session.requests())
    assert kinds(reqs) == ["start", "resize", "close_stdin"]
    assert (reqs[1].resize.width, reqs[1].resize.height) == (80, 24)


def test_stdin_is_sent_in_chunks_then_closed() -> None:
    session = ExecSession(api_pb2.ExecRequest.Start(name="p", command=["cat"], stdin=True))
    stream = io.TextIOWrapper(io.BytesIO(b"hello\nworld\n"))
    session.pump_stdin(stdin_reader(stream, raw_fd=None)).join(5)
    session.close()
    reqs = list(session.requests())
    assert kinds(reqs)[0] == "start" and kinds(reqs)[-1] == "close_stdin"
    assert b"".join(r.stdin for r in reqs[1:-1]) == b"hello\nworld\n"


def test_raw_terminal_stdin_is_read_as_typed(pty_pair: tuple[int, int]) -> None:
    master, slave = pty_pair
    with term.raw_mode(slave):
        os.write(master, b"x")
        assert stdin_reader(None, raw_fd=slave)() == b"x"
