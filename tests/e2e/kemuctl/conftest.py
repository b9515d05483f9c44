"""A whole single-node cluster for kemuctl's end-to-end tests: store, apiserver, scheduler
and a real node agent on the local dockerd (the node agent's fixtures, reused)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cluster
from tests.e2e.nodeagent.conftest import agent, api, docker_client, namespace
from tests.support import processes

__all__ = ["agent", "api", "docker_client", "namespace", "scheduler"]


@pytest.fixture(scope="module")
def scheduler(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[processes.Proc]:
    tmp: Path = tmp_path_factory.mktemp("scheduler")
    health = f"127.0.0.1:{processes.free_port()}"
    proc = processes.Proc("scheduler", [processes.PYTHON, "-m", "kemu.cli.kemu_main",
                                        "scheduler", "--apiserver", cluster.server,
                                        "--health-listen", health],
                          tmp / "scheduler.log", health)
    with processes.running(proc):
        yield proc
