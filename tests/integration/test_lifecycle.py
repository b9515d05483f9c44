"""`kemu up`, `kemu status`, `kemu down`: a cluster of managed processes on this machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kemu.client import Client
from tests.support import processes

pytestmark = pytest.mark.integration


def kemu(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kemu.cli.kemu_main", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_up_status_down(tmp_path: Path) -> None:
    env = {**os.environ, "KEMU_HOME": str(tmp_path / "home"),
           "KEMU_CONFIG": str(tmp_path / "config")}
    store_port, api_port = processes.free_port(), processes.free_port()
    ports = ("--store-port", str(store_port), "--apiserver-port", str(api_port))
    up = kemu(env, "up", "--name", "lab", *ports)
    assert up.returncode == 0, up.stderr
    assert f"127.0.0.1:{api_port}" in up.stdout
    config = yaml.safe_load((tmp_path / "config").read_text())
    assert config["current-cluster"] == "lab"
    assert config["clusters"]["lab"]["server"] == f"127.0.0.1:{api_port}"
    try:
        with Client(f"127.0.0.1:{api_port}") as client:
            assert client.get("ns", "kube-system")
        again = kemu(env, "up", "--name", "lab", *ports)  # reuses the running cluster
        assert again.returncode == 0 and "already running" in again.stdout
        status = kemu(env, "status", "--name", "lab")
        assert status.returncode == 0
        assert status.stdout.count("Healthy") == 2
        # a second cluster beside the first
        other = kemu(env, "up", "--name", "other", "--store-port", str(processes.free_port()),
                     "--apiserver-port", str(processes.free_port()))
        assert other.returncode == 0, other.stderr
        assert kemu(env, "down", "--name", "other").returncode == 0
    finally:
        down = kemu(env, "down", "--name", "lab")
    assert down.returncode == 0
    assert not (tmp_path / "home" / "clusters" / "lab").exists()
    assert not processes.tcp_open(f"127.0.0.1:{api_port}")
    assert kemu(env, "status", "--name", "lab").returncode == 1


def test_up_reports_a_port_in_use_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "KEMU_HOME": str(tmp_path / "home"),
           "KEMU_CONFIG": str(tmp_path / "config")}
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = kemu(env, "up", "--name", "busy", "--store-port", str(port),
                      "--apiserver-port", str(processes.free_port()))
    assert result.returncode == 1
    assert result.stderr.startswith("error: store exited")
    assert "Traceback" not in result.stderr.splitlines()[0]
    kemu(env, "down", "--name", "busy")
