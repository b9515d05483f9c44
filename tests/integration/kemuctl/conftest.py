"""Run the real kemuctl against the real store + apiserver of the `cluster` fixture.

`ctl(...)` runs `kemuctl main()` in-process with stdout/stderr captured (fast, and any
exception escaping main would fail the test); `ctl.process(...)` runs it as a separate
program, which is what the "one line, no traceback" checks and the watch tests use.
Each test gets its own namespace, since the cluster is shared by a module.
"""

from __future__ import annotations

import io
import itertools
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from typing import Any
from unittest import mock

import pytest

from kemu.api import manifest
from kemu.cli.kemuctl import main
from kemu.client import Client
from tests.conftest import Cluster
from tests.integration.kemuctl.agent import AgentServer, StandInAgent

_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}-{uuid.uuid4().hex[:5]}"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


class Kemuctl:
    def __init__(self, server: str) -> None:
        self.server = server

    def __call__(self, *args: str, stdin: str = "") -> Result:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err), \
                mock.patch("sys.stdin", io.StringIO(stdin)):
            code = main(["--server", self.server, *args])
        return Result(code, out.getvalue(), err.getvalue())

    def ok(self, *args: str, stdin: str = "") -> Result:
        result = self(*args, stdin=stdin)
        assert result.code == 0, f"kemuctl {' '.join(args)} failed: {result.err}"
        return result

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "kemu.cli.kemuctl", "--server", self.server, *args]

    def process(self, *args: str, stdin: str = "", timeout: float = 60) -> Result:
        done = subprocess.run(self.argv(*args), input=stdin, capture_output=True, text=True,
                              timeout=timeout, check=False)
        return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def ctl(cluster: Cluster) -> Kemuctl:
    return Kemuctl(cluster.server)


@pytest.fixture
def ns(ctl: Kemuctl) -> Iterator[str]:
    name = unique("ctl")
    ctl.ok("create", "namespace", name)
    yield name


# ---- nodes, pods and a stand-in node agent (logs, exec, run, drain tests) ----------------

@pytest.fixture(scope="module")
def api(cluster: Cluster) -> Iterator[Client]:
    """A plain client, for setting up what kemuctl then reads (status, bindings)."""
    with Client(cluster.server) as client:
        yield client


@pytest.fixture(scope="module")
def agent_server() -> Iterator[AgentServer]:
    with AgentServer() as server:
        yield server


@pytest.fixture
def agent(agent_server: AgentServer) -> StandInAgent:
    return agent_server.agent


def make_node(client: Client, name: str, *, port: int = 0, ready: str = "True",
              labels: dict[str, str] | None = None, **status: Any) -> None:
    """A Node whose agent endpoint is the stand-in's (when `port` is given)."""
    body: dict[str, Any] = {
        "conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady",
                        "message": "kemu agent is posting ready status",
                        "lastHeartbeatTime": "2024-01-02T03:04:05Z",
                        "lastTransitionTime": "2024-01-02T03:00:00Z"}],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                      {"type": "Hostname", "address": name}],
        "nodeInfo": {"kubeletVersion": "v1.30.0-kemu", "osImage": "Debian GNU/Linux 12",
                     "kernelVersion": "6.1.0", "containerRuntimeVersion": "docker://24.0.7"},
        **status}
    if port:
        body["daemonEndpoints"] = {"kubeletEndpoint": {"Port": port}}
    client.create(manifest.from_dict({"apiVersion": "v1", "kind": "Node",
                                      "metadata": {"name": name, "labels": labels or {}},
                                      "status": body}))


@pytest.fixture(scope="module")
def agent_node(api: Client, agent_server: AgentServer) -> str:
    name = unique("node")
    make_node(api, name, port=agent_server.port)
    return name


def make_pod(client: Client, namespace: str, name: str, *, node: str = "",
             containers: tuple[str, ...] = ("c",), status: dict[str, Any] | None = None,
             **extra: Any) -> Any:
    """A pod bound to `node`, with a status as a node agent would have written it."""
    spec: dict[str, Any] = {"containers": [{"name": c, "image": "kemu/tools:1"}
                                           for c in containers], **extra.pop("spec", {})}
    if node:
        spec["nodeName"] = node
    created = client.create(manifest.from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, **extra}, "spec": spec}))
    if status is not None:
        created.pod.status.CopyFrom(manifest.from_dict({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "status": status}).pod.status)
        created = client.update_status(created)
    return created.pod


RUNNING: dict[str, Any] = {"phase": "Running", "podIP": "10.244.1.5",
                           "conditions": [{"type": "Ready", "status": "True"}]}
