"""Fixtures for the node agent's end-to-end tests: a real dockerd, real store + apiserver
processes (the shared `cluster` fixture) and a real `python -m kemu.nodeagent` process.

Every agent gets its own node name; at the end (even on failure) every container labelled
`io.kemu.node=<node>` and the node's Docker network are removed.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator

import docker
import pytest

from kemu.client import Client
from tests.conftest import Cluster
from tests.e2e.nodeagent.helpers import (
    IMAGES,
    AgentHandle,
    create_namespace,
    docker_from_env,
    running_agent,
)
from tests.support.processes import ROOT


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A Docker client; starts dockerd through scripts/ensure-docker.sh when it is down."""
    try:
        client = docker_from_env()
        client.ping()
    except Exception:
        script = ROOT / "scripts" / "ensure-docker.sh"
        if not script.exists():
            pytest.fail("Docker does not answer and scripts/ensure-docker.sh is missing")
        subprocess.run(["bash", str(script)], check=True, timeout=600)
        client = docker_from_env()
        client.ping()
    missing = [i for i in IMAGES if not _has_image(client, i)]
    if missing:
        _build_images(missing)
        missing = [i for i in IMAGES if not _has_image(client, i)]
        if missing:
            pytest.fail(f"images missing: {', '.join(missing)} (build them with "
                        "`kemu images build`)")
    yield client
    client.close()


def _has_image(client: docker.DockerClient, image: str) -> bool:
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def _build_images(missing: list[str]) -> None:
    """Build the demo images with `kemu images build` (one xdist worker at a time)."""
    import fcntl

    cmd = [sys.executable, "-m", "kemu.cli.kemu_main", "images", "build"]
    probe = subprocess.run([*cmd, "--help"], capture_output=True, cwd=ROOT, timeout=60)
    if probe.returncode != 0:
        return
    names = sorted({m.split("/", 1)[-1].split(":", 1)[0] for m in missing})
    with open("/tmp/kemu-e2e-nodeagent-images.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run([*cmd, *names], cwd=ROOT, timeout=1800, check=False)


@pytest.fixture(scope="module")
def agent(cluster: Cluster, docker_client: docker.DockerClient,
          tmp_path_factory: pytest.TempPathFactory,
          request: pytest.FixtureRequest) -> Iterator[AgentHandle]:
    """One agent shared by the tests of a module (they use their own namespaces)."""
    prefix = "e2e-" + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")[:12]
    tmp = tmp_path_factory.mktemp("agent")
    with running_agent(cluster, docker_client, tmp, prefix.replace("_", "-")) as handle:
        yield handle


@pytest.fixture(scope="module")
def api(agent: AgentHandle) -> Iterator[Client]:
    with agent.client() as c:
        yield c


@pytest.fixture
def namespace(api: Client, request: pytest.FixtureRequest) -> str:
    """A fresh namespace per test (names from the test's name)."""
    base = request.node.name.removeprefix("test_").replace("_", "-")[:40].strip("-")
    name = f"{base}-{secrets.token_hex(2)}"
    create_namespace(api, name)
    return name
