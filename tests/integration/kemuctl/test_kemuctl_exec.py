"""`kemuctl exec` through the real apiserver to a stand-in node agent: stdin is sent in
chunks and closed, the remote exit code becomes kemuctl's, the default container is
announced, and with -t (driven on a pseudo-terminal) the terminal is raw for the session,
the size goes first, SIGWINCH sends a new one, and the terminal is restored after."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import termios

import pytest

from kemu.cli.ctl import term
from kemu.client import Client
from tests.integration.kemuctl.agent import StandInAgent
from tests.integration.kemuctl.conftest import RUNNING, Kemuctl, make_pod
from tests.integration.kemuctl.test_kemuctl_logs import read_until

pytestmark = pytest.mark.integration


@pytest.fixture
def pod(ns: str, api: Client, agent_node: str) -> str:
    make_pod(api, ns, "web", node=agent_node, status=RUNNING)
    return "web"


def test_stdin_is_streamed_and_closed(ctl: Kemuctl, ns: str, pod: str,
                                      agent: StandInAgent) -> None:
    result = ctl("exec", "-i", pod, "-n", ns, "--", "cat", stdin="hello\nworld\n")
    assert (result.code, result.out, result.err) == (0, "hello\nworld\n", "cat: done\n")
    sent = agent.exec_calls[-1]
    start = sent[0].start
    assert (start.namespace, start.name, start.container, list(start.command), start.stdin,
            start.tty) == (ns, pod, "c", ["cat"], True, False)
    assert sent[-1].close_stdin
    assert b"".join(r.stdin for r in sent[1:-1]) == b"hello\nworld\n"


def test_exit_code_passes_through(ctl: Kemuctl, ns: str, pod: str) -> None:
    result = ctl("exec", pod, "-n", ns, "--", "exit", "3")
    assert (result.code, result.err) == (3, "command terminated with exit code 3\n")
    assert ctl.process("exec", pod, "-n", ns, "--", "exit", "42").code == 42
    assert ctl.ok("exec", pod, "-n", ns, "--", "exit", "0").err == ""


def test_default_container_and_bad_targets(ctl: Kemuctl, ns: str, api: Client,
                                           agent_node: str) -> None:
    make_pod(api, ns, "two", node=agent_node, containers=("a", "b"), status=RUNNING)
    result = ctl.ok("exec", "two", "-n", ns, "--", "echo", "hi")
    assert result.err_lines == ['Defaulted container "a" out of: a, b']
    assert result.out == f"{ns}/two/a: echo hi\n"
    assert ctl.ok("exec", "two", "-c", "b", "-n", ns, "--", "id").out == f"{ns}/two/b: id\n"
    assert ctl("exec", "two", "-c", "zz", "-n", ns, "--", "id").err_lines == [
        "error: container zz is not valid for pod two out of: a, b"]
    make_pod(api, ns, "done", node=agent_node, status={"phase": "Succeeded"})
    assert ctl("exec", "done", "-n", ns, "--", "id").err_lines == [
        "error: cannot exec into a container in a completed pod; current phase is Succeeded"]
    assert ctl("exec", "two", "-n", ns).err_lines == [
        "error: you must specify at least one command for the container"]


def test_tty_without_a_terminal_falls_back(ctl: Kemuctl, ns: str, pod: str,
                                          agent: StandInAgent) -> None:
    result = ctl("exec", "-it", pod, "-n", ns, "--", "cat", stdin="x")
    assert result.err_lines[0] == ("Unable to use a TTY - input is not a terminal or the right "
                                   "kind of file")
    assert result.out == "x"
    assert not agent.exec_calls[-1][0].start.tty


def test_interactive_tty_session(ctl: Kemuctl, ns: str, pod: str, agent: StandInAgent) -> None:
    master, slave = pty.openpty()
    term.set_size(master, 100, 40)
    cooked = termios.tcgetattr(slave)
    proc = subprocess.Popen(ctl.argv("exec", "-it", pod, "-n", ns, "--", "tty"), stdin=slave,
                            stdout=slave, stderr=slave, start_new_session=True)
    try:
        read_until(master, b"resize 100x40")
        call = agent.exec_calls[-1]
        assert call[0].start.tty and call[0].start.stdin
        assert call[1].WhichOneof("input") == "resize"  # the size goes first
        lflag = termios.tcgetattr(slave)[3]
        assert not lflag & (termios.ICANON | termios.ECHO | termios.ISIG)  # raw
        term.set_size(master, 120, 50)
        proc.send_signal(signal.SIGWINCH)
        read_until(master, b"resize 120x50")
        os.write(master, b"hi")
        read_until(master, b"HI")  # typed keys go straight through, no Enter needed
        os.write(master, b"q")
        read_until(master, b"command terminated with exit code 7")
        assert proc.wait(30) == 7
        assert termios.tcgetattr(slave) == cooked  # the terminal is given back as it was
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
        os.close(slave)
