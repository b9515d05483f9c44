"""kemu's servers accept its clients' keepalive pings on a quiet stream.

A server-streaming call (the health Watch, like `kemuctl logs -f` waiting for a line) stays
open for several seconds while the client pings every second. With gRPC's default server
options the server answers the third ping with GOAWAY "too_many_pings" and the call dies
with UNAVAILABLE (checked by hand when this test was written); with
KEEPALIVE_SERVER_OPTIONS it lives until the client's own deadline.
"""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from kemu.util.grpcopts import KEEPALIVE_SERVER_OPTIONS

CLIENT_OPTIONS = [("grpc.keepalive_time_ms", 1000), ("grpc.keepalive_timeout_ms", 5000),
                  ("grpc.keepalive_permit_without_calls", 1),
                  ("grpc.http2.max_pings_without_data", 0)]


async def watch_quietly(server_options: list[tuple[str, int]], seconds: float) -> grpc.StatusCode:
    server = grpc.aio.server(options=server_options)
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}",
                                             options=CLIENT_OPTIONS) as channel:
            call = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(),
                                                             timeout=seconds)
            try:
                async for _ in call:
                    pass
            except grpc.aio.AioRpcError as e:
                return e.code()
            return grpc.StatusCode.OK
    finally:
        await server.stop(0)


@pytest.mark.timeout(30)
async def test_a_quiet_stream_survives_keepalive_pings() -> None:
    assert await watch_quietly(KEEPALIVE_SERVER_OPTIONS, 6.0) == \
        grpc.StatusCode.DEADLINE_EXCEEDED
