"""kemu.util.logsetup: klog verbosity levels, the text and JSON formats of events with
fields, the flags every component takes, and the work queue's one sync event."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from kemu.cli.kemu_main import build_parser
from kemu.client.workqueue import WorkQueue, run_workers
from kemu.util import logsetup
from kemu.util.argtypes import OneLineParser
from kemu.util.logsetup import event, kv

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (\w+) (\S+) (.*)$")


@pytest.fixture(autouse=True)
def _restore_root() -> Iterator[None]:
    """configure() replaces the root logger's handlers (pytest's among them): put back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    noisy = {n: logging.getLogger(n).level for n in logsetup.NOISY}
    yield
    for h in root.handlers[:]:
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    for name, lvl in noisy.items():
        logging.getLogger(name).setLevel(lvl)


def capture(fmt: str, *, v: int = 0, level: int | None = None,
            component: str = "scheduler") -> io.StringIO:
    out = io.StringIO()
    logsetup.configure(component, fmt=fmt, v=v, level=level, stream=out)
    return out


def json_lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.parametrize(("v", "level"), [
    pytest.param(0, logging.INFO, id="v0-info"),
    pytest.param(1, logging.INFO - 1, id="v1"),
    pytest.param(2, logging.INFO - 2, id="v2"),
    pytest.param(3, logging.INFO - 3, id="v3"),
    pytest.param(4, logging.DEBUG, id="v4-debug"),
    pytest.param(6, logging.DEBUG - 2, id="v6-below-debug"),
    pytest.param(-1, logging.INFO, id="negative-is-0"),
])
def test_v_level(v: int, level: int) -> None:
    assert logsetup.v_level(v) == level
    if v >= 0:
        assert logsetup.verbosity_of(level) == v


@pytest.mark.parametrize(("v", "level", "threshold"), [
    pytest.param(0, None, logging.INFO, id="defaults"),
    pytest.param(2, None, logging.INFO - 2, id="v2"),
    pytest.param(0, logging.WARNING, logging.WARNING, id="log-level-alone-quieter"),
    pytest.param(0, logging.DEBUG, logging.DEBUG, id="log-level-debug"),
    pytest.param(2, logging.WARNING, logging.INFO - 2, id="v-more-verbose-wins"),
    pytest.param(2, logging.DEBUG, logging.DEBUG, id="log-level-more-verbose-wins"),
])
def test_threshold(v: int, level: int | None, threshold: int) -> None:
    assert logsetup.threshold(v, level) == threshold


def test_text_event_renders_fields_after_the_message() -> None:
    out = capture("text", v=2)
    log = logging.getLogger("kemu.scheduler")
    event(log, "bound pod", v=2, pod="default/web-1", node="n1", duration_ms=3.25,
          ok=True, reason="no fit", empty="", missing=None, nodes=["a", "b"])
    (line,) = out.getvalue().splitlines()
    m = TEXT_LINE.match(line)
    assert m, line
    assert m.group(1) == "INFO"  # -v 2 events print as INFO, as klog's I
    assert m.group(2) == "kemu.scheduler"
    assert m.group(3) == ('bound pod pod=default/web-1 node=n1 duration_ms=3.25 ok=true '
                          'reason="no fit" empty="" missing=null nodes=["a","b"]')


def test_text_without_fields_is_todays_line() -> None:
    out = capture("text")
    logging.getLogger("kemu.apiserver").warning("node=%s ready=%s", "n1", False)
    m = TEXT_LINE.match(out.getvalue().strip())
    assert m and m.groups() == ("WARNING", "kemu.apiserver", "node=n1 ready=False")


def test_json_round_trip() -> None:
    out = capture("json", v=2, component="controller-manager")
    log = logging.getLogger("kemu.services.controllers.replicaset")
    event(log, "synced", v=2, controller="replicaset", kind="ReplicaSet",
          object="default/web", duration_ms=1.5, msg="a field named msg")
    log.info("plain %s", "message", extra=kv(count=3))
    log.debug("hidden at -v 2")
    lines = json_lines(out)
    assert len(lines) == 2
    first, second = lines
    assert list(first)[:6] == ["ts", "level", "v", "component", "logger", "msg"]
    assert RFC3339_MS.match(first["ts"]), first["ts"]
    assert first == {"ts": first["ts"], "level": "info", "v": 2,
                     "component": "controller-manager",
                     "logger": "kemu.services.controllers.replicaset", "msg": "synced",
                     "controller": "replicaset", "kind": "ReplicaSet", "object": "default/web",
                     "duration_ms": 1.5, "msg_": "a field named msg"}
    assert second["msg"] == "plain message" and second["count"] == 3 and "v" not in second


@pytest.mark.parametrize(("call", "level", "v"), [
    pytest.param(lambda log: log.debug("d"), "debug", 4, id="debug"),
    pytest.param(lambda log: event(log, "e", v=3), "info", 3, id="v3"),
    pytest.param(lambda log: log.info("i"), "info", None, id="info"),
    pytest.param(lambda log: log.warning("w"), "warning", None, id="warning"),
    pytest.param(lambda log: log.error("e"), "error", None, id="error"),
    pytest.param(lambda log: log.critical("c"), "critical", None, id="critical"),
])
def test_json_levels(call: Any, level: str, v: int | None) -> None:
    out = capture("json", v=4)
    call(logging.getLogger("kemu.t"))
    (line,) = json_lines(out)
    assert line["level"] == level
    assert line.get("v") == v


def test_json_exception_is_one_line() -> None:
    out = capture("json")
    try:
        raise ValueError("broken")
    except ValueError:
        logging.getLogger("kemu.t").exception("sync failed")
    text = out.getvalue()
    assert text.count("\n") == 1
    (line,) = json_lines(out)
    assert line["level"] == "error" and "ValueError: broken" in line["exc"]


def test_events_below_the_verbosity_are_not_formatted() -> None:
    class Boom:
        def __str__(self) -> str:
            raise AssertionError("formatted")

    out = capture("text", v=1)
    event(logging.getLogger("kemu.t"), "quiet", v=2, value=Boom())
    assert out.getvalue() == ""


def test_noisy_libraries_quiet_unless_debugging() -> None:
    capture("text", v=2)
    assert logging.getLogger("docker").level == logging.WARNING
    capture("text", v=4)
    assert logging.getLogger("docker").level == logging.NOTSET


def _parse(*argv: str) -> argparse.Namespace:
    p = OneLineParser(prog="kemu scheduler")
    logsetup.add_flags(p)
    return p.parse_args(list(argv))


@pytest.mark.parametrize(("argv", "fmt", "v", "level"), [
    pytest.param((), "text", 0, None, id="defaults"),
    pytest.param(("-v", "2"), "text", 2, None, id="-v 2"),
    pytest.param(("--v", "3"), "text", 3, None, id="--v 3"),
    pytest.param(("--v=4", "--log-format", "json"), "json", 4, None, id="--v=4 json"),
    pytest.param(("--log-level", "warn"), "text", 0, logging.WARNING, id="log-level warn"),
    pytest.param(("--log-level", "DEBUG"), "text", 0, logging.DEBUG, id="log-level DEBUG"),
])
def test_flags(argv: tuple[str, ...], fmt: str, v: int, level: int | None) -> None:
    args = _parse(*argv)
    assert (args.log_format, args.v, args.log_level) == (fmt, v, level)


@pytest.mark.parametrize("argv", [
    pytest.param(("--log-format", "xml"), id="format"),
    pytest.param(("-v", "two"), id="verbosity"),
    pytest.param(("--log-level", "LOUD"), id="level"),
])
def test_bad_flags_are_one_line(argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
                                ) -> None:
    with pytest.raises(SystemExit) as e:
        _parse(*argv)
    assert e.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("component", ["store", "apiserver", "scheduler",
                                       "controller-manager", "agent", "dns"])
def test_every_component_takes_the_flags(component: str) -> None:
    args = build_parser().parse_args([component, "--log-format", "json", "-v", "3",
                                      "--log-level", "info"])
    assert (args.log_format, args.v, args.log_level) == ("json", 3, logging.INFO)


def test_configure_from_args_reads_kemus_own_count() -> None:
    out = io.StringIO()
    args = build_parser().parse_args(["-v", "-v", "status"])  # kemu -vv: debug, as before
    logsetup.configure_from_args("status", args, stream=out)
    assert logging.getLogger().level == logging.DEBUG
    args = build_parser().parse_args(["agent", "--verbose", "--verbose", "--log-format",
                                      "json"])
    logsetup.configure_from_args("agent", args, stream=out)
    logging.getLogger("kemu.t").debug("x")
    assert json_lines(out)[-1]["component"] == "agent"


# ---- the work queue's sync event ------------------------------------------------------------


@dataclass(frozen=True)
class _Workload:
    name: str
    kind: str


class _Controller:
    def __init__(self, fail: set[str]) -> None:
        self.workload = _Workload("replicaset", "ReplicaSet")
        self.fail = fail
        self.seen: list[str] = []

    async def reconcile(self, key: str) -> None:
        self.seen.append(key)
        if key in self.fail:
            self.fail.discard(key)
            raise RuntimeError("conflict")


async def test_run_workers_logs_each_sync_at_v2() -> None:
    out = capture("json", v=2, component="controller-manager")
    queue: WorkQueue[str] = WorkQueue(base_delay=0.001)
    controller = _Controller({"ns/b"})
    task = asyncio.create_task(run_workers(queue, controller.reconcile, 2))
    queue.add("ns/a")
    queue.add("ns/b")
    for _ in range(200):
        if len(controller.seen) >= 3:
            break
        await asyncio.sleep(0.01)
    await queue.shut_down()
    await asyncio.wait_for(task, 5)
    events = [e for e in json_lines(out) if e["msg"] == "synced"]
    assert sorted((e["object"], e["result"]) for e in events) == [
        ("ns/a", "ok"), ("ns/b", "error"), ("ns/b", "ok")]
    for e in events:
        assert e["controller"] == "replicaset" and e["kind"] == "ReplicaSet"
        assert e["v"] == 2 and e["duration_ms"] >= 0
        assert e["logger"] == __name__


async def test_run_workers_is_quiet_by_default() -> None:
    out = capture("text")
    queue: WorkQueue[str] = WorkQueue()
    controller = _Controller(set())
    task = asyncio.create_task(run_workers(queue, controller.reconcile, 1))
    queue.add("ns/a")
    for _ in range(100):
        if controller.seen:
            break
        await asyncio.sleep(0.01)
    await queue.shut_down()
    await asyncio.wait_for(task, 5)
    assert controller.seen == ["ns/a"] and out.getvalue() == ""
