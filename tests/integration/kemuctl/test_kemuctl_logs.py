"""`kemuctl logs` through the real apiserver to a stand-in node agent: the flags arrive
in the LogsRequest, the container is chosen as kubectl chooses it, workloads resolve to
a pod, and -f streams until the server ends it or Ctrl-C (exit 0, no traceback)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from kemu.api.v1 import api_pb2
from kemu.client import Client
from tests.integration.kemuctl.agent import StandInAgent, describe_logs_request
from tests.integration.kemuctl.conftest import RUNNING, Kemuctl, make_pod

pytestmark = pytest.mark.integration


def test_flags_reach_the_agent(ctl: Kemuctl, ns: str, api: Client, agent: StandInAgent,
                               agent_node: str) -> None:
    make_pod(api, ns, "web", node=agent_node, status=RUNNING)
    result = ctl.ok("logs", "web", "-n", ns, "--tail=5", "--previous", "--timestamps",
                    "--since=5m")
    req = agent.logs_requests[-1]
    assert (req.namespace, req.name, req.container, req.follow, req.tail_lines,
            req.timestamps, req.previous, req.since_seconds) == (
        ns, "web", "c", False, 5, True, True, 300)
    assert result.out == describe_logs_request(req)
    ctl.ok("logs", "pod/web", "c", "-n", ns)  # kubectl's inline CONTAINER argument
    assert (agent.logs_requests[-1].container, agent.logs_requests[-1].tail_lines) == ("c", 0)


def test_container_choice(ctl: Kemuctl, ns: str, api: Client, agent: StandInAgent,
                          agent_node: str) -> None:
    make_pod(api, ns, "two", node=agent_node, containers=("a", "b"), status=RUNNING)
    refused = ctl("logs", "two", "-n", ns)
    assert (refused.code, refused.err) == (1, "error: a container name must be specified "
                                              "for pod two, choose one of: [a b]\n")
    assert ctl("logs", "two", "-c", "zz", "-n", ns).err_lines == [
        "error: container zz is not valid for pod two out of: a, b"]
    ctl.ok("logs", "two", "-c", "b", "-n", ns)
    assert agent.logs_requests[-1].container == "b"
    out = ctl.ok("logs", "two", "--all-containers", "-n", ns).lines
    assert [line.split()[0] for line in out] == [f"{ns}/two/a", f"{ns}/two/b"]


def test_workloads_resolve_to_their_best_pod(ctl: Kemuctl, ns: str, api: Client,
                                             agent: StandInAgent, agent_node: str) -> None:
    ctl.ok("create", "deployment", "web", "--image=nginx:1", "-n", ns)
    make_pod(api, ns, "web-pending", labels={"app": "web"}, containers=("nginx",))
    make_pod(api, ns, "web-running", node=agent_node, labels={"app": "web"},
             containers=("nginx",), status=RUNNING)
    result = ctl.ok("logs", "deploy/web", "-n", ns)
    assert result.err_lines == ["Found 2 pods, using pod/web-running"]
    assert result.out.startswith(f"{ns}/web-running/nginx ")


def test_selector_reads_each_pod_with_a_prefix_and_a_default_tail(
        ctl: Kemuctl, ns: str, api: Client, agent: StandInAgent, agent_node: str) -> None:
    for name in ("p1", "p2"):
        make_pod(api, ns, name, node=agent_node, labels={"job": "x"}, status=RUNNING)
    lines = ctl.ok("logs", "-l", "job=x", "--prefix", "-n", ns).lines
    assert sorted(lines) == [
        f"[pod/p1/c] {ns}/p1/c follow=False tail=10 timestamps=False previous=False since=0",
        f"[pod/p2/c] {ns}/p2/c follow=False tail=10 timestamps=False previous=False since=0"]
    assert ctl("logs", "-l", "job=none", "-n", ns).err_lines == [
        f"No resources found in {ns} namespace."]


def test_errors_from_the_agent_are_one_line(ctl: Kemuctl, ns: str, api: Client,
                                            agent: StandInAgent, agent_node: str) -> None:
    def refuse(req: api_pb2.LogsRequest, context: grpc.ServicerContext) -> Iterator[bytes]:
        context.abort(grpc.StatusCode.NOT_FOUND, 'previous terminated container "c" in pod '
                      '"gone" not found')
        yield b""

    agent.logs_scripts["gone"] = refuse
    make_pod(api, ns, "gone", node=agent_node, status=RUNNING)
    result = ctl.process("logs", "gone", "-p", "-n", ns)
    assert (result.code, result.err_lines) == (1, [
        'Error from server (NotFound): previous terminated container "c" in pod "gone" not '
        "found"])


def read_until(fd: int, expected: bytes, timeout: float = 20.0) -> bytes:
    """Read from `fd` until `expected` has arrived (or fail at the deadline)."""
    data = b""
    deadline = time.monotonic() + timeout
    while expected not in data:
        left = deadline - time.monotonic()
        assert left > 0, f"did not see {expected!r}; got {data!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            assert chunk, f"stream ended before {expected!r}; got {data!r}"
            data += chunk
    return data


def test_follow_streams_until_the_server_ends(ctl: Kemuctl, ns: str, api: Client,
                                              agent: StandInAgent, agent_node: str) -> None:
    release = threading.Event()

    def stream(req: api_pb2.LogsRequest, context: grpc.ServicerContext) -> Iterator[bytes]:
        yield b"first\n"
        release.wait(30)
        yield b"second\n"

    agent.logs_scripts["tail"] = stream
    make_pod(api, ns, "tail", node=agent_node, status=RUNNING)
    proc = subprocess.Popen(ctl.argv("logs", "-f", "tail", "-n", ns), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        read_until(proc.stdout.fileno(), b"first\n")  # arrives before the stream ends
        assert agent.logs_requests[-1].follow
        release.set()
        assert read_until(proc.stdout.fileno(), b"second\n").endswith(b"second\n")
        assert proc.wait(30) == 0
    finally:
        release.set()
        proc.kill()
        proc.wait()


def test_follow_ends_quietly_on_ctrl_c(ctl: Kemuctl, ns: str, api: Client,
                                       agent: StandInAgent, agent_node: str) -> None:
    def forever(req: api_pb2.LogsRequest, context: grpc.ServicerContext) -> Iterator[bytes]:
        done = threading.Event()
        context.add_callback(done.set)
        yield b"tick\n"
        done.wait(60)

    agent.logs_scripts["forever"] = forever
    make_pod(api, ns, "forever", node=agent_node, status=RUNNING)
    proc = subprocess.Popen(ctl.argv("logs", "-f", "forever", "-n", ns),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        read_until(proc.stdout.fileno(), b"tick\n")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert proc.stderr.read() == b""
    finally:
        proc.kill()
        proc.wait()
