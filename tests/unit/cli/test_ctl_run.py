"""The Pod `kemuctl run` builds from its flags (kubectl's run generator), and its verdict
on a finished pod when attached."""

from __future__ import annotations

from typing import Any

import pytest

from kemu.api import manifest, objects
from kemu.cli.ctl.cmd_run import exit_outcome
from kemu.cli.ctl.errors import CtlError
from kemu.cli.ctl.generators import RunSpec, pairs, run_pod, run_service


def built(**kw: Any) -> dict[str, Any]:
    return objects.to_dict(run_pod(RunSpec(**{"name": "web", "image": "nginx:1", **kw})))


@pytest.mark.parametrize(("kw", "path", "expected"), [
    pytest.param({}, ("metadata", "labels"), {"run": "web"}, id="default-labels"),
    pytest.param({"labels": (("app", "web"), ("tier", "fe"))}, ("metadata", "labels"),
                 {"app": "web", "tier": "fe"}, id="labels-replace-the-default"),
    pytest.param({}, ("spec", "restartPolicy"), "Always", id="restart-default"),
    pytest.param({"restart": "Never"}, ("spec", "restartPolicy"), "Never", id="restart"),
    pytest.param({}, ("spec", "containers", 0, "name"), "web", id="container-named-after-pod"),
    pytest.param({"port": 80}, ("spec", "containers", 0, "ports"), [{"containerPort": 80}],
                 id="port"),
    pytest.param({"env": (("A", "1"), ("B", "x=y"))}, ("spec", "containers", 0, "env"),
                 [{"name": "A", "value": "1"}, {"name": "B", "value": "x=y"}], id="env"),
    pytest.param({"words": ("nslookup", "web")}, ("spec", "containers", 0, "args"),
                 ["nslookup", "web"], id="words-are-args"),
    pytest.param({"words": ("sh", "-c", "exit 3"), "command": True},
                 ("spec", "containers", 0, "command"), ["sh", "-c", "exit 3"],
                 id="command-flag-makes-them-the-command"),
    pytest.param({"image_pull_policy": "Never"}, ("spec", "containers", 0, "imagePullPolicy"),
                 "Never", id="pull-policy"),
    pytest.param({"annotations": (("note", "x"),)}, ("metadata", "annotations"), {"note": "x"},
                 id="annotations"),
    pytest.param({"privileged": True}, ("spec", "containers", 0, "securityContext"),
                 {"privileged": True}, id="privileged"),
])
def test_run_pod(kw: dict[str, Any], path: tuple[Any, ...], expected: Any) -> None:
    doc: Any = built(**kw)
    for key in path:
        doc = doc[key]
    assert doc == expected


@pytest.mark.parametrize(("kw", "stdin", "stdin_once", "tty"), [
    pytest.param({}, None, None, None, id="detached"),
    pytest.param({"stdin": True}, True, True, None, id="interactive"),
    pytest.param({"stdin": True, "tty": True}, True, True, True, id="interactive-tty"),
    pytest.param({"stdin": True, "leave_stdin_open": True}, True, None, None,
                 id="leave-stdin-open"),
])
def test_run_pod_stdin_and_tty(kw: dict[str, Any], stdin: bool | None,
                               stdin_once: bool | None, tty: bool | None) -> None:
    container = built(**kw)["spec"]["containers"][0]
    assert (container.get("stdin"), container.get("stdinOnce"), container.get("tty")) == (
        stdin, stdin_once, tty)


@pytest.mark.parametrize(("kw", "message"), [
    pytest.param({"image": ""}, "--image is required", id="no-image"),
    pytest.param({"restart": "Sometimes"}, "invalid restart policy: Sometimes", id="restart"),
    pytest.param({"image_pull_policy": "Maybe"}, "invalid image pull policy: Maybe",
                 id="pull-policy"),
    pytest.param({"tty": True}, "-i/--stdin is required for containers with -t/--tty=true",
                 id="tty-needs-stdin"),
    pytest.param({"command": True}, "--command needs a command after --", id="empty-command"),
])
def test_run_pod_refuses(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(CtlError) as err:
        run_pod(RunSpec(**{"name": "web", "image": "nginx:1", **kw}))
    assert str(err.value) == message


@pytest.mark.parametrize(("items", "commas", "expected"), [
    pytest.param(["a=1,b=2"], True, (("a", "1"), ("b", "2")), id="labels-split-on-commas"),
    pytest.param(["A=1,2"], False, (("A", "1,2"),), id="env-keeps-commas"),
    pytest.param(["A="], False, (("A", ""),), id="empty-value"),
])
def test_pairs(items: list[str], commas: bool, expected: tuple[tuple[str, str], ...]) -> None:
    assert pairs(items, "x", split_commas=commas) == expected


def test_pairs_refuse_a_missing_equals() -> None:
    with pytest.raises(CtlError, match="invalid env: 'A': expected KEY=VALUE"):
        pairs(["A"], "env")


def test_run_service_selects_the_pod_labels() -> None:
    doc = objects.to_dict(run_service("web", 80, [("run", "web")]))
    assert doc["spec"] == {"type": "ClusterIP", "selector": {"run": "web"},
                           "ports": [{"protocol": "TCP", "port": 80, "targetPort": 80}]}


def finished_pod(phase: str, terminated: dict[str, Any] | None) -> Any:
    status: dict[str, Any] = {"phase": phase}
    if terminated is not None:
        status["containerStatuses"] = [{"name": "tmp", "state": {"terminated": terminated}}]
    return manifest.from_dict({"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": "tmp", "namespace": "ns"},
                               "status": status}).pod


@pytest.mark.parametrize(("pod", "expected"), [
    pytest.param(finished_pod("Succeeded", {"exitCode": 0}), (0, []), id="succeeded"),
    pytest.param(finished_pod("Failed", {"exitCode": 3, "reason": "Error"}),
                 (3, ["pod ns/tmp terminated (Error)"]), id="failed"),
    pytest.param(finished_pod("Failed", {"exitCode": 137, "reason": "OOMKilled",
                                         "message": "out of memory"}),
                 (137, ["pod ns/tmp terminated (OOMKilled)", "out of memory"]),
                 id="failed-with-message"),
    pytest.param(finished_pod("Failed", None),
                 (1, ["error: pod ns/tmp failed with unknown exit code"]), id="no-status"),
    pytest.param(finished_pod("Failed", {"exitCode": 0}),
                 (1, ["error: pod ns/tmp failed with unknown exit code"]), id="failed-with-0"),
    pytest.param(finished_pod("Running", None), (1, ["error: pod ns/tmp left in phase Running"]),
                 id="not-finished"),
])
def test_exit_outcome(pod: Any, expected: tuple[int, list[str]]) -> None:
    assert exit_outcome(pod) == expected
