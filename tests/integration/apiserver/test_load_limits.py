"""A real apiserver's load limits: gRPC refuses a request over `--max-request-bytes` (3 MiB
by default) while one of exactly that size is stored; a client (its bearer token, else its
IP) gets RESOURCE_EXHAUSTED / TooManyRequests past `--max-watches-per-client` open watches
and past its `--max-requests-per-second` token bucket, while other clients and health
checks go on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kemu.api.v1 import api_pb2
from kemu.client import Client
from kemu.client.errors import ClientError
from kemu.services.apiserver.server import MAX_REQUEST_BYTES
from tests.support import processes

pytestmark = pytest.mark.integration
WATCHES, RATE, BURST = 3, 5, 10


@dataclass
class Servers:
    default: str  # every limit at its default
    tight: str  # WATCHES watches, RATE requests a second with a BURST


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    tmp = tmp_path_factory.mktemp("limits")
    store = processes.kemu_store(tmp)
    default = processes.kemu_apiserver(tmp, store.address)
    tight = processes.kemu_apiserver(tmp, store.address, name="tight", extra=(
        "--max-watches-per-client", str(WATCHES), "--max-requests-per-second", str(RATE),
        "--burst", str(BURST)))
    with processes.running(store, default, tight):
        yield Servers(default.address, tight.address)


def config_map(name: str, request_bytes: int) -> api_pb2.Object:
    """A ConfigMap whose CreateRequest is exactly `request_bytes` long on the wire."""
    obj = api_pb2.Object()
    obj.config_map.metadata.name, obj.config_map.metadata.namespace = name, "default"
    n = request_bytes
    for _ in range(4):  # the length prefixes grow with the value: converge on the size
        obj.config_map.data["blob"] = "x" * n
        n += request_bytes - api_pb2.CreateRequest(object=obj).ByteSize()
    assert api_pb2.CreateRequest(object=obj).ByteSize() == request_bytes
    return obj


def test_a_request_over_max_request_bytes_is_refused(servers: Servers) -> None:
    with Client(servers.default, token="size") as api:
        created = api.create(config_map("just-fits", MAX_REQUEST_BYTES))
        assert len(created.config_map.data["blob"]) > 3_000_000
        with pytest.raises(ClientError) as exc:
            api.create(config_map("too-big", MAX_REQUEST_BYTES + 1))
        assert exc.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"larger than max ({MAX_REQUEST_BYTES + 1} vs. {MAX_REQUEST_BYTES})" \
            in exc.value.message
        names = {o.config_map.metadata.name for o in api.list("configmaps", "default").items}
        assert "just-fits" in names and "too-big" not in names


def _open_watch(api: Client) -> Iterator[api_pb2.WatchEvent]:
    """A watch on namespaces, open on the server once its first event has arrived."""
    events = api.watch("namespaces", timeout=30)
    next(events)
    return events


@pytest.mark.parametrize(("token", "who"), [
    pytest.param("watcher", "the client with bearer token sha256:", id="by-token"),
    pytest.param("", "127.0.0.1", id="by-ip"),
])
def test_one_watch_past_the_cap_is_refused(servers: Servers, token: str, who: str) -> None:
    with Client(servers.tight, token=token) as api, \
            Client(servers.tight, token="another-watcher") as other:
        held = [_open_watch(api) for _ in range(WATCHES)]
        with pytest.raises(ClientError) as exc:
            _open_watch(api)
        assert exc.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert exc.value.reason == "TooManyRequests"
        assert f"too many watches: {who}" in exc.value.message
        assert f"already has {WATCHES} open" in exc.value.message
        assert "--max-watches-per-client" in exc.value.message
        held.append(_open_watch(other))  # another client has slots of its own
        held.pop(0).close()  # the server notices the cancel and gives the slot back
        processes.wait_for(lambda: _opens(api, held), 10, "a freed watch slot")
        for events in held:
            events.close()


def _opens(api: Client, held: list[Iterator[api_pb2.WatchEvent]]) -> bool:
    try:
        held.append(_open_watch(api))
    except ClientError as e:
        assert e.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        return False
    return True


def test_a_client_over_its_rate_is_refused_until_its_bucket_refills(servers: Servers) -> None:
    with Client(servers.tight, token="hasty") as api, \
            Client(servers.tight, token="patient") as other:
        results: list[str] = []
        for _ in range(BURST + 5):
            try:
                api.get("namespaces", "default")
                results.append("ok")
            except ClientError as e:
                assert e.code == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert e.reason == "TooManyRequests"
                assert e.message.startswith("rate limit exceeded: the client with bearer "
                                            "token sha256:")
                assert f"more than {RATE} requests per second (burst {BURST})" in e.message
                results.append("refused")
        assert results[:BURST] == ["ok"] * BURST
        assert "refused" in results[BURST:]
        other.get("namespaces", "default")  # its own bucket is full
        with grpc.insecure_channel(servers.tight) as ch:  # health is never limited
            health = health_pb2_grpc.HealthStub(ch)
            for _ in range(3 * BURST):
                health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        time.sleep(1.5 / RATE)
        api.get("namespaces", "default")  # a token has come back
