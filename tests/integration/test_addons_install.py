"""`kemu addons install dns` against a real store and an apiserver with `--token-file`, as
compose/control-plane.yml's one-shot `addons` service runs it: it waits for the apiserver,
puts the token in a Secret the DNS pods read, changes nothing when run again, and rolls the
DNS pods when the token changes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kemu.api import objects
from kemu.cli import addons
from kemu.cli.addons_cli import TOKEN_VERSION
from kemu.client import Client
from tests.support import processes

pytestmark = pytest.mark.integration
TOKENS = ("first-4f2a9c", "second-77b1e0")


def install(server: str, token: str, *extra: str,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([processes.PYTHON, "-m", "kemu.cli.kemu_main", "addons", "install",
                           "dns", "--apiserver", server, *extra], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "KEMU_TOKEN": token})


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    (tmp_path / "tokens").write_text("\n".join(TOKENS) + "\n")
    return tmp_path


@pytest.fixture
def server(tmp: Path) -> Iterator[str]:
    store = processes.kemu_store(tmp)
    api = processes.kemu_apiserver(tmp, store.address,
                                   extra=("--token-file", str(tmp / "tokens")))
    with processes.running(store, api):
        yield api.address


def versions(api: Client) -> dict[str, str]:
    return {r: objects.meta(api.get(r, n, "kube-system")).resource_version
            for r, n in (("secrets", "kube-dns-token"), ("services", "kube-dns"),
                         ("deployments", "kube-dns"))}


def test_install_is_idempotent_and_a_new_token_rolls_the_dns_pods(server: str) -> None:
    first = install(server, TOKENS[0])
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["secret/kube-dns-token created",
                                         "service/kube-dns created",
                                         "deployment.apps/kube-dns created"]
    with Client(server, token=TOKENS[0]) as api:
        secret = api.get("secrets", "kube-dns-token", "kube-system").secret
        assert secret.data["token"] == TOKENS[0].encode()
        assert api.get("services", "kube-dns", "kube-system").service.spec.cluster_ip == \
            addons.cluster_dns_ip()
        dep = api.get("deployments", "kube-dns", "kube-system").deployment
        (env,) = dep.spec.template.spec.containers[0].env
        assert env.name == "KEMU_TOKEN"
        assert (env.value_from.secret_key_ref.name, env.value_from.secret_key_ref.key) == \
            ("kube-dns-token", "token")
        assert dep.spec.template.metadata.annotations[TOKEN_VERSION] == \
            secret.metadata.resource_version
        before = versions(api)

        again = install(server, TOKENS[0])
        assert again.returncode == 0, again.stderr
        assert again.stdout.splitlines() == ["secret/kube-dns-token unchanged",
                                             "service/kube-dns unchanged",
                                             "deployment.apps/kube-dns unchanged"]
        assert versions(api) == before

        rotated = install(server, TOKENS[1])
        assert rotated.returncode == 0, rotated.stderr
        assert rotated.stdout.splitlines() == ["secret/kube-dns-token configured",
                                               "service/kube-dns unchanged",
                                               "deployment.apps/kube-dns configured"]
        secret = api.get("secrets", "kube-dns-token", "kube-system").secret
        assert secret.data["token"] == TOKENS[1].encode()
        dep = api.get("deployments", "kube-dns", "kube-system").deployment
        assert dep.spec.template.metadata.annotations[TOKEN_VERSION] == \
            secret.metadata.resource_version != before["secrets"]


def test_install_waits_for_an_apiserver_that_starts_later(tmp: Path) -> None:
    store = processes.kemu_store(tmp)
    port = processes.free_port()
    api = processes.kemu_apiserver(tmp, store.address, port=port,
                                   extra=("--token-file", str(tmp / "tokens")))
    waiting = subprocess.Popen([processes.PYTHON, "-m", "kemu.cli.kemu_main", "addons",
                                "install", "dns", "--apiserver", f"127.0.0.1:{port}"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "KEMU_TOKEN": TOKENS[0]})
    try:
        with processes.running(store, api):
            out, err = waiting.communicate(timeout=60)
        assert waiting.returncode == 0, err
        assert "deployment.apps/kube-dns created" in out
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()


def test_an_apiserver_that_never_comes_is_one_line_and_exit_1() -> None:
    done = install(f"127.0.0.1:{processes.free_port()}", TOKENS[0], "--timeout", "1")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert "was not ready within 1s" in done.stderr, done.stderr


def test_a_refused_token_fails_at_once(server: str) -> None:
    done = install(server, "not-a-listed-token", "--timeout", "120", timeout=30)
    assert done.returncode == 1
    assert "Unauthorized" in done.stderr and done.stderr.count("\n") == 1, done.stderr
