"""compose/control-plane.yml and compose/node.yml brought up for real, as on three VMs, and
the `etcd` profile, with Docker Compose v2 (`docker compose`, installed by
scripts/install-compose-v2.sh): the same scenarios as test_compose_lab.py runs with Debian's
docker-compose 1.29, in a file of their own so that pytest-xdist (`--dist loadfile`) runs
both tools at once, on another lab subnet and with other project and lab names."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.compose.scenario import compose_v2, control_plane_and_two_nodes, etcd_profile

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

#: The lab /24 of the compose v2 run: test_compose_lab.py's is 198.18.254.0/24, the other
#: lab tests' 198.18.231-238 and 250-253, and `kemu up`'s 198.18.240-249.
SUBNET = "198.18.255.0/24"


@pytest.fixture
def compose() -> list[str]:
    return compose_v2()


def test_control_plane_and_two_nodes_from_compose_v2(compose: list[str],
                                                     tmp_path: Path) -> None:
    control_plane_and_two_nodes(compose, tmp_path, subnet=SUBNET, tag="2")


def test_etcd_profile_runs_the_apiserver_on_a_three_member_etcd_v2(compose: list[str],
                                                                  tmp_path: Path) -> None:
    etcd_profile(compose, tmp_path)
