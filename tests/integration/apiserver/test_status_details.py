"""Errors any language can branch on: a real apiserver answers each failure with its gRPC
code, the Kubernetes-worded message, and google.rpc.Status details in the
`grpc-status-details-bin` trailer (an ErrorInfo with the StatusReason, domain kemu.io and
the object; a BadRequest with one violation per invalid field), read here as a plain gRPC
client would, with grpc_status; kemu.client exposes the same on its errors."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import google.rpc.error_details_pb2 as error_details_pb2
import google.rpc.status_pb2 as status_pb2
import grpc
import pytest
from grpc_status import rpc_status

from kemu.api import manifest
from kemu.api.v1 import api_pb2, api_pb2_grpc
from kemu.client import Client, Invalid, NotFound
from tests.support import processes

pytestmark = pytest.mark.integration
TOKEN = "status-details-7c1e"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
_names = itertools.count()


@dataclass(frozen=True)
class Server:
    address: str
    stub: api_pb2_grpc.ResourcesStub


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("status")
    token_file = tmp / "tokens"
    token_file.write_text(f"{TOKEN}\n")
    store = processes.kemu_store(tmp)
    apiserver = processes.kemu_apiserver(tmp, store.address,
                                         extra=("--token-file", str(token_file)))
    with processes.running(store, apiserver), grpc.insecure_channel(apiserver.address) as ch:
        yield Server(apiserver.address, api_pb2_grpc.ResourcesStub(ch))


@dataclass(frozen=True)
class Rich:
    """What a raw client sees: code, message, ErrorInfo and BadRequest violations."""

    code: grpc.StatusCode
    message: str
    info: error_details_pb2.ErrorInfo
    violations: list[tuple[str, str]]


def rich(call: Callable[[], Any]) -> Rich:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    err: Any = caught.value
    status = rpc_status.from_call(err)
    assert isinstance(status, status_pb2.Status), "no grpc-status-details-bin trailer"
    info = error_details_pb2.ErrorInfo()
    bad = error_details_pb2.BadRequest()
    assert status.details and status.details[0].Unpack(info)
    for detail in status.details[1:]:
        assert detail.Unpack(bad)
    assert info.domain == "kemu.io"
    return Rich(err.code(), err.details(), info,
                [(v.field, v.description) for v in bad.field_violations])


def configmap(name: str) -> api_pb2.Object:
    return manifest.from_dict({"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": name, "namespace": "default"},
                               "data": {"k": "v"}})


def bad_deployment(name: str) -> api_pb2.Object:
    return manifest.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": -1, "selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "web"}]}}}})


def get(server: Server, resource: str, name: str, **kw: Any) -> api_pb2.Object:
    key = api_pb2.ObjectKey(resource=resource, namespace="default", name=name)
    return server.stub.Get(api_pb2.GetRequest(key=key), timeout=10, **kw)


def test_not_found(server: Server) -> None:
    r = rich(lambda: get(server, "deployments", "nothing-here", metadata=AUTH))
    assert r.code == grpc.StatusCode.NOT_FOUND
    assert r.message == 'deployments.apps "nothing-here" not found'
    assert r.info.reason == "NotFound"
    assert dict(r.info.metadata) == {"kind": "deployments", "group": "apps",
                                     "name": "nothing-here"}
    assert r.violations == []


def test_already_exists(server: Server) -> None:
    name = f"twice-{next(_names)}"
    server.stub.Create(api_pb2.CreateRequest(object=configmap(name)), timeout=10, metadata=AUTH)
    r = rich(lambda: server.stub.Create(api_pb2.CreateRequest(object=configmap(name)),
                                        timeout=10, metadata=AUTH))
    assert r.code == grpc.StatusCode.ALREADY_EXISTS
    assert r.message == f'configmaps "{name}" already exists'
    assert r.info.reason == "AlreadyExists"
    assert dict(r.info.metadata) == {"kind": "configmaps", "name": name}  # core: no group


def test_conflict_on_a_stale_resource_version(server: Server) -> None:
    name = f"stale-{next(_names)}"
    first = server.stub.Create(api_pb2.CreateRequest(object=configmap(name)), timeout=10,
                               metadata=AUTH)
    newer = api_pb2.Object()
    newer.CopyFrom(first)
    newer.config_map.data["k"] = "v2"
    server.stub.Update(api_pb2.UpdateRequest(object=newer), timeout=10, metadata=AUTH)
    first.config_map.data["k"] = "v3"  # still carries the first resourceVersion
    r = rich(lambda: server.stub.Update(api_pb2.UpdateRequest(object=first), timeout=10,
                                        metadata=AUTH))
    assert r.code == grpc.StatusCode.ABORTED
    assert r.message.startswith(f'Operation cannot be fulfilled on configmaps "{name}": ')
    assert r.info.reason == "Conflict"
    assert dict(r.info.metadata) == {"kind": "configmaps", "name": name}


def test_invalid_has_one_violation_per_field(server: Server) -> None:
    name = f"broken-{next(_names)}"
    r = rich(lambda: server.stub.Create(api_pb2.CreateRequest(object=bad_deployment(name)),
                                        timeout=10, metadata=AUTH))
    assert r.code == grpc.StatusCode.INVALID_ARGUMENT
    assert r.message.startswith(f'Deployment.apps "{name}" is invalid: [')
    assert r.info.reason == "Invalid"
    assert dict(r.info.metadata) == {"kind": "Deployment", "group": "apps", "name": name,
                                     "field": "spec.replicas"}
    assert r.violations == [
        ("spec.replicas", "Invalid value: -1: must be greater than or equal to 0"),
        ("spec.template.spec.containers[0].image", "Required value"),
    ]
    for field, description in r.violations:  # the message lists the same field errors
        assert f"{field}: {description}" in r.message


def test_bad_request(server: Server) -> None:
    r = rich(lambda: get(server, "", "x", metadata=AUTH))
    assert (r.code, r.message, r.info.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT, "resource is required", "BadRequest")
    assert dict(r.info.metadata) == {}


def test_unauthorized_without_a_token(server: Server) -> None:
    r = rich(lambda: get(server, "services", "kubernetes"))
    assert r.code == grpc.StatusCode.UNAUTHENTICATED
    assert r.message.startswith("Unauthorized: this apiserver needs a bearer token")
    assert r.info.reason == "Unauthorized"


def test_gone_when_watching_from_a_compacted_revision(server: Server) -> None:
    events = server.stub.Watch(api_pb2.WatchRequest(resource="configmaps",
                                                    resource_version="1"),
                               timeout=10, metadata=AUTH)
    r = rich(lambda: next(iter(events)))
    assert r.code == grpc.StatusCode.OUT_OF_RANGE
    assert r.message.startswith("too old resource version: 1 ")
    assert r.info.reason == "Gone"


def test_kemu_client_exposes_reason_metadata_and_violations(server: Server) -> None:
    name = f"client-{next(_names)}"
    with Client(server.address, token=TOKEN, timeout=10) as api:
        with pytest.raises(Invalid) as invalid:
            api.create(bad_deployment(name))
        with pytest.raises(NotFound) as missing:
            api.get("deployments", name, "default")
    assert invalid.value.reason == "Invalid"
    assert invalid.value.metadata["field"] == "spec.replicas"
    assert [v.field for v in invalid.value.field_violations] == [
        "spec.replicas", "spec.template.spec.containers[0].image"]
    assert invalid.value.field_violations[1].description == "Required value"
    assert (missing.value.reason, missing.value.metadata["kind"]) == ("NotFound", "deployments")
    assert missing.value.field_violations == ()
