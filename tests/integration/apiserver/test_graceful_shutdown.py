"""SIGTERM drains a real apiserver: open watches end cleanly with UNAVAILABLE (clients
resume elsewhere or later), calls in flight end OK or UNAVAILABLE but are never cut, and the
process exits 0 well within `--shutdown-grace`."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import grpc
import pytest

from kemu.api.v1 import api_pb2, api_pb2_grpc
from tests.support import processes

pytestmark = pytest.mark.integration
GRACE = 4.0
WATCHES = 5


async def _watch(stub: api_pb2_grpc.ResourcesStub, opened: asyncio.Event,
                 resource: str) -> tuple[grpc.StatusCode, str, int]:
    """Read a watch to its end: its status code, message and the events it delivered."""
    call = stub.Watch(api_pb2.WatchRequest(resource=resource))
    events = 0
    try:
        async for _ in call:
            events += 1
            opened.set()
    except grpc.aio.AioRpcError as e:
        return e.code(), e.details() or "", events
    return grpc.StatusCode.OK, "", events


async def _write_until_refused(stub: api_pb2_grpc.ResourcesStub) -> list[grpc.StatusCode]:
    """Create ConfigMaps back to back until the server refuses; every call's code."""
    codes: list[grpc.StatusCode] = []
    for i in range(100_000):
        obj = api_pb2.Object()
        obj.config_map.metadata.name, obj.config_map.metadata.namespace = f"cm-{i}", "default"
        try:
            await stub.Create(api_pb2.CreateRequest(object=obj), timeout=10)
            codes.append(grpc.StatusCode.OK)
        except grpc.aio.AioRpcError as e:
            codes.append(e.code())
            if e.code() == grpc.StatusCode.UNAVAILABLE:
                break
    return codes


def test_sigterm_ends_every_watch_and_exits_zero(tmp_path: Path) -> None:
    store = processes.kemu_store(tmp_path)
    api = processes.kemu_apiserver(tmp_path, store.address,
                                   extra=("--shutdown-grace", str(GRACE)))

    async def main() -> tuple[list[tuple[grpc.StatusCode, str, int]], list[grpc.StatusCode],
                              float, float]:
        async with grpc.aio.insecure_channel(api.address) as channel:
            stub = api_pb2_grpc.ResourcesStub(channel)
            opened = [asyncio.Event() for _ in range(WATCHES)]
            watches = [asyncio.create_task(_watch(stub, ev, "namespaces" if i % 2 else
                                                  "configmaps"))
                       for i, ev in enumerate(opened[:-1])]
            watches.append(asyncio.create_task(_watch(stub, opened[-1], "namespaces")))
            writer = asyncio.create_task(_write_until_refused(stub))
            await asyncio.wait_for(asyncio.gather(*(ev.wait() for ev in opened)), 10)
            await asyncio.sleep(0.3)  # writes in flight, events flowing
            assert api.popen is not None
            started = time.monotonic()
            api.popen.send_signal(signal.SIGTERM)
            ended = await asyncio.wait_for(asyncio.gather(*watches), GRACE)
            watches_ended = time.monotonic() - started
            codes = await asyncio.wait_for(writer, GRACE)
            await asyncio.to_thread(api.popen.wait, GRACE + 5)
            return ended, codes, watches_ended, time.monotonic() - started

    with processes.running(store, api):
        ended, codes, watches_ended, exited = asyncio.run(main())
        assert api.popen is not None and api.popen.returncode == 0, api.tail()
    for code, details, events in ended:
        assert (code, details) == (grpc.StatusCode.UNAVAILABLE, "apiserver is shutting down")
        assert events >= 1
    assert codes.count(grpc.StatusCode.OK) > 0
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, codes[-5:]
    assert exited < GRACE, f"exited {exited:.1f}s after SIGTERM"
    assert "apiserver stopped in" in api.log.read_text()
    print(f"{WATCHES} watches ended {watches_ended:.2f}s and the process exited "
          f"{exited:.2f}s after SIGTERM; {codes.count(grpc.StatusCode.OK)} writes before")
