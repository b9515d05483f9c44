"""kubectl's rollout status lines, word for word, and set image's container matching."""

from __future__ import annotations

import pytest

from kemu.api.v1 import apps_pb2, core_pb2
from kemu.cli.ctl.cmd_set import set_images
from kemu.cli.ctl.rollout_status import (
    NotSupported,
    RolloutFailed,
    daemonset_status,
    deployment_status,
    statefulset_status,
)


def deploy(*, replicas: int = 3, generation: int = 2, observed: int = 2, updated: int = 3,
           total: int = 3, available: int = 3, reason: str = "") -> apps_pb2.Deployment:
    d = apps_pb2.Deployment()
    d.metadata.name, d.metadata.generation = "web", generation
    d.spec.replicas = replicas
    st = d.status
    st.observed_generation, st.updated_replicas = observed, updated
    st.replicas, st.available_replicas = total, available
    if reason:
        st.conditions.add(type="Progressing", status="False", reason=reason)
    return d


@pytest.mark.parametrize(("d", "line", "done"), [
    (deploy(observed=1), "Waiting for deployment spec update to be observed...\n", False),
    (deploy(updated=1, total=4), 'Waiting for deployment "web" rollout to finish: 1 out of 3 '
     "new replicas have been updated...\n", False),
    (deploy(total=4), 'Waiting for deployment "web" rollout to finish: 1 old replicas are '
     "pending termination...\n", False),
    (deploy(available=2), 'Waiting for deployment "web" rollout to finish: 2 of 3 updated '
     "replicas are available...\n", False),
    (deploy(), 'deployment "web" successfully rolled out\n', True),
])
def test_deployment_lines(d: apps_pb2.Deployment, line: str, done: bool) -> None:
    assert deployment_status(d) == (line, done)


def test_deadline_exceeded_fails() -> None:
    with pytest.raises(RolloutFailed, match='deployment "web" exceeded its progress deadline'):
        deployment_status(deploy(updated=1, reason="ProgressDeadlineExceeded"))


def test_daemonset_and_statefulset_lines() -> None:
    ds = apps_pb2.DaemonSet()
    ds.metadata.name = "agent"
    ds.status.desired_number_scheduled, ds.status.updated_number_scheduled = 2, 1
    assert daemonset_status(ds)[0] == ('Waiting for daemon set "agent" rollout to finish: 1 '
                                       "out of 2 new pods have been updated...\n")
    ds.status.updated_number_scheduled, ds.status.number_available = 2, 2
    assert daemonset_status(ds) == ('daemon set "agent" successfully rolled out\n', True)
    ds.spec.update_strategy.type = "OnDelete"
    with pytest.raises(NotSupported):
        daemonset_status(ds)

    sts = apps_pb2.StatefulSet()
    sts.metadata.generation, sts.spec.replicas = 1, 3
    sts.status.observed_generation, sts.status.ready_replicas = 1, 1
    assert statefulset_status(sts)[0] == "Waiting for 2 pods to be ready...\n"
    sts.status.ready_replicas, sts.status.current_replicas = 3, 3
    sts.status.current_revision = sts.status.update_revision = "db-7f9c"
    assert statefulset_status(sts) == (
        "statefulset rolling update complete 3 pods at revision db-7f9c...\n", True)


def test_set_images_by_name_star_and_missing() -> None:
    spec = core_pb2.PodSpec()
    spec.init_containers.add(name="init", image="a")
    spec.containers.add(name="web", image="b")
    assert set_images(spec, {"web": "kemu/bootcamp:v2"}) == []
    assert spec.containers[0].image == "kemu/bootcamp:v2" and spec.init_containers[0].image == "a"
    assert set_images(spec, {"*": "x"}) == []
    assert {c.image for c in (*spec.init_containers, *spec.containers)} == {"x"}
    assert set_images(spec, {"nope": "y"}) == ["nope"]
