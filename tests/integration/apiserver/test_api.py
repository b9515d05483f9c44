"""The apiserver's contract, checked over gRPC against both store backends."""

from __future__ import annotations

import ipaddress
import itertools
import threading
import uuid

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from kemu.api import manifest, objects
from kemu.api.v1 import api_pb2
from kemu.client import AlreadyExists, Client, Conflict, Gone, Invalid, NotFound
from kemu.client.errors import Forbidden

pytestmark = pytest.mark.integration
_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}-{uuid.uuid4().hex[:4]}"


def namespace(api: Client) -> str:
    name = unique("ns")
    api.create(manifest.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": name}}))
    return name


def deployment(name: str, ns: str, *, image: str = "nginx:1.25", labels: dict | None = None
               ) -> api_pb2.Object:
    return manifest.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {"app": name}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "web", "image": image,
                                     "ports": [{"containerPort": 80, "name": "http"}]}]}}}})


def service(name: str, ns: str, **spec: object) -> api_pb2.Object:
    body = {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": "http"}], **spec}
    return manifest.from_dict({"apiVersion": "v1", "kind": "Service",
                               "metadata": {"name": name, "namespace": ns}, "spec": body})


def configmap(name: str, ns: str, labels: dict | None = None) -> api_pb2.Object:
    return manifest.from_dict({"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": name, "namespace": ns,
                                            "labels": labels or {}},
                               "data": {"k": "v"}})


def test_builtin_namespaces_and_kubernetes_service(api: Client) -> None:
    names = {objects.meta(o).name for o in api.list("namespaces").items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    svc = api.get("svc", "kubernetes", "default").service
    assert svc.spec.cluster_ip == "10.96.0.1"


def test_create_defaults_and_allocates(api: Client) -> None:
    ns = namespace(api)
    dep = api.create(deployment("web", ns)).deployment
    assert dep.metadata.uid and dep.metadata.generation == 1
    assert dep.metadata.creation_timestamp.seconds > 0
    assert dep.spec.strategy.type == "RollingUpdate"
    assert dep.spec.strategy.rolling_update.max_surge.string_value == "25%"
    assert dep.spec.revision_history_limit == 10
    assert dep.spec.template.spec.restart_policy == "Always"
    assert dep.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"
    svc = api.create(service("web", ns, type="NodePort")).service
    assert ipaddress.ip_address(svc.spec.cluster_ip) in ipaddress.ip_network("10.96.0.0/12")
    assert 30000 <= svc.spec.ports[0].node_port <= 32767
    assert svc.spec.ports[0].protocol == "TCP"
    got = api.get("services", "web", ns).service
    assert got.spec.cluster_ip == svc.spec.cluster_ip
    assert got.metadata.resource_version == svc.metadata.resource_version


def test_errors_have_kubernetes_meaning(api: Client) -> None:
    ns = namespace(api)
    created = api.create(configmap("cm", ns))
    with pytest.raises(AlreadyExists, match='configmaps "cm" already exists'):
        api.create(configmap("cm", ns))
    with pytest.raises(NotFound, match='configmaps "nope" not found'):
        api.get("cm", "nope", ns)
    with pytest.raises(NotFound, match='namespaces "no-such-ns" not found'):
        api.create(configmap("cm", "no-such-ns"))
    with pytest.raises(Invalid, match=r'metadata\.name: Invalid value: "Bad_Name"'):
        api.create(configmap("Bad_Name", ns))
    stale = api_pb2.Object()
    stale.CopyFrom(created)
    fresh = api.get("cm", "cm", ns)
    fresh.config_map.data["k"] = "v2"
    api.update(fresh)
    stale.config_map.data["k"] = "v3"
    with pytest.raises(Conflict, match="the object has been modified"):
        api.update(stale)
    with pytest.raises(Invalid, match='the server doesn\'t have a resource type "widgets"'):
        api.get("widgets", "x", ns)


def test_generation_moves_with_spec_only(api: Client) -> None:
    ns = namespace(api)
    dep = api.create(deployment("gen", ns))
    dep.deployment.metadata.labels["extra"] = "yes"
    dep = api.update(dep)
    assert dep.deployment.metadata.generation == 1
    dep.deployment.status.observed_generation = 1
    dep.deployment.status.replicas = 2
    dep = api.update_status(dep)
    assert dep.deployment.metadata.generation == 1
    assert dep.deployment.status.replicas == 2
    dep.deployment.spec.template.spec.containers[0].image = "nginx:1.26"
    dep = api.update(dep)
    assert dep.deployment.metadata.generation == 2
    assert dep.deployment.status.replicas == 2  # Update keeps status
    unchanged = api.update(dep)
    assert unchanged.deployment.metadata.resource_version == \
        dep.deployment.metadata.resource_version


def test_label_and_field_selectors(api: Client) -> None:
    ns = namespace(api)
    for name, labels in (("a", {"app": "web", "tier": "fe"}), ("b", {"app": "web"}),
                         ("c", {"app": "db"})):
        api.create(configmap(name, ns, labels))

    def names(**kw: str) -> list[str]:
        return [objects.meta(o).name for o in api.list("cm", ns, **kw).items]
    assert names(label_selector="app=web") == ["a", "b"]
    assert names(label_selector="app in (db),!tier") == ["c"]
    assert names(label_selector="tier") == ["a"]
    assert names(field_selector="metadata.name!=a", label_selector="app=web") == ["b"]
    assert names(field_selector=f"metadata.namespace={ns},metadata.name=c") == ["c"]
    with pytest.raises(Invalid, match=r"field label not supported: spec\.bogus"):
        api.list("cm", ns, field_selector="spec.bogus=1")
    with pytest.raises(Invalid, match="unable to parse requirement"):
        api.list("cm", ns, label_selector="app in (")


def test_pod_field_selectors(api: Client) -> None:
    ns = namespace(api)
    for name in ("p1", "p2"):
        api.create(manifest.from_dict({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}))
    api.bind(ns, "p1", "node-1")
    bound = api.list("pods", ns, field_selector="spec.nodeName=node-1").items
    assert [objects.meta(o).name for o in bound] == ["p1"]
    pending = api.list("pods", ns, field_selector="status.phase=Pending").items
    assert len(pending) == 2


def test_cluster_ips_and_node_ports_are_never_handed_out_twice(api: Client) -> None:
    ns = namespace(api)
    ips, ports = set(), set()
    for i in range(20):
        svc = api.create(service(f"s{i}", ns, type="NodePort")).service
        ips.add(svc.spec.cluster_ip)
        ports.add(svc.spec.ports[0].node_port)
    assert len(ips) == 20 and len(ports) == 20
    taken = api.get("svc", "s0", ns).service
    with pytest.raises(Invalid, match="provided IP is already allocated"):
        api.create(service("dup-ip", ns, clusterIP=taken.spec.cluster_ip))
    with pytest.raises(Invalid, match="provided port is already allocated"):
        api.create(service("dup-port", ns, type="NodePort",
                           ports=[{"port": 80, "nodePort": taken.spec.ports[0].node_port}]))
    with pytest.raises(Invalid, match="not in the valid range"):
        api.create(service("far", ns, clusterIP="192.168.0.1"))
    api.delete("svc", "s0", ns)
    again = api.create(service("reuse", ns, type="NodePort", clusterIP=taken.spec.cluster_ip,
                               ports=[{"port": 80,
                                       "nodePort": taken.spec.ports[0].node_port}])).service
    assert again.spec.cluster_ip == taken.spec.cluster_ip
    # Switching to ClusterIP frees the node port, which a new service may then take.
    again.spec.type = "ClusterIP"
    again.spec.ports[0].node_port = 0
    api.update(objects.wrap(again))
    api.create(service("takes-port", ns, type="NodePort",
                       ports=[{"port": 80, "nodePort": taken.spec.ports[0].node_port}]))


def _collect(api: Client, ns: str, rv: str, count: int) -> list[api_pb2.WatchEvent]:
    events = []
    for ev in api.watch("configmaps", ns, resource_version=rv, timeout=20):
        events.append(ev)
        if len(events) == count:
            break
    return events


def test_watch_resumes_without_missing_or_repeating(api: Client) -> None:
    ns = namespace(api)
    start_rv = api.list("configmaps", ns).resource_version
    writes: list[tuple[int, str, str]] = []

    def writer() -> None:
        for i in range(30):
            obj = api.create(configmap(f"w{i}", ns))
            writes.append((api_pb2.WatchEvent.ADDED, f"w{i}", objects.meta(obj).resource_version))
            if i % 3 == 0:
                gone = api.delete("cm", f"w{i}", ns)
                writes.append((api_pb2.WatchEvent.DELETED, f"w{i}",
                               objects.meta(gone.object).resource_version))

    thread = threading.Thread(target=writer)
    thread.start()
    first = _collect(api, ns, start_rv, 12)  # stop part-way through the burst
    resume_rv = objects.meta(first[-1].object).resource_version
    thread.join(timeout=30)
    rest = _collect(api, ns, resume_rv, len(writes) - len(first))
    seen = [(e.type, objects.meta(e.object).name, objects.meta(e.object).resource_version)
            for e in first + rest]
    assert seen == writes


def test_watch_from_now_lists_existing_objects_first(api: Client) -> None:
    ns = namespace(api)
    api.create(configmap("old", ns))
    events = iter(api.watch("cm", ns, timeout=10))
    first = next(events)
    assert first.type == api_pb2.WatchEvent.ADDED and objects.meta(first.object).name == "old"
    api.create(configmap("new", ns))
    second = next(events)
    assert objects.meta(second.object).name == "new"


def test_watch_with_label_selector_reports_objects_leaving_and_entering(api: Client) -> None:
    ns = namespace(api)
    rv = api.list("cm", ns).resource_version
    obj = api.create(configmap("x", ns, {"app": "a"}))
    obj.config_map.metadata.labels["app"] = "b"
    obj = api.update(obj)
    obj.config_map.metadata.labels["app"] = "a"
    api.update(obj)
    seen = []
    for ev in api.watch("cm", ns, label_selector="app=a", resource_version=rv, timeout=10):
        seen.append(ev.type)
        if len(seen) == 3:
            break
    W = api_pb2.WatchEvent
    assert seen == [W.ADDED, W.DELETED, W.ADDED]


def test_watch_from_a_version_before_the_cache_is_gone(api: Client) -> None:
    with pytest.raises(Gone, match="too old resource version"):
        next(iter(api.watch("configmaps", resource_version="1", timeout=10)))


def test_watch_bookmarks_carry_the_current_version(api: Client) -> None:
    ns = namespace(api)
    for ev in api.watch("cm", ns, resource_version=api.list("cm", ns).resource_version,
                        allow_bookmarks=True, timeout=15):
        assert ev.type == api_pb2.WatchEvent.BOOKMARK
        assert int(objects.meta(ev.object).resource_version) > 0
        break
    else:
        pytest.fail("no bookmark within 15 s")


def test_finalizers_and_propagation(api: Client) -> None:
    ns = namespace(api)
    owner = api.create(configmap("owner", ns))
    child = configmap("child", ns)
    child.config_map.metadata.owner_references.add(
        api_version="v1", kind="ConfigMap", name="owner", uid=objects.meta(owner).uid,
        controller=True)
    child = api.create(child)
    assert objects.meta(child).owner_references[0].uid == objects.meta(owner).uid
    resp = api.delete("cm", "owner", ns, propagation_policy=api_pb2.FOREGROUND)
    assert not resp.deleted
    held = api.get("cm", "owner", ns).config_map.metadata
    assert held.HasField("deletion_timestamp") and list(held.finalizers) == ["foregroundDeletion"]
    obj = api.get("cm", "owner", ns)
    del obj.config_map.metadata.finalizers[:]
    api.update(obj)  # the last finalizer gone: the object goes
    with pytest.raises(NotFound):
        api.get("cm", "owner", ns)
    api.delete("cm", "child", ns, propagation_policy=api_pb2.ORPHAN)
    held = api.get("cm", "child", ns).config_map.metadata
    assert list(held.finalizers) == ["orphan"]


def test_bound_pods_terminate_gracefully(api: Client) -> None:
    ns = namespace(api)
    api.create(manifest.from_dict({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns},
        "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}))
    bound = api.bind(ns, "p", "node-a").pod
    assert bound.spec.node_name == "node-a"
    assert any(c.type == "PodScheduled" and c.status == "True" for c in bound.status.conditions)
    with pytest.raises(Conflict, match='already assigned to node "node-a"'):
        api.bind(ns, "p", "node-b")
    resp = api.delete("pods", "p", ns)
    assert not resp.deleted
    assert resp.object.pod.metadata.deletion_grace_period_seconds == 30
    api.delete("pods", "p", ns, grace_period_seconds=0)
    with pytest.raises(NotFound):
        api.get("pods", "p", ns)


def test_scale_and_rollback(api: Client) -> None:
    ns = namespace(api)
    api.create(deployment("sc", ns))
    scaled = api.scale("deploy", "sc", 5, ns).deployment
    assert scaled.spec.replicas == 5 and scaled.metadata.generation == 2
    with pytest.raises(Invalid):
        api.scale("deploy", "sc", -1, ns)
    with pytest.raises(Invalid, match="cannot be scaled"):
        api.scale("cm", "x", 1, ns)
    with pytest.raises(Forbidden, match="no rollout history"):
        api.rollback("sc", ns)


def test_protected_namespaces_cannot_be_deleted(api: Client) -> None:
    with pytest.raises(Forbidden, match="may not be deleted"):
        api.delete("ns", "default")
    ns = namespace(api)
    resp = api.delete("ns", ns)
    assert resp.object.namespace.status.phase == "Terminating"
    with pytest.raises(Forbidden, match="being terminated"):
        api.create(configmap("late", ns))


def test_apply_creates_configures_and_leaves_unchanged(api: Client) -> None:
    ns = namespace(api)
    R = api_pb2.ApplyResponse
    assert api.apply(deployment("ap", ns)).result == R.CREATED
    assert api.apply(deployment("ap", ns)).result == R.UNCHANGED
    api.scale("deploy", "ap", 4, ns)
    dep = deployment("ap", ns)
    dep.deployment.spec.ClearField("replicas")
    applied = api.apply(dep)  # replicas was in the last applied config: removed -> default 1
    assert applied.result == R.CONFIGURED and applied.object.deployment.spec.replicas == 1
    assert api.apply(deployment("ap", ns, image="nginx:2")).result == R.CONFIGURED
    svc = api.apply(service("ap", ns, type="NodePort")).object.service
    again = api.apply(service("ap", ns, type="NodePort"))
    assert again.result == R.UNCHANGED
    assert again.object.service.spec.ports[0].node_port == svc.spec.ports[0].node_port
    dry = api.apply(deployment("dry", ns), dry_run=True)
    assert dry.result == R.CREATED
    with pytest.raises(NotFound):
        api.get("deploy", "dry", ns)


def test_health_and_reflection(api: Client) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(api.server) as ch:
        status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        req = reflection_pb2.ServerReflectionRequest(list_services="")
        resp = next(iter(stub.ServerReflectionInfo(iter([req]), timeout=5)))
        names = {s.name for s in resp.list_services_response.service}
        assert {"kemu.v1.Resources", "kemu.v1.Discovery", "grpc.health.v1.Health"} <= names


def test_discovery(api: Client) -> None:
    resources = {r.name: r for r in api.api_resources()}
    assert resources["deployments"].short_names == ["deploy"]
    assert resources["deployments"].api_version == "apps/v1"
    assert not resources["nodes"].namespaced
    assert api.version().api_version == "kemu.v1"
