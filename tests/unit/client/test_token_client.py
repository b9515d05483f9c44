"""Where a client's bearer token comes from: the argument, KEMU_TOKEN, ~/.kemu/config."""

from __future__ import annotations

from pathlib import Path

import pytest

from kemu.client import Client
from kemu.client.auth import aio_interceptors, with_token
from kemu.client.config import ClusterEntry, current_cluster, resolve_token, save_cluster
from kemu.nodeagent import cli as agent_cli


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KEMU_TOKEN", raising=False)
    monkeypatch.setenv("KEMU_CONFIG", str(tmp_path / "config"))


def test_with_token_adds_one_authorization_entry() -> None:
    md = (("x", "1"), ("authorization", "Bearer old"))
    assert with_token(md, "new") == (("x", "1"), ("authorization", "Bearer new"))
    assert with_token(md, "") == md


def test_none_means_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert with_token((), None) == ()
    assert aio_interceptors(None) == []
    monkeypatch.setenv("KEMU_TOKEN", "env-token")
    assert with_token((), None) == (("authorization", "Bearer env-token"),)
    assert len(aio_interceptors(None)) == 4
    with Client("127.0.0.1:1") as c:
        assert c.metadata == (("authorization", "Bearer env-token"),)
    with Client("127.0.0.1:1", token="") as c:
        assert c.metadata == ()


def test_resolve_token_flag_then_env_then_config(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_token(None) == ""
    save_cluster(ClusterEntry("lab", "10.0.0.1:6443", token="from-config"))
    entry = current_cluster()
    assert entry is not None and entry.token == "from-config"
    assert resolve_token(None) == "from-config"
    monkeypatch.setenv("KEMU_TOKEN", "from-env")
    assert resolve_token(None) == "from-env"
    assert resolve_token("from-flag") == "from-flag"


def test_agent_token_flag_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    p = argparse.ArgumentParser()
    agent_cli.configure(p)
    base = ["--apiserver", "10.0.0.1:6443", "--node-name", "n1", "--node-ip", "10.0.0.2"]
    assert agent_cli.config_from(p.parse_args(base)).token == ""
    monkeypatch.setenv("KEMU_TOKEN", "env-token")
    assert agent_cli.config_from(p.parse_args(base)).token == "env-token"
    assert agent_cli.config_from(p.parse_args([*base, "--token", "t"])).token == "t"
