"""Deployments through real processes (the ReplicaSet and Deployment controllers): the
ReplicaSet named by pod-template-hash, rolling updates within maxSurge/maxUnavailable,
revisions (and an old ReplicaSet reused by a template changed back), Recreate, history
limit, scaling, pause, status and conditions, and the progress deadline. No node agent
runs here, so the tests mark pods Running and Ready through update-status themselves."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kemu.api import manifest
from kemu.api.v1 import apps_pb2, core_pb2
from kemu.client import Client
from kemu.client.errors import Conflict
from tests.conftest import Cluster
from tests.integration.controllers.conftest import controller_manager, poll
from tests.support import processes

pytestmark = pytest.mark.integration

REVISION = "deployment.kubernetes.io/revision"
HASH = "pod-template-hash"


@pytest.fixture(scope="module")
def cm(cluster: Cluster) -> Iterator[processes.Proc]:
    proc = controller_manager(cluster.tmp, cluster.server, "--controllers",
                              "replicaset,deployment")
    with processes.running(proc):
        yield proc
        assert proc.alive(), proc.tail()


def create_deploy(client: Client, ns: str, name: str, replicas: int, image: str, *,
                  strategy: dict[str, Any] | None = None, **spec: Any) -> None:
    client.create(manifest.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "strategy": strategy or {"type": "RollingUpdate"},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": image}]}},
                 **spec}}))


def change_deployment(client: Client, ns: str, name: str,
                      change: Callable[[apps_pb2.Deployment], None]) -> None:
    """As `kemuctl set image` or `rollout pause`: read, change, write, again on a conflict
    with the controller's status writes (kubectl patches, which never conflicts)."""
    for _ in range(20):
        obj = client.get("deployments", name, ns)
        change(obj.deployment)
        try:
            client.update(obj)
            return
        except Conflict:
            continue
    raise AssertionError(f"deployment {ns}/{name} kept conflicting")


def set_image(client: Client, ns: str, name: str, image: str, cause: str = "") -> None:
    def change(d: apps_pb2.Deployment) -> None:
        d.spec.template.spec.containers[0].image = image
        if cause:
            d.metadata.annotations["kubernetes.io/change-cause"] = cause
    change_deployment(client, ns, name, change)


def set_paused(client: Client, ns: str, name: str, paused: bool) -> None:
    def change(d: apps_pb2.Deployment) -> None:
        d.spec.paused = paused
    change_deployment(client, ns, name, change)


def deploy(client: Client, ns: str, name: str) -> apps_pb2.Deployment:
    return client.get("deployments", name, ns).deployment


def replica_sets(client: Client, ns: str, name: str) -> list[apps_pb2.ReplicaSet]:
    uid = deploy(client, ns, name).metadata.uid
    return sorted((o.replica_set for o in client.list("replicasets", ns).items
                   if any(r.uid == uid for r in o.replica_set.metadata.owner_references)),
                  key=lambda rs: int(rs.metadata.annotations.get(REVISION, "0")))


def live_pods(client: Client, ns: str, name: str) -> list[core_pb2.Pod]:
    return [o.pod for o in client.list("pods", ns, label_selector=f"app={name}").items
            if not o.pod.metadata.HasField("deletion_timestamp")]


def is_ready(pod: core_pb2.Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def make_ready(client: Client, ns: str, name: str) -> None:
    """Play the node agent: every pod of the Deployment Running and Ready."""
    for pod in live_pods(client, ns, name):
        if is_ready(pod):
            continue
        obj = client.get("pods", pod.metadata.name, ns)
        obj.pod.status.phase = "Running"
        del obj.pod.status.conditions[:]
        c = obj.pod.status.conditions.add(type="Ready", status="True")
        c.last_transition_time.GetCurrentTime()
        client.update_status(obj)


def settle(client: Client, ns: str, name: str, want: Callable[[], bool], what: str,
           timeout: float = 20.0, check: Callable[[], None] | None = None) -> None:
    """Make pods ready while waiting for `want`, checking an invariant at every step."""
    def step() -> bool:
        if check is not None:
            check()
        make_ready(client, ns, name)
        return want()
    poll(what, step, timeout)


def condition(d: apps_pb2.Deployment, type_: str) -> tuple[str, str]:
    for c in d.status.conditions:
        if c.type == type_:
            return (c.status, c.reason)
    return ("", "")


def complete(client: Client, ns: str, name: str, replicas: int) -> bool:
    d = deploy(client, ns, name)
    st = d.status
    return ((st.replicas, st.updated_replicas, st.ready_replicas, st.available_replicas,
             st.unavailable_replicas) == (replicas, replicas, replicas, replicas, 0)
            and st.observed_generation == d.metadata.generation
            and condition(d, "Progressing") == ("True", "NewReplicaSetAvailable")
            and condition(d, "Available") == ("True", "MinimumReplicasAvailable"))


def test_rolling_update_revisions_and_reuse(cm: processes.Proc, client: Client,
                                            namespace: str) -> None:
    ns = namespace
    create_deploy(client, ns, "web", 3, "img:v1",
                  strategy={"type": "RollingUpdate",
                            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
    settle(client, ns, "web", lambda: complete(client, ns, "web", 3), "web complete")
    [first] = replica_sets(client, ns, "web")
    pod_hash = first.metadata.labels[HASH]
    assert first.metadata.name == f"web-{pod_hash}" and len(pod_hash) == 10
    assert first.spec.selector.match_labels[HASH] == pod_hash
    assert first.spec.template.metadata.labels[HASH] == pod_hash
    ann = first.metadata.annotations
    assert (ann[REVISION], ann["deployment.kubernetes.io/desired-replicas"],
            ann["deployment.kubernetes.io/max-replicas"]) == ("1", "3", "4")
    ref = first.metadata.owner_references[0]
    assert (ref.kind, ref.name, ref.controller, ref.block_owner_deletion) == \
        ("Deployment", "web", True, True)
    assert all(p.metadata.labels[HASH] == pod_hash for p in live_pods(client, ns, "web"))
    assert deploy(client, ns, "web").metadata.annotations[REVISION] == "1"

    def within_fenceposts() -> None:
        total = sum(rs.spec.replicas for rs in replica_sets(client, ns, "web"))
        assert total <= 4, f"maxSurge 1 broken: {total} replicas"
        ready = sum(is_ready(p) for p in live_pods(client, ns, "web"))
        assert ready >= 3, f"maxUnavailable 0 broken: {ready} ready"

    set_image(client, ns, "web", "img:v2", cause="image v2")
    settle(client, ns, "web", lambda: len(replica_sets(client, ns, "web")) == 2
           and complete(client, ns, "web", 3), "rollout to v2", check=within_fenceposts)
    old, new = replica_sets(client, ns, "web")
    assert old.metadata.name == first.metadata.name and old.spec.replicas == 0
    assert new.metadata.annotations[REVISION] == "2" and new.spec.replicas == 3
    assert new.metadata.annotations["kubernetes.io/change-cause"] == "image v2"
    assert deploy(client, ns, "web").metadata.annotations[REVISION] == "2"
    assert {p.spec.containers[0].image for p in live_pods(client, ns, "web")} == {"img:v2"}

    # Back to v1: the first ReplicaSet is the new one again, with the next revision.
    set_image(client, ns, "web", "img:v1")
    settle(client, ns, "web", lambda: complete(client, ns, "web", 3)
           and deploy(client, ns, "web").metadata.annotations[REVISION] == "3",
           "rollout back to v1", check=within_fenceposts)
    rss = {rs.metadata.name: rs for rs in replica_sets(client, ns, "web")}
    assert len(rss) == 2
    again = rss[first.metadata.name]
    assert (again.spec.replicas, again.metadata.annotations[REVISION],
            again.metadata.annotations["deployment.kubernetes.io/revision-history"]) == \
        (3, "3", "1")
    assert cm.alive(), cm.tail()


def test_rolling_update_max_unavailable(cm: processes.Proc, client: Client,
                                        namespace: str) -> None:
    ns = namespace
    create_deploy(client, ns, "mu", 4, "img:v1",
                  strategy={"type": "RollingUpdate",
                            "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "25%"}})
    settle(client, ns, "mu", lambda: complete(client, ns, "mu", 4), "mu complete")

    def within_fenceposts() -> None:
        total = sum(rs.spec.replicas for rs in replica_sets(client, ns, "mu"))
        assert total <= 4, f"maxSurge 0 broken: {total} replicas"
        ready = sum(is_ready(p) for p in live_pods(client, ns, "mu"))
        assert ready >= 3, f"maxUnavailable 25% of 4 broken: {ready} ready"

    set_image(client, ns, "mu", "img:v2")
    settle(client, ns, "mu", lambda: len(replica_sets(client, ns, "mu")) == 2
           and complete(client, ns, "mu", 4), "rollout to v2", check=within_fenceposts)
    assert {p.spec.containers[0].image for p in live_pods(client, ns, "mu")} == {"img:v2"}


def test_rollback_subresource_finds_revisions(cm: processes.Proc, client: Client,
                                              namespace: str) -> None:
    ns = namespace
    create_deploy(client, ns, "rb", 1, "img:v1")
    settle(client, ns, "rb", lambda: complete(client, ns, "rb", 1), "rb complete")
    set_image(client, ns, "rb", "img:v2")
    settle(client, ns, "rb", lambda: complete(client, ns, "rb", 1)
           and deploy(client, ns, "rb").metadata.annotations.get(REVISION) == "2", "rb v2")
    client.rollback("rb", ns)  # to the previous revision
    settle(client, ns, "rb", lambda: complete(client, ns, "rb", 1)
           and deploy(client, ns, "rb").metadata.annotations.get(REVISION) == "3",
           "rb rolled back")
    d = deploy(client, ns, "rb")
    assert d.spec.template.spec.containers[0].image == "img:v1"
    assert len(replica_sets(client, ns, "rb")) == 2


def test_recreate(cm: processes.Proc, client: Client, namespace: str) -> None:
    ns = namespace
    create_deploy(client, ns, "db", 2, "db:v1", strategy={"type": "Recreate"})
    settle(client, ns, "db", lambda: complete(client, ns, "db", 2), "db complete")

    def never_mixed() -> None:
        images = {p.spec.containers[0].image for p in live_pods(client, ns, "db")}
        assert len(images) <= 1, f"old and new pods side by side: {images}"

    set_image(client, ns, "db", "db:v2")
    settle(client, ns, "db", lambda: len(replica_sets(client, ns, "db")) == 2
           and complete(client, ns, "db", 2), "recreate to v2", check=never_mixed)
    old, new = replica_sets(client, ns, "db")
    assert (old.spec.replicas, new.spec.replicas) == (0, 2)
    assert {p.spec.containers[0].image for p in live_pods(client, ns, "db")} == {"db:v2"}


def test_history_limit_scaling_and_pause(cm: processes.Proc, client: Client,
                                         namespace: str) -> None:
    ns = namespace
    create_deploy(client, ns, "app", 2, "app:v1", revisionHistoryLimit=1)
    settle(client, ns, "app", lambda: complete(client, ns, "app", 2), "app complete")
    for image in ("app:v2", "app:v3"):
        set_image(client, ns, "app", image)
        settle(client, ns, "app", lambda: complete(client, ns, "app", 2)
               and len(replica_sets(client, ns, "app")) <= 2, f"rollout to {image}")
    revisions = [rs.metadata.annotations[REVISION] for rs in replica_sets(client, ns, "app")]
    assert revisions == ["2", "3"], "revision 1 is beyond revisionHistoryLimit 1"

    client.scale("deployments", "app", 4, ns)
    settle(client, ns, "app", lambda: complete(client, ns, "app", 4), "scaled to 4")
    new = replica_sets(client, ns, "app")[-1]
    assert new.metadata.annotations["deployment.kubernetes.io/desired-replicas"] == "4"

    set_paused(client, ns, "app", True)
    poll("paused condition", lambda: condition(deploy(client, ns, "app"), "Progressing")
         == ("Unknown", "DeploymentPaused"))
    set_image(client, ns, "app", "app:v4")
    client.scale("deployments", "app", 3, ns)
    settle(client, ns, "app", lambda: replica_sets(client, ns, "app")[-1].spec.replicas == 3
           and len(live_pods(client, ns, "app")) == 3, "paused scale to 3")
    images = {rs.spec.template.spec.containers[0].image for rs in replica_sets(client, ns, "app")}
    assert "app:v4" not in images, "no rollout while paused"

    set_paused(client, ns, "app", False)
    settle(client, ns, "app", lambda: complete(client, ns, "app", 3)
           and deploy(client, ns, "app").metadata.annotations.get(REVISION) == "4",
           "resumed rollout")
    assert {p.spec.containers[0].image for p in live_pods(client, ns, "app")} == {"app:v4"}


def test_progress_deadline_exceeded(cm: processes.Proc, client: Client,
                                    namespace: str) -> None:
    ns = namespace
    create_deploy(client, ns, "stuck", 2, "img:v1", progressDeadlineSeconds=2)
    poll("pods created", lambda: len(live_pods(client, ns, "stuck")) == 2)
    poll("deadline exceeded", lambda: condition(deploy(client, ns, "stuck"), "Progressing")
         == ("False", "ProgressDeadlineExceeded"), timeout=15)
    d = deploy(client, ns, "stuck")
    assert condition(d, "Available") == ("False", "MinimumReplicasUnavailable")
    assert (d.status.replicas, d.status.updated_replicas, d.status.available_replicas,
            d.status.unavailable_replicas) == (2, 2, 0, 2)
    # Progress again (pods ready): the rollout completes.
    settle(client, ns, "stuck", lambda: complete(client, ns, "stuck", 2), "stuck recovers")
