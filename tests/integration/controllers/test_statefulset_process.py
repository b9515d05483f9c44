"""The StatefulSet controller in-process against a real store + apiserver: ordered creation
that waits for Running and Ready (written by hand: no node agent runs here), claims per
ordinal that outlive scale-down and pod deletion, a rolling update from the highest
ordinal down, reverse-order scale-down, and the pods' DNS names served by real `kemu dns`
from the Endpoints of a real controller manager."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from dnslib import DNSRecord  # type: ignore[import-untyped]

from kemu.api import manifest
from kemu.api.v1 import api_pb2, core_pb2
from kemu.client.aio import AsyncClient
from kemu.client.informer import Informer
from kemu.services.controllers import statefulset as stc
from tests.conftest import Cluster
from tests.integration.controllers.conftest import controller_manager
from tests.integration.controllers.test_daemonset_process import (
    controller_running,
    live_pods,
    new_namespace,
    set_ready,
    wait_until,
)
from tests.support import processes

pytestmark = pytest.mark.integration


def make(client: AsyncClient, infs: dict[str, Informer]) -> stc.StatefulSetController:
    return stc.StatefulSetController(client, infs, workers=2)


def statefulset(ns: str, replicas: int, image: str = "v1") -> api_pb2.Object:
    return manifest.from_dict({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"replicas": replicas, "serviceName": "web",
                 "selector": {"matchLabels": {"app": "web"}},
                 # The apiserver's validation does not yet know the volumes that
                 # volumeClaimTemplates add (Kubernetes does not check the template's
                 # mounts), so the template names "data" itself; the controller replaces
                 # a template volume of a claim's name, as Kubernetes' updateStorage does.
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"terminationGracePeriodSeconds": 0,
                                       "volumes": [{"name": "data", "emptyDir": {}}],
                                       "containers": [{"name": "c", "image": image,
                                                       "volumeMounts": [{"name": "data",
                                                                         "mountPath": "/d"}]}]}},
                 "volumeClaimTemplates": [{
                     "metadata": {"name": "data"},
                     "spec": {"accessModes": ["ReadWriteOnce"],
                              "resources": {"requests": {"storage": "1Gi"}}}}]}})


async def names(client: AsyncClient, ns: str) -> list[str]:
    return sorted(p.metadata.name for p in await live_pods(client, ns))


async def claims(client: AsyncClient, ns: str) -> list[str]:
    resp = await client.list("persistentvolumeclaims", ns)
    return sorted(o.persistent_volume_claim.metadata.name for o in resp.items)


async def sts_status(client: AsyncClient, ns: str) -> api_pb2.Object:
    return await client.get("statefulsets", "web", ns)


async def ready_all(client: AsyncClient, ns: str, ips: bool = False) -> None:
    """Make every pod that is not yet Running Running and Ready, as a node agent would."""
    for p in await live_pods(client, ns):
        if p.status.phase != "Running":
            await set_ready(client, ns, p.metadata.name)
            if ips:
                await _give_ip(client, ns, p.metadata.name)


async def _give_ip(client: AsyncClient, ns: str, name: str) -> None:
    obj = await client.get("pods", name, ns)
    obj.pod.status.pod_ip = f"10.244.7.{10 + int(name.rsplit('-', 1)[1])}"
    await client.update_status(obj)


async def test_statefulset_order_claims_rolling_and_scale_down(cluster: Cluster) -> None:
    async with controller_running(cluster.server, stc.INFORMERS, make) as client:
        ns = await new_namespace(client)
        await client.create(statefulset(ns, 3))

        async def only(want: list[str]) -> bool:
            return await names(client, ns) == want
        await wait_until("web-0", lambda: only(["web-0"]))

        async def synced_with(replicas: int) -> bool:
            st = (await sts_status(client, ns)).stateful_set.status
            return st.replicas == replicas and st.observed_generation == 1
        await wait_until("status replicas 1", lambda: synced_with(1))
        assert await names(client, ns) == ["web-0"], "web-1 waits for web-0 to be ready"
        web0 = (await client.get("pods", "web-0", ns)).pod
        assert (web0.spec.hostname, web0.spec.subdomain) == ("web-0", "web")
        assert web0.metadata.labels["statefulset.kubernetes.io/pod-name"] == "web-0"
        assert web0.spec.volumes[0].persistent_volume_claim.claim_name == "data-web-0"

        await set_ready(client, ns, "web-0")
        await wait_until("web-1", lambda: only(["web-0", "web-1"]))
        await set_ready(client, ns, "web-1")
        await wait_until("web-2", lambda: only(["web-0", "web-1", "web-2"]))
        await set_ready(client, ns, "web-2")
        assert await claims(client, ns) == ["data-web-0", "data-web-1", "data-web-2"]

        async def status_is(replicas: int, ready: int, updated: int) -> bool:
            st = (await sts_status(client, ns)).stateful_set.status
            return (st.replicas, st.ready_replicas, st.updated_replicas,
                    st.available_replicas) == (replicas, ready, updated, ready) and \
                st.current_revision == st.update_revision
        await wait_until("status 3 ready", lambda: status_is(3, 3, 3))

        # A rolling update replaces web-2, then web-1, then web-0, each once the one
        # above is ready again.
        # The pods before the update (taken first: the controller may replace web-2 at once).
        # The order of replacement is the order the new pods are created in, read from a
        # watch (polling could see two replacements at once under load).
        listed = await client.list("pods", ns)
        first_uids = {o.pod.metadata.name: o.pod.metadata.uid for o in listed.items}
        replaced: list[str] = []

        async def record_creations() -> None:
            async for event in client.watch("pods", ns, resource_version=listed.resource_version):
                pod = event.object.pod
                if event.type == api_pb2.WatchEvent.ADDED and \
                        first_uids.get(pod.metadata.name) not in (None, pod.metadata.uid):
                    replaced.append(pod.metadata.name)
        recorder = asyncio.create_task(record_creations())
        obj = await sts_status(client, ns)
        old_revision = obj.stateful_set.status.current_revision
        obj.stateful_set.spec.template.spec.containers[0].image = "v2"
        await client.update(obj)

        async def rolled() -> bool:
            current = await live_pods(client, ns)
            await ready_all(client, ns)
            return len(current) == 3 and all(
                p.spec.containers[0].image == "v2" and p.status.phase == "Running"
                for p in current)
        try:
            await wait_until("the rolling update", rolled, 30)
            await wait_until("three replacements seen", lambda: _true(len(replaced) == 3))
        finally:
            recorder.cancel()
        assert replaced == ["web-2", "web-1", "web-0"]
        await wait_until("status 3 updated", lambda: status_is(3, 3, 3))
        st = (await sts_status(client, ns)).stateful_set.status
        assert st.current_revision != old_revision

        # Scale down: web-2 first, then web-1; the claims stay.
        obj = await sts_status(client, ns)
        obj.stateful_set.spec.replicas = 1
        await client.update(obj)
        await wait_until("scale down to web-0", lambda: only(["web-0"]))
        assert await claims(client, ns) == ["data-web-0", "data-web-1", "data-web-2"]

        # A deleted pod comes back with the same name and claim.
        uid = (await client.get("pods", "web-0", ns)).pod.metadata.uid

        async def back() -> core_pb2.Pod | None:
            pods = await live_pods(client, ns)
            return pods[0] if len(pods) == 1 and pods[0].metadata.uid != uid else None
        await client.delete("pods", "web-0", ns)
        again: core_pb2.Pod = await wait_until("web-0 made again", back)
        assert again.spec.volumes[0].persistent_volume_claim.claim_name == "data-web-0"

        async def has_events() -> bool:
            resp = await client.list("events", ns)
            return {"SuccessfulCreate", "SuccessfulDelete"} <= {
                o.event.reason for o in resp.items
                if o.event.involved_object.kind == "StatefulSet"}
        await wait_until("events", has_events)


# ---- DNS names through the headless Service --------------------------------------------


@pytest.fixture(scope="module")
def endpoints_and_dns(cluster: Cluster) -> Iterator[str]:
    """A controller manager running the Endpoints controller and `kemu dns`; yields the
    DNS address."""
    cm = controller_manager(cluster.tmp, cluster.server, "--controllers", "endpoints")
    address = f"127.0.0.1:{processes.free_port()}"
    dns = processes.Proc("dns", [processes.PYTHON, "-m", "kemu.dns", "--apiserver",
                                 cluster.server, "--listen", address],
                         cluster.tmp / "dns.log", address)
    with processes.running(cm), processes.running(dns, check="tcp"):
        yield address
        assert cm.alive(), cm.tail()
        assert dns.alive(), dns.tail()


async def resolve(address: str, name: str) -> list[str]:
    """A records of `name` from the server (in a thread: the controller shares the loop)."""
    host, port = address.rsplit(":", 1)
    try:
        raw = await asyncio.to_thread(DNSRecord.question(name, "A").send, host, int(port),
                                      timeout=2)
    except OSError:
        return []
    return sorted(str(rr.rdata) for rr in DNSRecord.parse(raw).rr)


async def test_pods_answer_by_name_behind_headless_service(cluster: Cluster,
                                                           endpoints_and_dns: str) -> None:
    async with controller_running(cluster.server, stc.INFORMERS, make) as client:
        ns = await new_namespace(client)
        await client.create(manifest.from_dict({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
            "spec": {"clusterIP": "None", "selector": {"app": "web"},
                     "ports": [{"port": 80}]}}))
        await client.create(statefulset(ns, 2))

        async def both_ready() -> bool:
            await ready_all(client, ns, ips=True)
            return await names(client, ns) == ["web-0", "web-1"] and all(
                p.status.phase == "Running" for p in await live_pods(client, ns))
        await wait_until("web-0 and web-1 ready", both_ready)

        async def answers() -> bool:
            return await resolve(endpoints_and_dns, f"web-1.web.{ns}.svc.cluster.local") == \
                ["10.244.7.11"] and \
                await resolve(endpoints_and_dns, f"web-0.web.{ns}.svc.cluster.local") == \
                ["10.244.7.10"]
        await wait_until("DNS names of web-0 and web-1", answers)


async def _true(value: bool) -> bool:
    return value
