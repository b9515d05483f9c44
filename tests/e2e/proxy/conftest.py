"""Fixtures for the proxy's end-to-end tests: throwaway network namespaces.

Every rule these tests apply goes into a namespace made for the test
(`kemu-proxytest-<random>`), never into the host's own; the namespace, and with it every
rule, interface and route in it, is deleted at the end even when the test fails. Processes
started inside are killed by their pid.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator

import pytest

NetnsFactory = Callable[[], str]


def _need_root() -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("iptables-restore") is None:
        pytest.skip("needs root, iproute2 and iptables to make network namespaces")


@pytest.fixture
def make_netns() -> Iterator[NetnsFactory]:
    """Makes fresh network namespaces (loopback up) and deletes them all afterwards."""
    _need_root()
    made: list[str] = []

    def make() -> str:
        name = f"kemu-proxytest-{secrets.token_hex(4)}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        made.append(name)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        return name

    try:
        yield make
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def netns(make_netns: NetnsFactory) -> str:
    """One throwaway network namespace."""
    return make_netns()
