"""The Deployment controller's arithmetic, table-driven: fenceposts and their rounding,
the new ReplicaSet's allowed size, old ReplicaSets' scale-down, proportional scaling,
the pod-template-hash, revision annotations, and progress conditions."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import struct_pb2

from kemu.api import manifest
from kemu.api.v1 import apps_pb2, core_pb2, meta_pb2
from kemu.services.controllers import deploymentutil as du
from kemu.services.controllers import hashing, progress, recreate, rolling

NOW = 1_700_000_000.0


def cond_of(status: apps_pb2.DeploymentStatus, type_: str) -> meta_pb2.Condition:
    got = progress.get_condition(status, type_)
    assert got is not None, f"no {type_} condition"
    return got


def deployment(replicas: int = 10, surge: Any = "25%", unavailable: Any = "25%", *,
               strategy: str = "RollingUpdate", **spec: Any) -> apps_pb2.Deployment:
    strat: dict[str, Any] = {"type": strategy}
    if strategy == "RollingUpdate":
        strat["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    d = manifest.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns", "uid": "d-uid", "generation": 1},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "strategy": strat, "progressDeadlineSeconds": 600,
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "v1"}]}},
                 **spec}}).deployment
    return d


def rs(name: str, replicas: int, available: int | None = None, *, created: int = 0,
       max_replicas: int | None = None, revision: int | None = None,
       actual: int | None = None) -> apps_pb2.ReplicaSet:
    out = apps_pb2.ReplicaSet()
    out.metadata.name, out.metadata.uid = name, f"uid-{name}"
    out.metadata.creation_timestamp.FromSeconds(1_600_000_000 + created)
    out.spec.replicas = replicas
    out.status.replicas = replicas if actual is None else actual
    out.status.available_replicas = replicas if available is None else available
    out.status.ready_replicas = out.status.available_replicas
    if max_replicas is not None:
        out.metadata.annotations[du.MAX_REPLICAS] = str(max_replicas)
    if revision is not None:
        out.metadata.annotations[du.REVISION] = str(revision)
    return out


def value(v: Any) -> struct_pb2.Value:
    out = struct_pb2.Value()
    if isinstance(v, str):
        out.string_value = v
    else:
        out.number_value = v
    return out


@pytest.mark.parametrize(("v", "total", "up", "want"), [
    pytest.param(3, 10, True, 3, id="int"),
    pytest.param("25%", 10, True, 3, id="percent-rounds-up"),
    pytest.param("25%", 10, False, 2, id="percent-rounds-down"),
    pytest.param("100%", 7, False, 7, id="all"),
    pytest.param("0%", 7, True, 0, id="zero"),
])
def test_scaled_value(v: Any, total: int, up: bool, want: int) -> None:
    assert du.scaled_value(value(v), total, round_up=up) == want


@pytest.mark.parametrize(("d", "want"), [
    pytest.param(deployment(10), (3, 2), id="default-25-25"),
    pytest.param(deployment(1), (1, 0), id="one-replica-surge-only"),
    pytest.param(deployment(3, "10%", "10%"), (1, 0), id="small-percentages"),
    pytest.param(deployment(3, 0, "10%"), (0, 1), id="both-round-to-zero-unavailable-1"),
    pytest.param(deployment(4, 2, 1), (2, 1), id="ints"),
])
def test_fenceposts(d: apps_pb2.Deployment, want: tuple[int, int]) -> None:
    assert du.resolve_fenceposts(d) == want


def test_max_unavailable_capped_and_recreate_zero() -> None:
    assert du.max_unavailable(deployment(2, 0, 5)) == 2
    assert du.max_unavailable(deployment(0)) == 0
    rec = deployment(3, strategy="Recreate")
    assert (du.max_surge(rec), du.max_unavailable(rec)) == (0, 0)


@pytest.mark.parametrize(("d", "rss", "new", "want"), [
    pytest.param(deployment(4, 1, 0), [rs("old", 4)], rs("new", 0), 1, id="surge-one"),
    pytest.param(deployment(4, 1, 0), [rs("old", 4)], rs("new", 1), 1, id="at-max-total"),
    pytest.param(deployment(4, 2, 0), [rs("old", 3)], rs("new", 1), 3, id="room-for-two"),
    pytest.param(deployment(4, 10, 0), [rs("old", 4)], rs("new", 0), 4,
                 id="never-above-replicas"),
    pytest.param(deployment(3, strategy="Recreate"), [rs("old", 3)], rs("new", 0), 3,
                 id="recreate-all-at-once"),
])
def test_new_rs_new_replicas(d: apps_pb2.Deployment, rss: list[apps_pb2.ReplicaSet],
                             new: apps_pb2.ReplicaSet, want: int) -> None:
    assert du.new_rs_new_replicas(d, [*rss, new], new) == want


def test_new_rs_target_scales_down_an_oversized_new() -> None:
    assert rolling.new_rs_target(deployment(2), [rs("new", 5)], rs("new", 5)) == 2


@pytest.mark.parametrize(("d", "olds", "new", "want"), [
    pytest.param(deployment(4, 1, 0), [rs("old", 4)], rs("new", 1, 0), {},
                 id="new-not-available-yet"),
    pytest.param(deployment(4, 1, 0), [rs("old", 4)], rs("new", 1, 1), {"old": 3},
                 id="one-new-available-one-old-goes"),
    pytest.param(deployment(4, 0, 2), [rs("old", 4)], rs("new", 0, 0), {"old": 2},
                 id="max-unavailable-two"),
    pytest.param(deployment(4, 1, 1), [rs("old", 4, available=2)], rs("new", 1, 0),
                 {"old": 3}, id="unhealthy-old-pods-first-within-budget"),
    pytest.param(deployment(4, 1, 0), [rs("a", 2, created=0), rs("b", 2, created=10)],
                 rs("new", 1, 1), {"a": 1}, id="oldest-first"),
    pytest.param(deployment(4, 1, 0), [rs("a", 0)], rs("new", 4, 4), {}, id="nothing-old"),
])
def test_old_rs_targets(d: apps_pb2.Deployment, olds: list[apps_pb2.ReplicaSet],
                        new: apps_pb2.ReplicaSet, want: dict[str, int]) -> None:
    assert rolling.old_rs_targets(d, [*olds, new], olds, new) == want


@pytest.mark.parametrize(("d", "rss", "want"), [
    pytest.param(deployment(20, 3, 0),
                 [rs("old", 8, created=0, max_replicas=13), rs("new", 5, created=10,
                                                               max_replicas=13)],
                 {"old": 14, "new": 9}, id="scale-up-10-to-20-mid-rollout"),
    pytest.param(deployment(5, 3, 0),
                 [rs("old", 8, created=0, max_replicas=13), rs("new", 5, created=10,
                                                               max_replicas=13)],
                 {"old": 5, "new": 3}, id="scale-down-10-to-5"),
    pytest.param(deployment(0, 3, 0), [rs("old", 2), rs("new", 3, created=10)],
                 {"old": 0, "new": 0}, id="to-zero"),
])
def test_proportional_sizes(d: apps_pb2.Deployment, rss: list[apps_pb2.ReplicaSet],
                            want: dict[str, int]) -> None:
    got = {r.metadata.name: n for r, n in du.proportional_sizes(d, rss)}
    assert got == want
    assert sum(got.values()) == (d.spec.replicas + du.max_surge(d) if d.spec.replicas else 0)


def test_active_or_latest_and_saturated() -> None:
    new = rs("new", 3, created=10)
    new.metadata.annotations[du.DESIRED_REPLICAS] = "3"
    assert du.find_active_or_latest(new, [rs("old", 0)]) is new
    latest = du.find_active_or_latest(None, [rs("a", 0), rs("b", 0, created=5)])
    assert latest is not None and latest.metadata.name == "b"
    assert du.find_active_or_latest(new, [rs("old", 1)]) is None
    assert du.is_saturated(deployment(3), new)
    assert not du.is_saturated(deployment(3), rs("x", 3))


def test_hash_is_stable_ten_safe_characters_and_changes_with_template() -> None:
    d = deployment()
    h = hashing.compute_hash(d.spec.template)
    assert len(h) == 10 and set(h) <= set(hashing.SAFE_ALPHABET)
    assert h == hashing.compute_hash(deployment().spec.template)
    assert h == "548df6b887", "the hash must not change between releases"
    other = core_pb2.PodTemplateSpec()
    other.CopyFrom(d.spec.template)
    other.spec.containers[0].image = "v2"
    assert hashing.compute_hash(other) != h
    assert hashing.compute_hash(d.spec.template, 1) != h


def test_fnv32a_reference_values() -> None:
    assert hashing.fnv32a(b"") == 0x811C9DC5
    assert hashing.fnv32a(b"a") == 0xE40C292C


def test_equal_ignore_hash_and_find_new() -> None:
    d = deployment()
    a = apps_pb2.ReplicaSet()
    a.metadata.name = "web-h"
    a.spec.template.CopyFrom(d.spec.template)
    a.spec.template.metadata.labels[du.HASH_LABEL] = "h"
    b = rs("other", 1)
    assert du.find_new(d, [b, a]) is a
    assert du.find_old([a, b], a) == [b]


def test_new_rs_annotations_revisions_and_history() -> None:
    d = deployment(3, 1, 0)
    d.metadata.annotations[du.CHANGE_CAUSE] = "v2 please"
    d.metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"] = "{}"
    fresh = apps_pb2.ReplicaSet()
    assert du.set_new_rs_annotations(d, fresh, 1, exists=False)
    assert dict(fresh.metadata.annotations) == {
        du.CHANGE_CAUSE: "v2 please", du.REVISION: "1", du.DESIRED_REPLICAS: "3",
        du.MAX_REPLICAS: "4"}
    assert not du.set_new_rs_annotations(d, fresh, 1, exists=True)
    assert du.set_new_rs_annotations(d, fresh, 4, exists=True)
    assert (fresh.metadata.annotations[du.REVISION],
            fresh.metadata.annotations[du.REVISION_HISTORY]) == ("4", "1")
    du.set_new_rs_annotations(d, fresh, 6, exists=True)
    assert fresh.metadata.annotations[du.REVISION_HISTORY] == "1,4"
    assert du.max_revision([fresh, rs("x", 0, revision=2)]) == 6


def status_of(replicas: int, updated: int, ready: int, available: int,
              generation: int = 1) -> apps_pb2.DeploymentStatus:
    return apps_pb2.DeploymentStatus(replicas=replicas, updated_replicas=updated,
                                     ready_replicas=ready, available_replicas=available,
                                     observed_generation=generation)


def test_calculate_status_and_available_condition() -> None:
    d = deployment(4, 1, 1)
    new = rs("new", 2, available=1)
    st = progress.calculate_status(d, [rs("old", 2), new], new, NOW)
    assert (st.replicas, st.updated_replicas, st.ready_replicas, st.available_replicas,
            st.unavailable_replicas, st.observed_generation) == (4, 2, 3, 3, 1, 1)
    assert cond_of(st, "Available").reason == "MinimumReplicasAvailable"
    st = progress.calculate_status(d, [rs("old", 2, available=0), new], new, NOW)
    assert cond_of(st, "Available").reason == "MinimumReplicasUnavailable"


def test_progressing_conditions_story() -> None:
    d = deployment(2, 1, 0)
    new = rs("web-h", 2, available=0)
    st = progress.rollout_status(d, [new], new, NOW)
    cond = cond_of(st, "Progressing")
    assert (cond.status, cond.reason) == ("True", "ReplicaSetUpdated")
    d.status.CopyFrom(st)
    # No progress for longer than the deadline: timed out.
    st = progress.rollout_status(d, [new], new, NOW + 601)
    cond = cond_of(st, "Progressing")
    assert (cond.status, cond.reason) == ("False", "ProgressDeadlineExceeded")
    assert progress.requeue_after(d, st, NOW + 601) is None
    d.status.CopyFrom(st)
    done = rs("web-h", 2)
    st = progress.rollout_status(d, [done], done, NOW + 700)
    cond = cond_of(st, "Progressing")
    assert (cond.status, cond.reason) == ("True", "NewReplicaSetAvailable")
    assert cond.message == 'ReplicaSet "web-h" has successfully progressed.'


def test_requeue_after_deadline() -> None:
    d = deployment(2)
    d.spec.progress_deadline_seconds = 30
    new = rs("n", 2, available=0)
    st = progress.rollout_status(d, [new], new, NOW)
    assert progress.requeue_after(d, st, NOW + 10) == pytest.approx(21)
    assert progress.requeue_after(d, st, NOW + 40) == 1.0


def test_same_condition_is_not_rewritten() -> None:
    st = apps_pb2.DeploymentStatus()
    progress.set_condition(st, progress.condition("Available", "True", "A", "m", NOW))
    progress.set_condition(st, progress.condition("Available", "True", "A", "m2", NOW + 5))
    assert st.conditions[0].message == "m"
    progress.set_condition(st, progress.condition("Available", "True", "B", "m", NOW + 9))
    assert st.conditions[0].last_transition_time.seconds == int(NOW)


def test_paused_condition() -> None:
    d = deployment(paused=True)
    cond = progress.paused_condition(d, NOW)
    assert cond is not None and (cond.status, cond.reason) == ("Unknown", "DeploymentPaused")
    d.status.conditions.append(cond)
    assert progress.paused_condition(d, NOW) is None
    d.spec.paused = False
    resumed = progress.paused_condition(d, NOW)
    assert resumed is not None and resumed.reason == "DeploymentResumed"


def test_old_pods_running() -> None:
    new, old = rs("new", 0, actual=0), rs("old", 0, actual=0)
    running = core_pb2.Pod()
    running.status.phase = "Running"
    done = core_pb2.Pod()
    done.status.phase = "Succeeded"
    assert recreate.old_pods_running(new, [rs("o", 0, actual=1)], {})
    assert recreate.old_pods_running(new, [old], {"uid-old": [running]})
    assert not recreate.old_pods_running(new, [old], {"uid-old": [done],
                                                       "uid-new": [running]})


def test_replica_failure_surfaces_new_first() -> None:
    d = deployment(2)
    old, new = rs("old", 1), rs("new", 1)
    old.status.conditions.add(type="ReplicaFailure", status="True", reason="FailedDelete")
    st = progress.rollout_status(d, [old, new], new, NOW)
    assert cond_of(st, "ReplicaFailure").reason == "FailedDelete"
    new.status.conditions.add(type="ReplicaFailure", status="True", reason="FailedCreate",
                              message="quota")
    st = progress.rollout_status(d, [old, new], new, NOW)
    assert (cond_of(st, "ReplicaFailure").reason, cond_of(st, "ReplicaFailure").message) \
        == ("FailedCreate", "quota")
    d.status.CopyFrom(st)
    st = progress.rollout_status(d, [rs("old", 1), rs("new", 1)], rs("new", 1), NOW)
    assert progress.get_condition(st, "ReplicaFailure") is None
