"""Standard gRPC tooling works against the store: health checking and reflection."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from store_procs import Server

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
