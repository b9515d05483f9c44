"""The DaemonSet controller in-process against a real store + apiserver, with a real
scheduler process binding the pods it pins with `matchFields metadata.name`: pods on the
selected nodes (a cordoned one included), following node label changes, status from pod
status written by hand (no node agent runs here), a rolling update and events.

The controller is not wired into the controller manager yet, so `controller_running`
runs it as an asyncio task over informers of its own; the StatefulSet tests use it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, Protocol

import pytest

from kemu.api import manifest
from kemu.api.v1 import api_pb2, core_pb2
from kemu.client.aio import AsyncClient
from kemu.client.errors import NotFound
from kemu.client.informer import Informer
from kemu.services.controllers import daemonset as dsc
from kemu.services.controllers import ds_nodes
from tests.conftest import Cluster
from tests.support import processes

pytestmark = pytest.mark.integration
_ids = itertools.count()


class _Runnable(Protocol):
    async def run(self) -> None: ...


@contextlib.asynccontextmanager
async def controller_running(server: str, informers: tuple[str, ...],
                             make: Callable[[AsyncClient, dict[str, Informer]], _Runnable]
                             ) -> AsyncIterator[AsyncClient]:
    """A client, started informers and the controller's `run()` as a task, as the
    controller manager would run it; raises if the controller died meanwhile."""
    client = AsyncClient(server, timeout=15)
    infs = {r: Informer(client, r) for r in informers}
    for inf in infs.values():
        inf.start()
    task: asyncio.Task[None] | None = None
    try:
        for inf in infs.values():
            await inf.wait_synced(15)
        task = asyncio.create_task(make(client, infs).run())
        yield client
        assert not task.done(), task.exception()
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for inf in infs.values():
            await inf.stop()
        await client.close()


async def wait_until(what: str, fn: Callable[[], Awaitable[Any]], timeout: float = 20.0
                     ) -> Any:
    """Await fn until it returns something truthy (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = await fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


async def new_namespace(client: AsyncClient) -> str:
    ns = f"ctrl-{next(_ids)}-{uuid.uuid4().hex[:5]}"
    await client.create(manifest.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                            "metadata": {"name": ns}}))
    return ns


async def live_pods(client: AsyncClient, ns: str) -> list[core_pb2.Pod]:
    resp = await client.list("pods", ns)
    return [o.pod for o in resp.items if not o.pod.metadata.HasField("deletion_timestamp")]


async def set_ready(client: AsyncClient, ns: str, name: str, ready: bool = True) -> None:
    """What a node agent would write: Running, and the Ready condition."""
    obj = await client.get("pods", name, ns)
    obj.pod.status.phase = "Running"
    del obj.pod.status.conditions[:]
    cond = obj.pod.status.conditions.add(type="Ready", status="True" if ready else "False")
    cond.last_transition_time.GetCurrentTime()
    await client.update_status(obj)


# ---- DaemonSet ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scheduler(cluster: Cluster) -> Iterator[processes.Proc]:
    health = f"127.0.0.1:{processes.free_port()}"
    proc = processes.Proc("scheduler", [processes.PYTHON, "-m", "kemu.services.scheduler",
                                        "--apiserver", cluster.server, "--health-listen",
                                        health], cluster.tmp / "scheduler.log", health)
    with processes.running(proc):
        yield proc
        assert proc.alive(), proc.tail()


def node_manifest(name: str, labels: Mapping[str, str], *, unschedulable: bool = False
                  ) -> api_pb2.Object:
    alloc = {"cpu": "4", "memory": "8Gi", "pods": "110"}
    return manifest.from_dict({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}},
        "spec": {"unschedulable": unschedulable},
        "status": {"capacity": alloc, "allocatable": alloc,
                   "conditions": [{"type": "Ready", "status": "True",
                                   "reason": "KubeletReady"}]}})


async def relabel(client: AsyncClient, name: str, labels: Mapping[str, str | None]) -> None:
    obj = await client.get("nodes", name)
    for k, v in labels.items():
        if v is None:
            obj.node.metadata.labels.pop(k, None)
        else:
            obj.node.metadata.labels[k] = v
    await client.update(obj)


def daemonset(ns: str, image: str) -> api_pb2.Object:
    return manifest.from_dict({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": ns},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
                 "updateStrategy": {"type": "RollingUpdate",
                                    "rollingUpdate": {"maxUnavailable": 1}},
                 "template": {"metadata": {"labels": {"app": "agent"}},
                              "spec": {"nodeSelector": {"role": "edge"},
                                       "terminationGracePeriodSeconds": 0,
                                       "containers": [{"name": "c", "image": image}]}}}})


async def bound_by_node(client: AsyncClient, ns: str) -> dict[str, core_pb2.Pod]:
    pods = await live_pods(client, ns)
    return {p.spec.node_name: p for p in pods if p.spec.node_name}


async def ds_status(client: AsyncClient, ns: str) -> tuple[int, ...]:
    st = (await client.get("daemonsets", "agent", ns)).daemon_set.status
    return (st.desired_number_scheduled, st.current_number_scheduled, st.number_ready,
            st.updated_number_scheduled, st.number_available, st.number_unavailable,
            st.number_misscheduled)


async def test_daemonset_follows_nodes_and_rolls(cluster: Cluster,
                                                 scheduler: processes.Proc) -> None:
    def make(client: AsyncClient, infs: dict[str, Informer]) -> _Runnable:
        return dsc.DaemonSetController(client, infs, workers=2)

    async with controller_running(cluster.server, dsc.INFORMERS, make) as client:
        ns = await new_namespace(client)
        await client.create(node_manifest("ds-a", {"role": "edge"}))
        await client.create(node_manifest("ds-b", {"role": "edge"}, unschedulable=True))
        await client.create(node_manifest("ds-c", {}))
        await client.create(daemonset(ns, "v1"))

        async def on(nodes: set[str]) -> dict[str, core_pb2.Pod] | None:
            got = await bound_by_node(client, ns)
            all_pods = await live_pods(client, ns)
            return got if set(got) == nodes and len(all_pods) == len(nodes) else None
        pods = await wait_until("pods bound on ds-a and ds-b", lambda: on({"ds-a", "ds-b"}))
        for name, p in pods.items():
            assert ds_nodes.target_node(p) == name
            assert p.metadata.labels["controller-revision-hash"]
            assert p.metadata.owner_references[0].kind == "DaemonSet"

        await relabel(client, "ds-c", {"role": "edge"})
        await relabel(client, "ds-a", {"role": None})
        pods = await wait_until("pods on ds-b and ds-c only", lambda: on({"ds-b", "ds-c"}))

        for p in pods.values():
            await set_ready(client, ns, p.metadata.name)

        async def status_is(want: tuple[int, ...]) -> bool:
            return await ds_status(client, ns) == want
        await wait_until("status 2 desired, 2 ready", lambda: status_is((2, 2, 2, 2, 2, 0, 0)))

        obj = await client.get("daemonsets", "agent", ns)
        obj.daemon_set.spec.template.spec.containers[0].image = "v2"
        await client.update(obj)
        new_rev = dsc.revision_of((await client.get("daemonsets", "agent", ns)).daemon_set)

        async def rolled() -> bool:
            current = await live_pods(client, ns)
            unavailable = 2 - sum(1 for p in current if p.status.phase == "Running")
            assert unavailable <= 1, "maxUnavailable 1"
            for p in current:
                if p.spec.node_name and p.status.phase != "Running":
                    await set_ready(client, ns, p.metadata.name)
            return len(current) == 2 and all(
                p.metadata.labels["controller-revision-hash"] == new_rev
                and p.status.phase == "Running" for p in current)
        await wait_until("the rolling update to finish", rolled, 30)
        await wait_until("status 2 updated", lambda: status_is((2, 2, 2, 2, 2, 0, 0)))
        stored = (await client.get("daemonsets", "agent", ns)).daemon_set
        assert stored.metadata.annotations[dsc.REVISION_ANNOTATION] == new_rev
        assert stored.status.observed_generation == stored.metadata.generation

        async def events() -> set[str]:
            resp = await client.list("events", ns)
            return {o.event.reason for o in resp.items
                    if o.event.involved_object.kind == "DaemonSet"}
        await wait_until("SuccessfulCreate and SuccessfulDelete events",
                         lambda: _has(events, {"SuccessfulCreate", "SuccessfulDelete"}))
        for name in ("ds-a", "ds-b", "ds-c"):
            with contextlib.suppress(NotFound):
                await client.delete("nodes", name)


async def _has(fn: Callable[[], Awaitable[set[str]]], wanted: set[str]) -> bool:
    return wanted <= await fn()
