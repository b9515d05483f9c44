"""Watch semantics over gRPC, checked against kemu and a real etcd alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from store_procs import Server

from kemu.api.etcd import rpc_pb2, rpc_pb2_grpc

pytestmark = pytest.mark.integration


async def _watch_from_old_revision_while_writing(endpoint: str) -> list[int]:
    async with grpc.aio.insecure_channel(endpoint) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        for i in range(300):
            await kv.Put(rpc_pb2.PutRequest(key=b"w/%d" % (i % 10), value=b"%d" % i))

        async def requests() -> AsyncIterator[rpc_pb2.WatchRequest]:
            yield rpc_pb2.WatchRequest(
                create_request=rpc_pb2.WatchCreateRequest(
                    key=b"w/", range_end=b"w0", start_revision=2
                )
            )
            await asyncio.Event().wait()  # keep the stream open

        call = rpc_pb2_grpc.WatchStub(ch).Watch(requests())

        async def writer() -> None:
            for i in range(300):
                await kv.Put(rpc_pb2.PutRequest(key=b"w/%d" % (i % 10), value=b"live"))

        writing = asyncio.ensure_future(writer())
        seen: list[int] = []
        async for resp in call:
            if resp.created:
                continue
            assert not resp.canceled
            seen += [e.kv.mod_revision for e in resp.events]
            if len(seen) >= 600:
                break
        await writing
        call.cancel()
        return seen


def test_watch_from_old_revision_while_writing(backend: Server) -> None:
    seen = asyncio.run(
        asyncio.wait_for(_watch_from_old_revision_while_writing(backend.endpoint), 60)
    )
    assert seen == list(range(2, 602)), "missed or repeated events"
