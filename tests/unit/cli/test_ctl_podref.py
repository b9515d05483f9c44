"""Which container logs and exec use, which pod of a workload they read, and logs'
line handling, with kubectl's messages."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from kemu.api import manifest
from kemu.cli.ctl import podref
from kemu.cli.ctl.cmd_logs import LineWriter, since_seconds
from kemu.cli.ctl.errors import CtlError


def pod(name: str = "p", containers: tuple[str, ...] = ("a",), init: tuple[str, ...] = (),
        annotations: dict[str, str] | None = None, **status: Any) -> Any:
    return manifest.from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "annotations": annotations or {},
                     "creationTimestamp": status.pop("created", "2024-01-01T00:00:00Z")},
        "spec": {"containers": [{"name": c, "image": "x"} for c in containers],
                 "initContainers": [{"name": c, "image": "x"} for c in init],
                 "nodeName": status.pop("node", "n1")},
        "status": status}).pod


@pytest.mark.parametrize(("p", "requested", "expected"), [
    pytest.param(pod(), "", "a", id="only-container"),
    pytest.param(pod(containers=("a", "b")), "b", "b", id="named"),
    pytest.param(pod(containers=("a", "b"), init=("i",)), "i", "i", id="init-container"),
    pytest.param(pod(containers=("a", "b"),
                     annotations={podref.DEFAULT_CONTAINER_ANNOTATION: "b"}), "", "b",
                 id="default-container-annotation"),
])
def test_logs_container(p: Any, requested: str, expected: str) -> None:
    assert podref.logs_container(p, requested) == expected


@pytest.mark.parametrize(("p", "requested", "message"), [
    pytest.param(pod(containers=("a", "b")), "",
                 "a container name must be specified for pod p, choose one of: [a b]",
                 id="several"),
    pytest.param(pod(containers=("a", "b"), init=("i", "j")), "",
                 "a container name must be specified for pod p, choose one of: [a b] or one "
                 "of the init containers: [i j]", id="several-with-init"),
    pytest.param(pod(containers=("a", "b"), init=("i",)), "zz",
                 "container zz is not valid for pod p out of: a, b, i (init)", id="unknown"),
])
def test_logs_container_refuses(p: Any, requested: str, message: str) -> None:
    with pytest.raises(CtlError) as err:
        podref.logs_container(p, requested)
    assert str(err.value) == message


@pytest.mark.parametrize(("p", "requested", "expected", "warned"), [
    pytest.param(pod(), "", "a", [], id="only-container-says-nothing"),
    pytest.param(pod(containers=("a", "b")), "", "a",
                 ['Defaulted container "a" out of: a, b'], id="first-of-several"),
    pytest.param(pod(init=("i",)), "", "a", ['Defaulted container "a" out of: a, i (init)'],
                 id="init-containers-count"),
    pytest.param(pod(containers=("a", "b")), "b", "b", [], id="named"),
])
def test_exec_container(p: Any, requested: str, expected: str, warned: list[str]) -> None:
    said: list[str] = []
    assert podref.exec_container(p, requested, said.append) == expected
    assert said == warned


@pytest.mark.parametrize(("pods", "chosen"), [
    pytest.param([pod("pending", phase="Pending"), pod("running", phase="Running")],
                 "running", id="running-before-pending"),
    pytest.param([pod("unbound", phase="Running", node=""), pod("bound", phase="Pending")],
                 "bound", id="assigned-before-unassigned"),
    pytest.param([pod("unready", phase="Running"),
                  pod("ready", phase="Running", conditions=[
                      {"type": "Ready", "status": "True",
                       "lastTransitionTime": "2024-01-01T00:05:00Z"}])],
                 "ready", id="ready-first"),
    pytest.param([pod("new", phase="Running", created="2024-01-02T00:00:00Z"),
                  pod("old", phase="Running", created="2024-01-01T00:00:00Z")],
                 "old", id="older-first"),
    pytest.param([pod("calm", phase="Running"),
                  pod("restarting", phase="Running",
                      containerStatuses=[{"name": "a", "restartCount": 3}])],
                 "restarting", id="more-restarts-first"),
])
def test_choose_orders_pods_as_kubectl_logs(pods: list[Any], chosen: str) -> None:
    assert podref.choose(pods).metadata.name == chosen


@pytest.mark.parametrize(("arg", "plural", "name"), [
    pytest.param("web", "pods", "web", id="bare"),
    pytest.param("pod/web", "pods", "web", id="pod"),
    pytest.param("deploy/web", "deployments", "web", id="deployment"),
    pytest.param("job/x", "jobs", "x", id="job"),
])
def test_parse_ref(arg: str, plural: str, name: str) -> None:
    kind, found = podref.parse_ref(arg)
    assert (kind.plural, found) == (plural, name)


def test_line_writer_prefixes_whole_lines() -> None:
    out: list[bytes] = []
    w = LineWriter(out.append, threading.Lock(), "[pod/p/c] ")
    w.feed(b"one\ntw")
    w.feed(b"o\nthree")
    w.close()
    assert b"".join(out) == b"[pod/p/c] one\n[pod/p/c] two\n[pod/p/c] three\n"


def test_line_writer_without_prefix_passes_chunks() -> None:
    out: list[bytes] = []
    w = LineWriter(out.append, threading.Lock())
    w.feed(b"par")
    w.feed(b"tial")
    w.close()
    assert out == [b"par", b"tial"]


@pytest.mark.parametrize(("since", "since_time", "expected"), [
    pytest.param("", "", 0, id="none"),
    pytest.param("5m", "", 300, id="duration"),
    pytest.param("1500ms", "", 2, id="rounded-up"),
    pytest.param("", "2023-11-14T22:12:20Z", 60, id="time"),
])
def test_since_seconds(since: str, since_time: str, expected: int) -> None:
    args = SimpleNamespace(since=since, since_time=since_time)
    assert since_seconds(args, 1_700_000_000.0) == expected


def test_since_and_since_time_are_exclusive() -> None:
    with pytest.raises(CtlError, match="at most one of"):
        since_seconds(SimpleNamespace(since="1m", since_time="2024-01-01T00:00:00Z"), 0.0)
