"""The apiserver under test, on each store backend: kemu's own store and a real etcd 3.4."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kemu.client import Client
from tests.support import processes


@pytest.fixture(scope="module", params=["kemu-store", "etcd"])
def api(request: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """A client of an apiserver running unchanged against the given store."""
    tmp = tmp_path_factory.mktemp(request.param)
    store = processes.kemu_store(tmp) if request.param == "kemu-store" else processes.etcd(tmp)
    apiserver = processes.kemu_apiserver(tmp, store.address,
                                         extra=("--watch-cache-size", "200",
                                                "--watch-bookmark-interval", "1"))
    with processes.running(store, apiserver):
        client = Client(apiserver.address, timeout=15)
        client.backend = request.param  # type: ignore[attr-defined]
        yield client
        client.close()
