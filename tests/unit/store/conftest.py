"""An in-process store on a temporary directory, with a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kemu.services.store.clock import FakeClock
from kemu.services.store.store import Store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Store]:
    s = Store(tmp_path / "data", fsync=False, clock=clock, lease_check_interval=3600)
    await s.start()
    yield s
    await s.close()
