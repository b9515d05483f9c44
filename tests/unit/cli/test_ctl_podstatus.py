"""READY, STATUS and RESTARTS of `get pods`, following kubectl's precedence rules."""

from __future__ import annotations

from typing import Any

import pytest

from kemu.api import manifest
from kemu.cli.ctl.podstatus import pod_cells, readiness_gates

NOW = 1_700_000_000.0


def pod(spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None,
        **meta: Any) -> Any:
    return manifest.from_dict({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", **meta},
        "spec": spec or {"containers": [{"name": "app", "image": "x"}]},
        "status": status or {},
    }).pod


def running(name: str = "app", ready: bool = True, restarts: int = 0) -> dict[str, Any]:
    return {"name": name, "ready": ready, "restartCount": restarts,
            "state": {"running": {"startedAt": "2023-11-14T22:00:00Z"}}}


TWO = {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}]}


@pytest.mark.parametrize(("p", "ready", "status", "restarts"), [
    pytest.param(pod(status={"phase": "Pending"}), "0/1", "Pending", "0", id="pending"),
    pytest.param(pod(status={"phase": "Running", "containerStatuses": [running()]}),
                 "1/1", "Running", "0", id="running"),
    pytest.param(pod(TWO, {"phase": "Running", "containerStatuses": [
        running("a"), running("b", ready=False)]}), "1/2", "Running", "0", id="one-of-two"),
    pytest.param(pod(status={"phase": "Pending", "containerStatuses": [
        {"name": "app", "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
        "0/1", "ContainerCreating", "0", id="container-creating"),
    pytest.param(pod(status={"phase": "Running", "containerStatuses": [
        {"name": "app", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
         "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2023-11-14T22:13:00Z"}}}]}),
        "0/1", "CrashLoopBackOff", "4 (20s ago)", id="crash-loop-with-last-restart"),
    pytest.param(pod(status={"phase": "Pending", "containerStatuses": [
        {"name": "app", "state": {"waiting": {"reason": "ErrImagePull"}}}]}),
        "0/1", "ErrImagePull", "0", id="image-pull"),
    pytest.param(pod(status={"phase": "Succeeded", "containerStatuses": [
        {"name": "app", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
        "0/1", "Completed", "0", id="completed"),
    pytest.param(pod(status={"phase": "Running", "containerStatuses": [
        {"name": "app", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}),
        "0/1", "OOMKilled", "0", id="oom-killed"),
    pytest.param(pod(status={"phase": "Failed", "containerStatuses": [
        {"name": "app", "state": {"terminated": {"exitCode": 2}}}]}),
        "0/1", "ExitCode:2", "0", id="exit-code-without-reason"),
    pytest.param(pod({"initContainers": [{"name": "init", "image": "x"}],
                      "containers": [{"name": "app", "image": "x"}]},
                     {"phase": "Pending", "initContainerStatuses": [
                         {"name": "init", "state": {"running": {}}}]}),
                 "0/1", "Init:0/1", "0", id="init-running"),
    pytest.param(pod({"initContainers": [{"name": "init", "image": "x"}],
                      "containers": [{"name": "app", "image": "x"}]},
                     {"phase": "Pending", "initContainerStatuses": [
                         {"name": "init", "state": {"terminated": {"exitCode": 1,
                                                                   "reason": "Error"}}}]}),
                 "0/1", "Init:Error", "0", id="init-failed"),
    pytest.param(pod(status={"phase": "Running", "containerStatuses": [running()]},
                     deletionTimestamp="2023-11-14T22:14:00Z"),
                 "1/1", "Terminating", "0", id="terminating"),
    pytest.param(pod(status={"phase": "Failed", "reason": "Evicted"}), "0/1", "Evicted", "0",
                 id="status-reason-wins-over-phase"),
])
def test_pod_cells(p: Any, ready: str, status: str, restarts: str) -> None:
    cells = pod_cells(p, NOW)
    assert (cells.ready, cells.status, cells.restarts) == (ready, status, restarts)


def test_readiness_gates() -> None:
    p = pod({"containers": [{"name": "app", "image": "x"}],
             "readinessGates": [{"conditionType": "a"}, {"conditionType": "b"}]},
            {"conditions": [{"type": "a", "status": "True"}]})
    assert readiness_gates(p) == "1/2"
    assert readiness_gates(pod()) == "<none>"
