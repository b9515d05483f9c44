"""`kemu logs COMPONENT`: a process's log file in the cluster's state directory (made by
hand here under KEMU_HOME, as `kemu up` lays it out), following it while the process
runs, one line for what does not exist; and a container's log through Docker, with a
tiny container named and labelled as `kemu up` names its control plane."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kemu.cli.lifecycle import CLUSTER_LABEL, container_name
from kemu.cli.logs_cli import docker_client

pytestmark = pytest.mark.integration

LINES = [f'{{"ts":"2026-01-01T00:00:0{i}.000Z","level":"info","msg":"line {i}"}}'
         for i in range(5)]


def kemu_logs(home: Path, *args: str, timeout: float = 30
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kemu.cli.kemu_main", "logs", *args],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "KEMU_HOME": str(home)})


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A cluster `c1` with the scheduler's log and a lab cluster `lab` with two agents."""
    logs = tmp_path / "home" / "clusters" / "c1" / "logs"
    logs.mkdir(parents=True)
    (logs / "scheduler.log").write_text("\n".join(LINES) + "\n")
    lab = tmp_path / "home" / "clusters" / "lab" / "logs"
    lab.mkdir(parents=True)
    for i in (1, 2):
        (lab / f"agent-{i}.log").write_text(f"agent {i}\n")
    return tmp_path / "home"


def test_prints_a_process_log(home: Path) -> None:
    done = kemu_logs(home, "scheduler", "--name", "c1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == LINES


@pytest.mark.parametrize(("tail", "expected"), [
    pytest.param("2", LINES[-2:], id="last-2"),
    pytest.param("0", [], id="none"),
    pytest.param("99", LINES, id="more-than-there-are"),
    pytest.param("-1", LINES, id="all"),
])
def test_tail(home: Path, tail: str, expected: list[str]) -> None:
    done = kemu_logs(home, "scheduler", "--name", "c1", "--tail", tail)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == expected


def test_agent_n_of_a_lab(home: Path) -> None:
    done = kemu_logs(home, "agent-2", "--name", "lab")
    assert (done.returncode, done.stdout) == (0, "agent 2\n")


@pytest.mark.parametrize(("args", "says"), [
    pytest.param(("etcd", "--name", "c1"), "unknown component 'etcd': one of store, "
                 "apiserver, scheduler, controller-manager, agent, dns or agent-N",
                 id="unknown-component"),
    pytest.param(("scheduler", "--name", "nope"), "no cluster named 'nope'",
                 id="unknown-cluster"),
    pytest.param(("apiserver", "--name", "c1"), "cluster 'c1' has no log of apiserver "
                 "(it has: scheduler)", id="no-such-log"),
    pytest.param(("agent", "--name", "lab"), "cluster 'lab' has one agent per node: name "
                 "one (agent-1, agent-2)", id="lab-agent"),
])
def test_one_line_errors(home: Path, args: tuple[str, ...], says: str) -> None:
    done = kemu_logs(home, *args)
    assert done.returncode == 1 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: {says}"), line


def test_follow_until_the_process_stops(home: Path) -> None:
    d = home / "clusters" / "c1"
    sleeper = subprocess.Popen(["sleep", "60"])
    (d / "scheduler.pid").write_text(str(sleeper.pid))
    follower = subprocess.Popen(
        [sys.executable, "-m", "kemu.cli.kemu_main", "logs", "scheduler", "--name", "c1",
         "-f", "--tail", "1"], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "KEMU_HOME": str(home)})
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline().rstrip("\n") == LINES[-1]
        with open(d / "logs" / "scheduler.log", "a") as f:
            f.write("appended\n")
        assert follower.stdout.readline() == "appended\n"
        sleeper.kill()
        sleeper.wait()
        assert follower.wait(timeout=10) == 0  # the process is gone: following ends
    finally:
        for p in (sleeper, follower):
            if p.poll() is None:
                p.kill()
                p.wait()


# ---- a container, through Docker -------------------------------------------------------------


@pytest.fixture
def store_container() -> Iterator[str]:
    """A container named and labelled as cluster `logs-<id>`'s store, which prints three
    lines (one on stderr) and exits; removed at the end."""
    client = docker_client()
    if client is None:
        pytest.skip("no Docker engine (scripts/ensure-docker.sh starts one)")
    cluster = f"logs-{uuid.uuid4().hex[:6]}"
    container = client.containers.run(
        "kemu/tools:1",
        ["sh", "-c", "echo first; sleep 0.2; echo second >&2; sleep 0.2; echo third"],
        name=container_name(cluster, "store"), labels={CLUSTER_LABEL: cluster},
        detach=True)
    try:
        container.wait(timeout=30)
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)


@pytest.mark.e2e
def test_prints_a_container_log(store_container: str, tmp_path: Path) -> None:
    home = tmp_path / "home"  # no state directory: the container alone is enough
    done = kemu_logs(home, "store", "--name", store_container)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["first", "second", "third"]
    done = kemu_logs(home, "store", "--name", store_container, "--tail", "1")
    assert done.stdout.splitlines() == ["third"]
    start = time.monotonic()
    done = kemu_logs(home, "store", "--name", store_container, "-f")  # it has exited
    assert done.returncode == 0 and time.monotonic() - start < 20
    assert done.stdout.splitlines() == ["first", "second", "third"]
    # Another cluster's name does not reach it.
    done = kemu_logs(home, "store", "--name", store_container + "x")
    assert done.returncode == 1 and "no cluster named" in done.stderr
