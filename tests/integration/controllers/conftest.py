"""A real store + apiserver (the module's `cluster`) and real controller-manager processes.

Nodes are cluster-wide, so tests that make nodes delete every node before and after; each
test starts its own `python -m kemu.services.controllers` (its flags differ per test) and
checks at the end that it is still alive.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kemu.api import manifest
from kemu.client import Client
from tests.conftest import Cluster
from tests.support import processes

_ids = itertools.count()


def controller_manager(tmp: Path, apiserver: str, *extra: str, name: str = "cm"
                       ) -> processes.Proc:
    """`python -m kemu.services.controllers`, ready when its grpc health says SERVING."""
    health = f"127.0.0.1:{processes.free_port()}"
    return processes.Proc(name, [processes.PYTHON, "-m", "kemu.services.controllers",
                                 "--apiserver", apiserver, "--health-listen", health,
                                 "--log-level", "DEBUG", *extra],
                          tmp / f"{name}-{next(_ids)}.log", health)


def poll(what: str, fn: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05
         ) -> Any:
    """Call fn until it returns something truthy (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def delete_nodes(client: Client) -> None:
    for o in client.list("nodes").items:
        client.delete("nodes", o.node.metadata.name)


@pytest.fixture
def client(cluster: Cluster) -> Iterator[Client]:
    c = Client(cluster.server, timeout=15)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def namespace(client: Client) -> str:
    ns = f"ctrl-{next(_ids)}-{uuid.uuid4().hex[:5]}"
    client.create(manifest.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": ns}}))
    return ns
