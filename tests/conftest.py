"""Shared fixtures: a real store + apiserver per test module, a real etcd when asked."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import processes

# A suite started in the background by a shell without job control (`make test &` in a
# script, CI wrappers) inherits SIGINT ignored, and an ignored signal stays ignored across
# exec: every kemuctl the tests start would then ignore the Ctrl-C they send it. A handler
# here is reset to the default in each child, so the children see Ctrl-C as a user's.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass
class Cluster:
    """Addresses of a running control plane, and its processes (tests may kill them)."""

    server: str
    store: str
    store_proc: processes.Proc
    apiserver_proc: processes.Proc
    tmp: Path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """kemu store + kemu apiserver as real processes, shared by one test module."""
    tmp = tmp_path_factory.mktemp("cluster")
    store = processes.kemu_store(tmp)
    api = processes.kemu_apiserver(tmp, store.address)
    with processes.running(store, api):
        yield Cluster(api.address, store.address, store, api, tmp)


@pytest.fixture(scope="module")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[processes.Proc]:
    """A real etcd 3.4 (Debian's etcd-server) on free loopback ports."""
    if not os.path.exists(processes.ETCD):
        pytest.fail("etcd is not installed: run `make test`, which installs etcd-server")
    tmp = tmp_path_factory.mktemp("etcd")
    proc = processes.etcd(tmp)
    with processes.running(proc):
        yield proc
