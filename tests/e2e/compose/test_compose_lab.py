"""compose/control-plane.yml and compose/node.yml: checked with both compose tools, and
brought up for real, as on three VMs, with Debian's docker-compose 1.29.

Every test that brings a cluster up with Docker Compose v2 (`docker compose`) is in
test_compose_v2_lab.py, so that pytest-xdist (`--dist loadfile`) runs the two tools' labs on
different workers at once; the scenario itself is tests/e2e/compose/scenario.py.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.compose.scenario import (
    ADDONS,
    COMPONENTS,
    CONTROL_PLANE,
    NODE,
    PKI,
    TOOLS,
    Project,
    compose_v1,
    control_plane_and_two_nodes,
    etcd_profile,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

#: The lab /24 of the docker-compose 1.29 run (test_compose_v2_lab.py has its own).
SUBNET = "198.18.254.0/24"


@pytest.fixture
def compose() -> list[str]:
    return compose_v1()


@pytest.mark.parametrize("tool", TOOLS.values(), ids=TOOLS.keys())
def test_compose_files_validate(tool: Callable[[], list[str]], tmp_path: Path) -> None:
    """Each tool (v2 installed by scripts/install-compose-v2.sh, skipped only if that fails)
    reads both files without a warning, and refuses them when a required setting is
    missing."""
    compose = tool()
    env = {"KEMU_ADVERTISE_ADDRESS": "192.0.2.10", "KEMU_APISERVER": "192.0.2.10:6443",
           "KEMU_NODE_IP": "192.0.2.11", "KEMU_PKI_DIR": str(tmp_path / "pki")}
    for file in (CONTROL_PLANE, NODE):
        done = Project(compose, file, "kemuvalidate", env).run("config")
        # Nothing serves plaintext, and no shared token is left to join with.
        assert "--insecure" not in done.stdout and "KEMU_TOKEN" not in done.stdout, done.stdout
        assert str(tmp_path / "pki") in done.stdout
        # Compose v2 warns of what it ignores (such as a `version:` key): none of that.
        assert done.stderr == "", done.stderr
    profiles = Project(compose, CONTROL_PLANE, "kemuvalidate",
                       {**env, "COMPOSE_PROFILES": "etcd"}).run("config", "--services")
    assert set(profiles.stdout.split()) == {*COMPONENTS, PKI, ADDONS, "etcd-1", "etcd-2",
                                            "etcd-3"}
    # A missing setting is an error of the file, not a cluster started half-configured.
    for file, name in ((CONTROL_PLANE, "KEMU_ADVERTISE_ADDRESS"), (NODE, "KEMU_APISERVER"),
                       (NODE, "KEMU_NODE_IP")):
        missing = Project(compose, file, "kemuvalidate",
                          {k: v for k, v in env.items() if k != name}).run(
                              "config", "-q", check=False)
        assert missing.returncode != 0 and name in missing.stderr, (file, missing.stderr)


def test_an_agent_without_its_certificate_exits_with_one_line(tmp_path: Path) -> None:
    """A worker whose KEMU_PKI_DIR lacks node.crt does not join an open cluster: the agent
    (as compose/node.yml runs it) says which file is missing, in one line, and exits."""
    if shutil.which("docker") is None:
        pytest.skip("needs docker")
    empty = tmp_path / "pki"
    empty.mkdir()
    done = subprocess.run(
        ["docker", "run", "--rm", "-v", f"{empty}:/etc/kemu/pki:ro",
         "-v", "/var/run/docker.sock:/var/run/docker.sock", "--entrypoint", "kemu",
         "kemu/kemu:latest", "agent", "--apiserver", "192.0.2.10:6443", "--node-name", "n1",
         "--node-ip", "192.0.2.11", "--tls-cert-file", "/etc/kemu/pki/node.crt",
         "--tls-private-key-file", "/etc/kemu/pki/node.key", "--client-ca-file",
         "/etc/kemu/pki/ca.crt", "--certificate-authority", "/etc/kemu/pki/ca.crt",
         "--client-certificate", "/etc/kemu/pki/node.crt", "--client-key",
         "/etc/kemu/pki/node.key"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("error: ")
    assert "No such file or directory" in done.stderr, done.stderr


def test_control_plane_and_two_nodes_from_compose(compose: list[str], tmp_path: Path) -> None:
    control_plane_and_two_nodes(compose, tmp_path, subnet=SUBNET, tag="1")


def test_etcd_profile_runs_the_apiserver_on_a_three_member_etcd(compose: list[str],
                                                               tmp_path: Path) -> None:
    etcd_profile(compose, tmp_path)
