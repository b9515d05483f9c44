"""The StatefulSet sync against the in-memory API: ordered creation waiting for Running and
Ready, reverse-order scale-down, Parallel, identity (hostname, subdomain, labels), claims
per ordinal kept and re-bound, RollingUpdate from the top with a partition (pods below it
made again at the current revision), OnDelete, failed pods, status and events."""

from __future__ import annotations

from typing import Any

from kemu.api import manifest
from kemu.api.v1 import api_pb2, core_pb2
from kemu.services.controllers import statefulset as stc
from kemu.services.controllers import sts_pods as sp
from tests.unit.controllers.test_daemonset_controller import FakeRecorder
from tests.unit.controllers.test_replicaset_fakeapi import FakeAPI, informers

NS = "ns"
KEY = f"{NS}/web"
NOW = 1_700_000_000.0


def statefulset(replicas: int = 3, *, policy: str = "OrderedReady", image: str = "v1",
                strategy: dict[str, Any] | None = None, claims: bool = True,
                min_ready: int = 0) -> api_pb2.Object:
    spec: dict[str, Any] = {
        "replicas": replicas, "serviceName": "web-svc", "podManagementPolicy": policy,
        "minReadySeconds": min_ready,
        "updateStrategy": strategy or {"type": "RollingUpdate",
                                       "rollingUpdate": {"partition": 0}},
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "c", "image": image,
                                              "volumeMounts": [{"name": "data",
                                                                "mountPath": "/d"}]}]}}}
    if claims:
        spec["volumeClaimTemplates"] = [{
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}}]
    return manifest.from_dict({"apiVersion": "apps/v1", "kind": "StatefulSet",
                               "metadata": {"name": "web", "namespace": NS}, "spec": spec})


def setup() -> tuple[stc.StatefulSetController, FakeAPI, FakeRecorder]:
    api = FakeAPI(now=NOW)
    infs = informers(api, *stc.INFORMERS)
    rec = FakeRecorder()
    return stc.StatefulSetController(api, infs, recorder=rec, clock=lambda: NOW), api, rec


def pods(api: FakeAPI) -> dict[str, core_pb2.Pod]:
    return {o.pod.metadata.name: o.pod for o in api.list("pods", NS)}


def ready(api: FakeAPI, name: str, *, phase: str = "Running") -> None:
    obj = api.objects[("pods", f"{NS}/{name}")]
    obj.pod.status.phase = phase
    del obj.pod.status.conditions[:]
    if phase == "Running":
        c = obj.pod.status.conditions.add(type="Ready", status="True")
        c.last_transition_time.FromSeconds(int(NOW - 100))
    api.put(obj)


def sts_status(api: FakeAPI) -> Any:
    return api.list("statefulsets", NS)[0].stateful_set.status


def update(api: FakeAPI, change: Any) -> api_pb2.Object:
    obj = api.objects[("statefulsets", KEY)]
    change(obj.stateful_set)
    return api.put(obj)


async def settle(ctrl: stc.StatefulSetController, api: FakeAPI, rounds: int = 20) -> None:
    """Sync, making every pod Running and Ready as a node agent would, until stable."""
    for _ in range(rounds):
        before = {n: p.metadata.uid for n, p in pods(api).items()}
        await ctrl.reconcile(KEY)
        for name, p in pods(api).items():
            if p.status.phase != "Running":
                ready(api, name)
        if {n: p.metadata.uid for n, p in pods(api).items()} == before:
            return
    raise AssertionError("did not settle")


async def test_ordered_creation_waits_for_running_and_ready() -> None:
    ctrl, api, rec = setup()
    owner = api.put(statefulset(3))
    await ctrl.reconcile(KEY)
    assert list(pods(api)) == ["web-0"]
    await ctrl.reconcile(KEY)
    assert list(pods(api)) == ["web-0"]  # Pending: web-1 waits
    ready(api, "web-0")
    await ctrl.reconcile(KEY)
    assert sorted(pods(api)) == ["web-0", "web-1"]
    p = pods(api)["web-1"]
    rev = sp.revision_name(owner.stateful_set, owner.stateful_set.spec.template)
    assert rev.startswith("web-")
    assert dict(p.metadata.labels) == {"app": "web", sp.POD_NAME_LABEL: "web-1",
                                       sp.POD_INDEX_LABEL: "1", sp.REVISION_LABEL: rev}
    assert (p.spec.hostname, p.spec.subdomain) == ("web-1", "web-svc")
    [ref] = p.metadata.owner_references
    assert (ref.kind, ref.name, ref.uid, ref.controller) == \
        ("StatefulSet", "web", owner.stateful_set.metadata.uid, True)
    [vol] = p.spec.volumes
    assert (vol.name, vol.persistent_volume_claim.claim_name) == ("data", "data-web-1")
    claims = {o.persistent_volume_claim.metadata.name: o.persistent_volume_claim
              for o in api.list("persistentvolumeclaims", NS)}
    assert sorted(claims) == ["data-web-0", "data-web-1"]
    assert dict(claims["data-web-0"].metadata.labels) == {"app": "web"}
    assert not claims["data-web-0"].metadata.owner_references
    assert ("StatefulSet", "web", "Normal", "SuccessfulCreate",
            "create Pod web-0 in StatefulSet web successful") in rec.events
    assert ("StatefulSet", "web", "Normal", "SuccessfulCreate",
            "create Claim data-web-0 Pod web-0 in StatefulSet web success") in rec.events
    await ctrl.reconcile(KEY)  # status is the sync's view, before its own creates
    st = sts_status(api)
    assert (st.replicas, st.ready_replicas, st.current_revision, st.update_revision) == \
        (2, 1, rev, rev)


async def test_ordered_scale_down_from_the_top_keeps_claims() -> None:
    ctrl, api, rec = setup()
    api.put(statefulset(3))
    await settle(ctrl, api)
    assert sorted(pods(api)) == ["web-0", "web-1", "web-2"]
    update(api, lambda s: setattr(s.spec, "replicas", 1))
    await ctrl.reconcile(KEY)
    assert sorted(pods(api)) == ["web-0", "web-1"]
    ready(api, "web-1")
    await ctrl.reconcile(KEY)
    assert sorted(pods(api)) == ["web-0"]
    assert len(api.list("persistentvolumeclaims", NS)) == 3
    assert rec.reasons().count("SuccessfulDelete") == 2
    # Scaling up again re-binds the same claims by name.
    update(api, lambda s: setattr(s.spec, "replicas", 2))
    await settle(ctrl, api)
    assert pods(api)["web-1"].spec.volumes[0].persistent_volume_claim.claim_name == \
        "data-web-1"
    assert len(api.list("persistentvolumeclaims", NS)) == 3


async def test_unready_condemned_pods_block_ordered_scale_down() -> None:
    """processCondemned: an unready pod is deleted only when it is the first unhealthy one
    (the lowest ordinal), so web-2 waits while web-1 is unready too."""
    ctrl, api, _ = setup()
    api.put(statefulset(3))
    await settle(ctrl, api)
    for name in ("web-1", "web-2"):
        obj = api.objects[("pods", f"{NS}/{name}")]
        obj.pod.status.conditions[0].status = "False"
        api.put(obj)
    update(api, lambda s: setattr(s.spec, "replicas", 1))
    await ctrl.reconcile(KEY)
    assert sorted(pods(api)) == ["web-0", "web-1", "web-2"]
    ready(api, "web-2")
    await ctrl.reconcile(KEY)
    assert sorted(pods(api)) == ["web-0", "web-1"]
    await ctrl.reconcile(KEY)  # web-1 is now the first unhealthy pod: it goes
    assert sorted(pods(api)) == ["web-0"]


async def test_parallel_creates_and_deletes_at_once() -> None:
    ctrl, api, _ = setup()
    api.put(statefulset(3, policy="Parallel", claims=False))
    await ctrl.reconcile(KEY)
    assert sorted(pods(api)) == ["web-0", "web-1", "web-2"]
    update(api, lambda s: setattr(s.spec, "replicas", 0))
    await ctrl.reconcile(KEY)
    assert pods(api) == {}


async def test_deleted_pod_is_made_again_with_its_claim() -> None:
    ctrl, api, _ = setup()
    api.put(statefulset(2))
    await settle(ctrl, api)
    await api.delete("pods", "web-0", NS)
    await ctrl.reconcile(KEY)
    again = pods(api)["web-0"]
    assert again.status.phase != "Running"  # a new pod
    assert again.spec.volumes[0].persistent_volume_claim.claim_name == "data-web-0"
    assert len(api.list("persistentvolumeclaims", NS)) == 2


async def test_failed_pod_is_deleted_then_made_again() -> None:
    ctrl, api, _ = setup()
    api.put(statefulset(1, claims=False))
    await settle(ctrl, api)
    ready(api, "web-0", phase="Failed")
    await ctrl.reconcile(KEY)
    assert pods(api) == {}
    await ctrl.reconcile(KEY)
    assert pods(api)["web-0"].status.phase != "Failed"  # a new pod


def images(api: FakeAPI) -> dict[str, str]:
    return {n: p.spec.containers[0].image for n, p in sorted(pods(api).items())}


async def test_rolling_update_from_the_top_one_at_a_time() -> None:
    ctrl, api, _ = setup()
    api.put(statefulset(3, claims=False))
    await settle(ctrl, api)
    old_rev = sts_status(api).current_revision
    update(api, lambda s: setattr(s.spec.template.spec.containers[0], "image", "v2"))
    order: list[str] = []
    for _ in range(20):
        before = images(api)
        await ctrl.reconcile(KEY)
        gone = set(before) - set(pods(api))
        assert len(gone) <= 1
        order.extend(gone)
        assert len(pods(api)) >= 2, "one at a time"
        for name, p in pods(api).items():
            if p.status.phase != "Running":
                ready(api, name)
        if images(api) == {"web-0": "v2", "web-1": "v2", "web-2": "v2"}:
            break
    assert order == ["web-2", "web-1", "web-0"]
    await ctrl.reconcile(KEY)
    st = sts_status(api)
    assert st.current_revision == st.update_revision != old_rev
    assert (st.replicas, st.ready_replicas, st.current_replicas, st.updated_replicas,
            st.available_replicas) == (3, 3, 3, 3, 3)


async def test_partition_keeps_lower_ordinals_at_the_current_revision() -> None:
    ctrl, api, _ = setup()
    api.put(statefulset(3, claims=False,
                        strategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}))
    await settle(ctrl, api)
    current = sts_status(api).current_revision
    update(api, lambda s: setattr(s.spec.template.spec.containers[0], "image", "v2"))
    await settle(ctrl, api)
    assert images(api) == {"web-0": "v1", "web-1": "v1", "web-2": "v2"}
    await api.delete("pods", "web-0", NS)
    await settle(ctrl, api)
    assert images(api) == {"web-0": "v1", "web-1": "v1", "web-2": "v2"}
    assert pods(api)["web-0"].metadata.labels[sp.REVISION_LABEL] == current
    st = sts_status(api)
    assert (st.current_revision, st.current_replicas, st.updated_replicas) == (current, 2, 1)
    update(api, lambda s: setattr(s.spec.update_strategy.rolling_update, "partition", 0))
    await settle(ctrl, api)
    assert images(api) == {"web-0": "v2", "web-1": "v2", "web-2": "v2"}
    await ctrl.reconcile(KEY)
    assert sts_status(api).current_revision == sts_status(api).update_revision


async def test_on_delete_replaces_only_deleted_pods() -> None:
    ctrl, api, _ = setup()
    api.put(statefulset(2, claims=False, strategy={"type": "OnDelete"}))
    await settle(ctrl, api)
    update(api, lambda s: setattr(s.spec.template.spec.containers[0], "image", "v2"))
    await settle(ctrl, api)
    assert images(api) == {"web-0": "v1", "web-1": "v1"}
    await api.delete("pods", "web-1", NS)
    await settle(ctrl, api)
    assert images(api) == {"web-0": "v1", "web-1": "v2"}
    st = sts_status(api)
    assert (st.current_replicas, st.updated_replicas) == (1, 1)


async def test_identity_labels_restored_and_orphans_adopted_by_name() -> None:
    ctrl, api, _ = setup()
    owner = api.put(statefulset(2, claims=False))
    for name in ("web-0", "other-0"):
        p = core_pb2.Pod()
        p.metadata.name, p.metadata.namespace = name, NS
        p.metadata.labels["app"] = "web"
        p.status.phase = "Running"
        p.status.conditions.add(type="Ready", status="True")
        api.put(api_pb2.Object(pod=p))
    await ctrl.reconcile(KEY)
    got = pods(api)
    assert got["web-0"].metadata.owner_references[0].uid == owner.stateful_set.metadata.uid
    assert got["web-0"].metadata.labels[sp.POD_NAME_LABEL] == "web-0"
    assert not got["other-0"].metadata.owner_references
    assert "web-1" in got


async def test_min_ready_seconds_counts_available_and_requeues() -> None:
    ctrl, api, _ = setup()
    api.put(statefulset(1, claims=False, min_ready=300))
    await settle(ctrl, api)
    st = sts_status(api)
    assert (st.ready_replicas, st.available_replicas) == (1, 0)
    assert KEY in ctrl.requeue._due  # synced again when the pod becomes available


def test_ordinals_and_the_stored_template() -> None:
    assert sp.parent_and_ordinal("web-12") == ("web", 12)
    assert sp.parent_and_ordinal("my-db-0") == ("my-db", 0)
    assert sp.parent_and_ordinal("web") == ("", -1)
    sts = statefulset(1).stateful_set
    rev = sp.revision_name(sts, sts.spec.template)
    assert sp.stored_template(sts, rev) is None
    sts.metadata.annotations[sp.TEMPLATE_ANNOTATION] = sp.encode_template(sts.spec.template)
    assert sp.stored_template(sts, rev) == sts.spec.template
    assert sp.stored_template(sts, "web-other") is None
    sts.metadata.annotations[sp.TEMPLATE_ANNOTATION] = "{not json"
    assert sp.stored_template(sts, rev) is None


async def test_claim_volume_replaces_a_template_volume_of_its_name() -> None:
    ctrl, api, _ = setup()
    obj = statefulset(1)
    spec = obj.stateful_set.spec.template.spec
    spec.volumes.add(name="data").empty_dir.SetInParent()
    spec.volumes.add(name="cfg").empty_dir.SetInParent()
    api.put(obj)
    await ctrl.reconcile(KEY)
    vols = pods(api)["web-0"].spec.volumes
    assert [(v.name, v.WhichOneof("source")) for v in vols] == \
        [("data", "persistent_volume_claim"), ("cfg", "empty_dir")]
