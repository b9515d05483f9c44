"""A client needs no .proto file: server reflection describes kemu.v1, and a client built
only from those descriptors (no kemu module, no generated code) lists the services and
reads the `kubernetes` Service, as grpcurl or a dynamic client in any language would."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from tests.support import processes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpc.Channel]:
    tmp = tmp_path_factory.mktemp("reflection")
    store = processes.kemu_store(tmp)
    apiserver = processes.kemu_apiserver(tmp, store.address)
    with processes.running(store, apiserver), grpc.insecure_channel(apiserver.address) as ch:
        yield ch


def test_a_reflection_client_lists_services_and_gets_the_kubernetes_service(
        channel: grpc.Channel) -> None:
    db = ProtoReflectionDescriptorDatabase(channel)
    assert {"kemu.v1.Resources", "kemu.v1.Discovery", "grpc.health.v1.Health"} \
        <= set(db.get_services())

    pool = descriptor_pool.DescriptorPool(db)  # its own pool: nothing compiled in is used
    get = pool.FindServiceByName("kemu.v1.Resources").FindMethodByName("Get")
    request_class = message_factory.GetMessageClass(get.input_type)
    response_class = message_factory.GetMessageClass(get.output_type)
    call = channel.unary_unary(f"/{get.containing_service.full_name}/{get.name}",
                               request_serializer=request_class.SerializeToString,
                               response_deserializer=response_class.FromString)

    request = request_class()
    request.key.resource, request.key.namespace, request.key.name = \
        "services", "default", "kubernetes"
    answer = call(request, timeout=10)

    assert answer.DESCRIPTOR.full_name == "kemu.v1.Object"
    assert answer.WhichOneof("kind") == "service"
    assert answer.service.metadata.name == "kubernetes"
    assert answer.service.metadata.namespace == "default"
    assert answer.service.spec.cluster_ip == "10.96.0.1"
    assert [p.port for p in answer.service.spec.ports] == [443]
