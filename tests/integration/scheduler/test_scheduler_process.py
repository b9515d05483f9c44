"""The scheduler as a process: it rides out an apiserver restart, a restart of its own
continues the same FailedScheduling event, and bad flags get one line and a non-zero
exit."""

from __future__ import annotations

import socket
import subprocess

import pytest

from kemu.api import manifest
from kemu.client import Client
from tests.conftest import Cluster
from tests.integration.scheduler.conftest import Kube, poll, scheduler_proc
from tests.support import processes

pytestmark = pytest.mark.integration


@pytest.fixture
def kube_no_scheduler(cluster: Cluster) -> Kube:
    client = Client(cluster.server, timeout=15)
    client.create(manifest.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": "proc"}}))
    return Kube(client, "proc", "proc", processes.Proc("none", [], cluster.tmp / "x", ""))


def test_survives_apiserver_restart_and_own_restart(cluster: Cluster,
                                                    kube_no_scheduler: Kube) -> None:
    kube = kube_no_scheduler
    sched = scheduler_proc(cluster.tmp, cluster.server, name="scheduler-a")
    with processes.running(sched):
        node = kube.node("a", cpu="2")
        kube.pod("before", cpu="500m")
        assert kube.wait_bound("before") == node

        port = int(cluster.server.rsplit(":", 1)[1])
        cluster.apiserver_proc.kill9()
        poll("the scheduler to notice", lambda: "retrying" in sched.log.read_text())
        api2 = processes.kemu_apiserver(cluster.tmp, cluster.store, port=port,
                                        name="apiserver-2")
        with processes.running(api2):
            kube.client.close()
            kube.client = Client(cluster.server, timeout=15)
            kube.pod("after", cpu="500m")
            assert kube.wait_bound("after", timeout=30) == node
            # The cache still counts both pods: a pod needing the remaining 1 cpu + 1m fails.
            kube.pod("too-big", cpu="1001m")
            event = kube.wait_event("too-big", "FailedScheduling", timeout=30)
            assert event.message == "0/1 nodes are available: 1 Insufficient cpu."
            assert sched.alive()

            # A new scheduler process finds the same event and raises its count.
            sched.stop()
            sched2 = scheduler_proc(cluster.tmp, cluster.server, name="scheduler-b")
            with processes.running(sched2):
                again = poll("the same event with count 2", lambda: [
                    e for e in kube.events("too-big", "FailedScheduling") if e.count >= 2])
                assert len(kube.events("too-big", "FailedScheduling")) == 1
                assert again[0].message == event.message
                kube.pod("fits", cpu="1")
                assert kube.wait_bound("fits") == node
    kube.client.close()


@pytest.mark.parametrize(("args", "needle"), [
    pytest.param(["--apiserver", "nowhere"], "expected HOST:PORT", id="bad-address"),
    pytest.param(["--percentage-of-nodes-to-score", "101"], "within 0-100", id="bad-pct"),
    pytest.param(["--no-such-flag"], "unrecognized arguments", id="unknown-flag"),
])
def test_bad_flags_one_line(args: list[str], needle: str) -> None:
    result = subprocess.run([processes.PYTHON, "-m", "kemu.services.scheduler", *args],
                            capture_output=True, text=True, timeout=60, cwd=processes.ROOT)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert result.stdout == ""


def test_health_port_in_use_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([processes.PYTHON, "-m", "kemu.services.scheduler",
                                 "--health-listen", f"127.0.0.1:{port}"],
                                capture_output=True, text=True, timeout=60,
                                cwd=processes.ROOT)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"kemu scheduler: error: cannot listen on 127.0.0.1:{port}: Address already in use"]
