"""Fixtures: a fresh kemu store, a fresh real etcd, or each in turn."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from store_procs import ETCD, Server, start_etcd, start_kemu


def _start(kind: str, tmp_path: Path) -> Server:
    if kind == "etcd":
        if not Path(ETCD).exists():
            pytest.skip("etcd is not installed")
        return start_etcd(tmp_path / "etcd-data")
    return start_kemu(tmp_path / "kemu-data")


@pytest.fixture
def kemu(tmp_path: Path) -> Iterator[Server]:
    server = _start("kemu", tmp_path)
    yield server
    server.stop()


@pytest.fixture(params=["kemu", "etcd"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """The same scenario against kemu's store and against a real etcd 3.4."""
    server = _start(str(request.param), tmp_path)
    yield server
    server.stop()


@pytest.fixture
def both(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """kemu and etcd side by side, for comparing outputs."""
    if not shutil.which("etcdctl"):
        pytest.skip("etcdctl is not installed")
    k = _start("kemu", tmp_path)
    try:
        e = _start("etcd", tmp_path)
    except BaseException:
        k.stop()
        raise
    yield k, e
    k.stop()
    e.stop()
