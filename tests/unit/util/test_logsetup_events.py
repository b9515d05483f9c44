"""The event sites' own pieces: what the apiserver's request log says of a request, the
DNS server's query event and the agent's Service rules sync event."""

from __future__ import annotations

import contextlib
import io
import json
import time
from typing import Any

import pytest
from dnslib import RCODE, DNSRecord  # type: ignore[import-untyped]

from kemu.api import manifest
from kemu.api.v1 import api_pb2
from kemu.dns.server import log_query
from kemu.services.apiserver.requestlog import target
from kemu.util import logsetup
from tests.unit.util.test_logsetup import _restore_root  # noqa: F401 - autouse fixture


def _pod() -> api_pb2.Object:
    return manifest.from_dict({"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": "web", "namespace": "shop"},
                               "spec": {"containers": [{"name": "c", "image": "i"}]}})


@pytest.mark.parametrize(("method", "request_", "expected"), [
    pytest.param("Get", api_pb2.GetRequest(key=api_pb2.ObjectKey(
        resource="pods", namespace="shop", name="web")),
        {"resource": "pods", "namespace": "shop", "name": "web"}, id="get-by-key"),
    pytest.param("List", api_pb2.ListRequest(resource="services", namespace="kube-system"),
                 {"resource": "services", "namespace": "kube-system"}, id="list"),
    pytest.param("Watch", api_pb2.WatchRequest(resource="nodes"), {"resource": "nodes"},
                 id="watch-cluster-wide"),
    pytest.param("Create", api_pb2.CreateRequest(object=_pod()),
                 {"resource": "pods", "namespace": "shop", "name": "web"}, id="create-object"),
    pytest.param("UpdateStatus", api_pb2.UpdateRequest(object=_pod()),
                 {"resource": "pods", "subresource": "status", "namespace": "shop",
                  "name": "web"}, id="update-status"),
    pytest.param("Bind", api_pb2.BindRequest(namespace="shop", name="web", node_name="n1"),
                 {"resource": "pods", "subresource": "binding", "namespace": "shop",
                  "name": "web"}, id="bind"),
    pytest.param("Create", api_pb2.CreateRequest(), {}, id="empty-object"),
    pytest.param("Exec", object(), {"resource": "pods", "subresource": "exec"},
                 id="stream-request"),
])
def test_request_target(method: str, request_: Any, expected: dict[str, str]) -> None:
    assert target(method, request_) == expected


def _capture(v: int) -> io.StringIO:
    out = io.StringIO()
    logsetup.configure("dns", fmt="json", v=v, stream=out)
    return out


def test_dns_query_event_at_v4() -> None:
    out = _capture(4)
    query = DNSRecord.question("web.shop.svc.cluster.local", "A")
    reply = query.reply()
    reply.header.rcode = RCODE.NXDOMAIN
    log_query(bytes(query.pack()), bytes(reply.pack()), "udp", time.perf_counter())
    log_query(b"\x00", None, "tcp", time.perf_counter())
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["msg"] == "query" and first["component"] == "dns" and first["v"] == 4
    assert (first["name"], first["type"], first["proto"], first["rcode"]) == (
        "web.shop.svc.cluster.local.", "A", "udp", "NXDOMAIN")
    assert first["duration_ms"] >= 0
    assert (second["name"], second["rcode"]) == ("", "none")


def test_dns_query_event_hidden_below_v4() -> None:
    out = _capture(3)
    query = DNSRecord.question("web.shop.svc.cluster.local", "A")
    log_query(bytes(query.pack()), None, "udp", time.perf_counter())
    assert out.getvalue() == ""


async def test_service_rules_sync_event_at_v2() -> None:
    import asyncio

    from kemu.client.informer import Informer
    from kemu.nodeagent.serviceproxy import ServiceProxy

    out = io.StringIO()
    logsetup.configure("agent", fmt="json", v=2, stream=out)
    infs = {r: Informer(None, r) for r in ("services", "endpoints", "nodes")}  # type: ignore[arg-type]
    for inf in infs.values():
        inf.synced.set()
    proxy = ServiceProxy(node_name="a", services=infs["services"], endpoints=infs["endpoints"],
                         nodes=infs["nodes"], proxier=None, network=None, announcer=None)
    task = asyncio.create_task(proxy.run())
    try:
        for _ in range(500):
            if out.getvalue():
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    (line,) = (json.loads(x) for x in out.getvalue().splitlines())
    assert (line["msg"], line["component"], line["v"]) == ("synced service rules", "agent", 2)
    assert (line["services"], line["endpoints"], line["peers"]) == (0, 0, 0)
    assert line["duration_ms"] >= 0
