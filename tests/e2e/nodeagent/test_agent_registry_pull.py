"""imagePullPolicy against a real registry (Debian's docker-registry on loopback):
IfNotPresent pulls a missing image, Always pulls a changed tag again, Never refuses."""

from __future__ import annotations

import contextlib
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from kemu.client import Client
from tests.e2e.nodeagent.helpers import AgentHandle, create_pod, wait_for
from tests.support import processes

pytestmark = pytest.mark.e2e
REGISTRY = "/usr/bin/docker-registry"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A registry on a free loopback port (Docker trusts 127.0.0.0/8 without TLS)."""
    if not Path(REGISTRY).exists():
        subprocess.run(["bash", str(processes.ROOT / "scripts" / "ensure-docker.sh")],
                       check=True, timeout=600)
    tmp = tmp_path_factory.mktemp("registry")
    address = f"127.0.0.1:{processes.free_port()}"
    config = tmp / "config.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp}/data\n"
                      f"http:\n  addr: {address}\n")
    proc = processes.Proc("registry", [REGISTRY, "serve", str(config)], tmp / "registry.log",
                          address)
    proc.start()
    try:
        processes.wait_for(lambda: processes.tcp_open(address), 20, "docker-registry")
        yield address
    finally:
        proc.stop()


def _push(engine: docker.DockerClient, source: str, target: str) -> None:
    repo, tag = target.rsplit(":", 1)
    engine.images.get(source).tag(repo, tag)
    for line in engine.images.push(repo, tag=tag, stream=True, decode=True):
        assert "error" not in line, line
    engine.images.remove(target)  # only the registry has it now


def _answer(ip: str) -> str:
    """The app's answer, once it listens (Running only means the process started)."""
    def fetch() -> str:
        try:
            with urllib.request.urlopen(f"http://{ip}:8080/", timeout=2) as resp:
                return str(resp.read().decode())
        except OSError:
            return ""
    return str(wait_for(fetch, 20, f"an HTTP answer from {ip}:8080"))


def test_pull_policies_against_a_registry(agent: AgentHandle, api: Client, namespace: str,
                                          registry: str,
                                          docker_client: docker.DockerClient) -> None:
    image = f"{registry}/kemu/bootcamp:v1"
    _push(docker_client, "kemu/bootcamp:v1", image)
    try:
        create_pod(api, "first", namespace, agent.node,
                           [{"name": "web", "image": image, "imagePullPolicy": "IfNotPresent"}])
        wait_for(lambda: api.get("pods", "first", namespace).pod.status.phase == "Running",
                 60, "pod first Running after a pull")
        ip = api.get("pods", "first", namespace).pod.status.pod_ip
        assert _answer(ip).endswith("| v=1\n")
        reasons = {o.event.reason for o in api.list("events", namespace).items}
        assert {"Pulling", "Pulled"} <= reasons

        # The same tag now holds v2: Always pulls it again, IfNotPresent would not.
        _push(docker_client, "kemu/bootcamp:v2", image)
        create_pod(api, "again", namespace, agent.node,
                   [{"name": "web", "image": image, "imagePullPolicy": "Always"}])
        wait_for(lambda: api.get("pods", "again", namespace).pod.status.phase == "Running",
                 60, "pod again Running after a re-pull")
        assert _answer(api.get("pods", "again", namespace).pod.status.pod_ip).endswith(
            "| v=2\n")

        create_pod(api, "never", namespace, agent.node,
                   [{"name": "web", "image": f"{registry}/kemu/absent:1",
                     "imagePullPolicy": "Never"}])

        def never_reason() -> str:
            statuses = api.get("pods", "never", namespace).pod.status.container_statuses
            return statuses[0].state.waiting.reason if statuses else ""
        wait_for(lambda: never_reason() == "ErrImageNeverPull", 30, "ErrImageNeverPull")
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(image, force=True)
        # Pulls also left digest references (`<registry>/kemu/bootcamp@sha256:...`, shown
        # as `<none>` tags); the registry is gone after this module, so are they.
        for img in docker_client.images.list():
            for ref in img.attrs.get("RepoDigests") or []:
                if ref.startswith(f"{registry}/"):
                    with contextlib.suppress(docker.errors.APIError):
                        docker_client.images.remove(ref)
