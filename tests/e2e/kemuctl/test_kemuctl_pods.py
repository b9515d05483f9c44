"""What a user does with pods, through kemuctl, on a real node: run, logs -f, exec -it with
the exit code, run -i --rm, describe node, scheduling reasons, cordon."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import subprocess
import sys
import time

import pytest

from kemu.client import Client
from tests.conftest import Cluster
from tests.e2e.nodeagent.helpers import AgentHandle
from tests.support import processes

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("scheduler")]


def kemuctl(cluster: Cluster, *args: str, timeout: float = 90
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kemu.cli.kemuctl", "--server", cluster.server,
                           *args], capture_output=True, text=True, timeout=timeout,
                          cwd=processes.ROOT)


def wait_phase(api: Client, ns: str, name: str, phase: str, timeout: float = 60) -> None:
    processes.wait_for(lambda: api.get("pods", name, ns).pod.status.phase == phase, timeout,
                       f"pod {ns}/{name} {phase}")


def test_run_logs_follow_and_exec(cluster: Cluster, agent: AgentHandle, api: Client,
                                  namespace: str) -> None:
    ns = namespace
    out = kemuctl(cluster, "run", "hello", "-n", ns, "--image", "kemu/bootcamp:v1",
                  "--port", "8080", "--image-pull-policy", "Never")
    assert out.returncode == 0 and out.stdout.strip() == "pod/hello created", out.stderr
    wait_phase(api, ns, "hello", "Running")
    pod = api.get("pods", "hello", ns).pod
    assert pod.spec.node_name == agent.node  # bound by the scheduler
    follow = subprocess.Popen(
        [sys.executable, "-m", "kemu.cli.kemuctl", "--server", cluster.server, "logs", "-f",
         "hello", "-n", ns], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        cwd=processes.ROOT)
    assert follow.stdout is not None
    fd = follow.stdout.fileno()  # raw reads: select sees every byte

    def read_until(marker: bytes, seen: bytes, timeout: float = 20) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in seen and time.monotonic() < deadline:
            if select.select([fd], [], [], 1)[0]:
                seen += os.read(fd, 65536)
        return seen

    try:
        streamed = read_until(b"Started At", b"")  # connected and caught up
        client = kemuctl(cluster, "run", "client", "-n", ns, "-i", "--rm", "--restart=Never",
                         "--image", "kemu/tools:1", "--image-pull-policy", "Never", "--",
                         "wget", "-q", "-O", "-", f"http://{pod.status.pod_ip}:8080/")
        assert client.returncode == 0, client.stderr
        assert "Hello Kubernetes bootcamp! | Running on: hello | v=1" in client.stdout
        assert 'pod "client" deleted' in client.stdout + client.stderr
        lines = read_until(b"Total Requests: 1", streamed).decode().splitlines()
        assert lines[0].startswith("Kubernetes Bootcamp App Started At:"), lines
        assert any("Running On: hello | Total Requests: 1" in line for line in lines), lines
    finally:
        follow.terminate()
        follow.wait(timeout=10)
    failed = kemuctl(cluster, "exec", "hello", "-n", ns, "--", "sh", "-c", "echo out; exit 7")
    assert failed.returncode == 7
    assert failed.stdout == "out\n"
    assert failed.stderr.strip() == "command terminated with exit code 7"


def test_exec_interactive_with_a_tty(cluster: Cluster, api: Client, namespace: str) -> None:
    ns = namespace
    assert kemuctl(cluster, "run", "shell", "-n", ns, "--image", "kemu/tools:1",
                   "--image-pull-policy", "Never", "--command", "--", "sleep",
                   "3600").returncode == 0
    wait_phase(api, ns, "shell", "Running")
    pid, fd = pty.fork()
    if pid == 0:  # the child: kemuctl on a terminal, as a user types it
        os.chdir(processes.ROOT)
        os.execv(sys.executable, [sys.executable, "-m", "kemu.cli.kemuctl", "--server",
                                  cluster.server, "exec", "-it", "shell", "-n", ns, "--", "sh"])
    seen = b""
    try:
        os.write(fd, b"echo tty=$(tty) sum=$((20+22))\n")
        deadline = time.monotonic() + 30
        while b"sum=42" not in seen and time.monotonic() < deadline:
            if select.select([fd], [], [], 1)[0]:
                seen += os.read(fd, 4096)
        assert b"sum=42" in seen and b"tty=/dev/pts/" in seen, seen
        os.write(fd, b"exit 3\n")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if select.select([fd], [], [], 0.5)[0]:
                with contextlib.suppress(OSError):
                    seen += os.read(fd, 4096)
        else:
            pytest.fail(f"kemuctl exec -it did not end: {seen!r}")
        assert os.waitstatus_to_exitcode(status) == 3
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
        os.close(fd)


def test_scheduling_reasons_cordon_and_describe_node(cluster: Cluster, agent: AgentHandle,
                                                      api: Client, namespace: str) -> None:
    ns = namespace
    manifest = ("apiVersion: v1\nkind: Pod\nmetadata: {name: big}\nspec:\n  containers:\n"
                "  - name: c\n    image: kemu/pause:3.9\n    imagePullPolicy: Never\n"
                "    resources: {requests: {cpu: '1000'}}\n")
    applied = subprocess.run([sys.executable, "-m", "kemu.cli.kemuctl", "--server",
                              cluster.server, "apply", "-n", ns, "-f", "-"], input=manifest,
                             capture_output=True, text=True, timeout=60, cwd=processes.ROOT)
    assert applied.returncode == 0, applied.stderr

    def reason() -> str:
        text = kemuctl(cluster, "describe", "pod", "big", "-n", ns).stdout
        return text if "FailedScheduling" in text else ""
    processes.wait_for(reason, 30, "a FailedScheduling event on pod big")
    assert "1 Insufficient cpu" in reason()
    assert api.get("pods", "big", ns).pod.status.phase == "Pending"

    assert kemuctl(cluster, "cordon", agent.node).stdout.strip() == f"node/{agent.node} cordoned"
    try:
        assert kemuctl(cluster, "run", "later", "-n", ns, "--image", "kemu/pause:3.9",
                       "--image-pull-policy", "Never").returncode == 0
        processes.wait_for(lambda: "unschedulable" in kemuctl(
            cluster, "describe", "pod", "later", "-n", ns).stdout, 30,
            "pod later reported unschedulable while the node is cordoned")
        nodes = kemuctl(cluster, "get", "nodes").stdout
        assert f"{agent.node}" in nodes and "Ready,SchedulingDisabled" in nodes
    finally:
        kemuctl(cluster, "uncordon", agent.node)
    wait_phase(api, ns, "later", "Running")
    described = kemuctl(cluster, "describe", "node", agent.node).stdout
    assert "Allocated resources:" in described and "later" in described
    assert "Ready" in described and "Capacity:" in described
