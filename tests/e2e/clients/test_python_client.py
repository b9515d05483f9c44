"""examples/python/deployment.py run for real on a two-node lab: it creates a Deployment,
sees its pods Running, scales it, reads logs and deletes it; the cluster agrees."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kemu.client import Client
from tests.support.labcluster import PYTHON, LabCluster, lab_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SUBNET = "198.18.236.0/24"
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "python" / "deployment.py"


@pytest.fixture(scope="module")
def cl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        pytest.skip("needs root and dockerd for a lab")
    with lab_cluster(tmp_path_factory.mktemp("pyclient"), nodes=2, subnet=SUBNET,
                     images=["kemu/pause:3.9", "kemu/bootcamp:v1"]) as cluster:
        yield cluster


def test_the_python_example_runs_a_deployment_through_its_life(cl: LabCluster) -> None:
    done = subprocess.run([PYTHON, str(EXAMPLE)], capture_output=True, text=True,
                          timeout=400, env={**os.environ, "KEMU_SERVER": cl.apiserver})
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout.splitlines()
    assert out[0] == f"creating deployment hello-python (2 replicas) on {cl.apiserver}"
    running = {line.split()[1] for line in out if line.endswith(" Running")}
    assert len(running) == 3, out  # two, then a third after the scale
    logs = out.index(next(line for line in out if line.startswith("logs of ")))
    assert out[logs + 1].startswith("  | "), out  # the bootcamp app's start line
    assert {line.split()[1] for line in out if line.endswith(" deleted")} == running
    assert out[-1] == "done: the deployment and its pods are gone"
    with Client(cl.apiserver) as api:
        assert not api.list("deployments", "default").items
        assert not api.list("pods", "default", label_selector="app=hello-python").items
