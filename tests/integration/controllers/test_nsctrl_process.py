"""The namespace controller in-process against a real store + apiserver: a deleted
namespace loses its content of every kind, stays Terminating (with conditions saying why)
while a pod terminates, and goes once it is gone; one deleted while the controller was down
is finished after it starts."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kemu.api import manifest
from kemu.api.v1 import api_pb2
from kemu.client.aio import AsyncClient
from kemu.client.errors import NotFound
from kemu.services.controllers import namespace
from tests.conftest import Cluster
from tests.integration.controllers.test_gc_process import Runnable, running, until

pytestmark = pytest.mark.integration


def running_nsctrl(server: str) -> contextlib.AbstractAsyncContextManager[Runnable]:
    return running(server, namespace.INFORMERS,
                   lambda c, i: namespace.NamespaceController(c, i, recheck=0.1,
                                                              max_recheck=0.5))


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(cluster.server, timeout=10) as c:
        yield c


async def make(api: AsyncClient, doc: dict[str, Any]) -> api_pb2.Object:
    return await api.create(manifest.from_dict(doc))


async def populate(api: AsyncClient, ns: str, *, pod_node: str = "") -> None:
    await make(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    meta = {"namespace": ns}
    await make(api, {"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "cfg", **meta}, "data": {"a": "b"}})
    await make(api, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", **meta}})
    await make(api, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", **meta},
                     "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}})
    await make(api, {"apiVersion": "apps/v1", "kind": "Deployment",
                     "metadata": {"name": "d", **meta},
                     "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "x"}},
                              "template": {"metadata": {"labels": {"app": "x"}},
                                           "spec": {"containers": [{"name": "c",
                                                                    "image": "x"}]}}}})
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "x"}]}
    if pod_node:
        spec["nodeName"] = pod_node
    await make(api, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", **meta},
                     "spec": spec})


async def fetch_ns(api: AsyncClient, name: str) -> api_pb2.Object | None:
    try:
        return await api.get("namespaces", name)
    except NotFound:
        return None


async def content(api: AsyncClient, ns: str) -> list[str]:
    out = []
    for kind in namespace.CONTENT:
        out += [f"{kind.plural}/{o.WhichOneof('kind')}"
                for o in (await api.list(kind.plural, ns)).items]
    return out


async def test_terminating_namespace_waits_for_its_pod(cluster: Cluster,
                                                       api: AsyncClient) -> None:
    ns = f"nsc-{uuid.uuid4().hex[:8]}"
    await populate(api, ns, pod_node="no-agent")
    async with running_nsctrl(cluster.server):
        await api.delete("namespaces", ns)

        async def only_the_pod_left() -> bool:
            return await content(api, ns) == ["pods/pod"]
        await until("everything but the terminating pod deleted", only_the_pod_left)

        async def says_why() -> bool:
            live = await fetch_ns(api, ns)
            assert live is not None, "the namespace went while its pod was terminating"
            conds = {c.type: c for c in live.namespace.status.conditions}
            c = conds.get("NamespaceContentRemaining")
            return c is not None and c.status == "True" and "pods has 1" in c.message
        await until("NamespaceContentRemaining names the pod", says_why)
        live = await fetch_ns(api, ns)
        assert live is not None and live.namespace.status.phase == "Terminating"

        await api.delete("pods", "p", ns, grace_period_seconds=0)  # the agent confirms

        async def ns_gone() -> bool:
            return await fetch_ns(api, ns) is None
        await until("the namespace deleted", ns_gone)


async def test_deleted_while_down_is_finished(cluster: Cluster, api: AsyncClient) -> None:
    ns = f"nsc-{uuid.uuid4().hex[:8]}"
    await populate(api, ns)
    await api.delete("namespaces", ns)
    live = await fetch_ns(api, ns)
    assert live is not None and live.namespace.status.phase == "Terminating"
    async with running_nsctrl(cluster.server):
        async def ns_gone() -> bool:
            return await fetch_ns(api, ns) is None
        await until("the namespace deleted", ns_gone)
    assert await content(api, ns) == []
