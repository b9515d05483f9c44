"""Standard gRPC tooling works against the store: health checking and reflection."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from store_procs import Server

from kemu.api.etcd import rpc_pb2, rpc_pb2_grpc
from kemu.services.store.server import StoreConfig, serve

pytestmark = pytest.mark.integration


def test_health_and_reflection(kemu: Server) -> None:
    with grpc.insecure_channel(kemu.endpoint) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for service in ("", "etcdserverpb.KV", "etcdserverpb.Watch"):
            resp = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        answer = next(iter(stub.ServerReflectionInfo(iter([request]), timeout=5)))
        names = {s.name for s in answer.list_services_response.service}
        assert {
            "etcdserverpb.KV",
            "etcdserverpb.Watch",
            "etcdserverpb.Lease",
            "etcdserverpb.Cluster",
            "etcdserverpb.Maintenance",
            "grpc.health.v1.Health",
        } <= names
        request = reflection_pb2.ServerReflectionRequest(file_containing_symbol="mvccpb.KeyValue")
        answer = next(iter(stub.ServerReflectionInfo(iter([request]), timeout=5)))
        assert answer.file_descriptor_response.file_descriptor_proto


async def test_serve_in_process_and_error_table(tmp_path: Path) -> None:
    handle = await serve(StoreConfig(data_dir=tmp_path / "d", listen="127.0.0.1:0", fsync=False))
    try:
        assert handle.port > 0
        async with grpc.aio.insecure_channel(handle.address) as ch:
            kv = rpc_pb2_grpc.KVStub(ch)
            put = await kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"v"))
            assert put.header.revision == 2
            assert put.header.member_id == handle.store.member_id != 0
            cases = [
                (
                    kv.Range(rpc_pb2.RangeRequest(key=b"k", revision=9)),
                    grpc.StatusCode.OUT_OF_RANGE,
                    "etcdserver: mvcc: required revision is a future revision",
                ),
                (
                    kv.Put(rpc_pb2.PutRequest(key=b"k", lease=5)),
                    grpc.StatusCode.NOT_FOUND,
                    "etcdserver: requested lease not found",
                ),
                (
                    kv.Put(rpc_pb2.PutRequest(key=b"")),
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "etcdserver: key is not provided",
                ),
                (
                    kv.Compact(rpc_pb2.CompactionRequest(revision=0)),
                    grpc.StatusCode.OUT_OF_RANGE,
                    "etcdserver: mvcc: required revision has been compacted",
                ),
            ]
            for call, code, message in cases:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call
                assert (err.value.code(), err.value.details()) == (code, message)
            lease = rpc_pb2_grpc.LeaseStub(ch)
            exists = await lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(ID=7, TTL=10))
            assert (exists.ID, exists.TTL) == (7, 10)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(ID=7, TTL=10))
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            ttl = await lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=99))
            assert ttl.TTL == -1
    finally:
        await handle.stop()
