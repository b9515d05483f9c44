"""`kemu apiserver --token-file`: a real apiserver refuses every call without a listed
bearer token (UNAUTHENTICATED, one message), keeps health open, and serves the sync client,
the asyncio client (unary and watch) and kemuctl once they send the token."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kemu.client import Client
from kemu.client.aio import AsyncClient
from kemu.client.errors import Unauthorized
from tests.support import processes

pytestmark = pytest.mark.integration
TOKEN = "join-4f2a9c"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("token")
    token_file = tmp / "tokens"
    token_file.write_text(f"# join tokens\n{TOKEN},kubelet,1\nsecond-token\n")
    store = processes.kemu_store(tmp)
    apiserver = processes.kemu_apiserver(tmp, store.address,
                                         extra=("--token-file", str(token_file)))
    with processes.running(store, apiserver):  # wait_ready checks health without a token
        yield apiserver.address


@pytest.mark.parametrize("token", [pytest.param("", id="none"),
                                   pytest.param("wrong", id="wrong")])
def test_without_a_listed_token_every_call_is_unauthenticated(server: str, token: str) -> None:
    with Client(server, token=token) as api:
        with pytest.raises(Unauthorized, match="needs a bearer token") as exc:
            api.list("namespaces")
        assert exc.value.code == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(Unauthorized):
            list(api.watch("pods", timeout=5))


def test_health_stays_open(server: str) -> None:
    with grpc.insecure_channel(server) as ch:
        resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("token", [pytest.param(TOKEN, id="kubernetes-csv-line"),
                                   pytest.param("second-token", id="plain-line")])
def test_a_listed_token_works(server: str, token: str) -> None:
    with Client(server, token=token) as api:
        names = {o.namespace.metadata.name for o in api.list("namespaces").items}
    assert "kube-system" in names


def test_async_client_sends_the_token_from_the_environment(
        server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEMU_TOKEN", TOKEN)

    async def main() -> tuple[int, str]:
        async with AsyncClient(server, read_retry_seconds=0) as api:
            items = (await api.list("namespaces")).items
            async for event in api.watch("namespaces"):
                return len(items), event.object.namespace.metadata.name
        raise AssertionError("the watch ended without an event")

    count, first = asyncio.run(asyncio.wait_for(main(), 30))
    assert count >= 4 and first


def _kemuctl(server: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "KEMU_TOKEN"}
    return subprocess.run([sys.executable, "-m", "kemu.cli.kemuctl", "-s", server, *args],
                          capture_output=True, text=True, timeout=60, env={**clean, **env})


def test_kemuctl_says_one_line_then_works_with_the_token(server: str, tmp_path: Path) -> None:
    config = tmp_path / "config"
    no_token = _kemuctl(server, {"KEMU_CONFIG": str(config)}, "get", "namespaces")
    assert no_token.returncode == 1
    assert no_token.stdout == ""
    lines = no_token.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error from server (Unauthorized): "), lines

    by_env = _kemuctl(server, {"KEMU_CONFIG": str(config), "KEMU_TOKEN": TOKEN},
                      "get", "namespaces")
    assert by_env.returncode == 0, by_env.stderr
    assert "kube-system" in by_env.stdout

    by_flag = _kemuctl(server, {"KEMU_CONFIG": str(config)}, "--token", TOKEN, "get",
                       "namespaces")
    assert by_flag.returncode == 0 and "kube-system" in by_flag.stdout, by_flag.stderr

    config.write_text(f"current-cluster: lab\nclusters:\n  lab:\n    server: {server}\n"
                      f"    token: {TOKEN}\n")
    by_config = _kemuctl(server, {"KEMU_CONFIG": str(config)}, "get", "namespaces")
    assert by_config.returncode == 0, by_config.stderr
