"""get -w: the first table, then one line per change, within a deadline; Ctrl-C ends it
with exit 0 and no traceback."""

from __future__ import annotations

import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from tests.integration.kemuctl.conftest import Kemuctl

pytestmark = pytest.mark.integration
DEADLINE = 20.0


class Watcher:
    """A `kemuctl get -w` process whose stdout lines arrive on a queue."""

    def __init__(self, ctl: Kemuctl, *args: str) -> None:
        self.proc = subprocess.Popen(ctl.argv("get", *args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def next_line(self, timeout: float = DEADLINE) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line from kemuctl within {timeout}s") from None

    def wait_for(self, predicate: object, timeout: float = DEADLINE) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.next_line(max(0.1, deadline - time.monotonic()))
            if predicate(line):  # type: ignore[operator]
                return line

    def interrupt(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=DEADLINE)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=DEADLINE)


@pytest.fixture
def watcher() -> Iterator[list[Watcher]]:
    started: list[Watcher] = []
    yield started
    for w in started:
        w.kill()


def test_watch_prints_the_table_then_changes(ctl: Kemuctl, ns: str,
                                             watcher: list[Watcher]) -> None:
    ctl.ok("create", "cm", "before", "-n", ns, "--from-literal=a=1")
    w = Watcher(ctl, "cm", "-n", ns, "-w", "--output-watch-events")
    watcher.append(w)
    assert w.next_line().split() == ["EVENT", "NAME", "DATA", "AGE"]
    assert w.next_line().split()[:3] == ["ADDED", "before", "1"]
    ctl.ok("create", "cm", "after", "-n", ns, "--from-literal=a=1", "--from-literal=b=2")
    assert w.wait_for(lambda line: "after" in line).split()[:3] == ["ADDED", "after", "2"]
    ctl.ok("label", "cm", "before", "x=y", "-n", ns)
    assert w.wait_for(lambda line: "before" in line).split()[:2] == ["MODIFIED", "before"]
    ctl.ok("delete", "cm", "after", "-n", ns)
    assert w.wait_for(lambda line: "after" in line).split()[:2] == ["DELETED", "after"]
    code, err = w.interrupt()
    assert code == 0
    assert "Traceback" not in err


def test_watch_only_skips_the_list(ctl: Kemuctl, ns: str, watcher: list[Watcher]) -> None:
    ctl.ok("create", "cm", "old", "-n", ns)
    w = Watcher(ctl, "configmaps", "-n", ns, "--watch-only", "-o", "name")
    watcher.append(w)
    # The watch is open once the process has listed; creating until a line shows up keeps
    # the test free of sleeps while tolerating a slow start.
    deadline = time.monotonic() + DEADLINE
    n = 0
    while True:
        ctl.ok("create", "cm", f"new-{n}", "-n", ns)
        try:
            line = w.next_line(timeout=1.0)
            break
        except AssertionError:
            n += 1
            assert time.monotonic() < deadline, "the watch printed nothing"
    assert line.startswith("configmap/new-")
    code, err = w.interrupt()
    assert code == 0 and "Traceback" not in err


def test_watch_a_named_object(ctl: Kemuctl, ns: str, watcher: list[Watcher]) -> None:
    ctl.ok("create", "cm", "one", "-n", ns)
    ctl.ok("create", "cm", "two", "-n", ns)
    w = Watcher(ctl, "cm", "one", "-n", ns, "-w")
    watcher.append(w)
    assert w.next_line().split()[0] == "NAME"
    assert w.next_line().split()[0] == "one"
    ctl.ok("label", "cm", "two", "x=y", "-n", ns)
    ctl.ok("label", "cm", "one", "x=y", "-n", ns)
    assert w.next_line().split()[0] == "one"  # the change to `two` was not shown
    w.interrupt()


def test_watch_of_several_types_is_refused(ctl: Kemuctl) -> None:
    result = ctl.process("get", "deploy,svc", "-w")
    assert result.code == 1 and len(result.err_lines) == 1
    assert "watch is only supported on individual resources" in result.err
