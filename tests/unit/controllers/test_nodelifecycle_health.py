"""The node lifecycle arithmetic: conditions marked Unknown keep the kubelet's heartbeat,
taints follow Ready and keep their timeAdded, and the taint manager's eviction deadlines
(untolerated now, tolerationSeconds from timeAdded, the default for every pod, forever for
DaemonSet pods and for tolerations without seconds)."""

from __future__ import annotations

import random

import pytest

from kemu.api.v1 import core_pb2
from kemu.services.controllers import node_health as h
from kemu.services.controllers.ds_nodes import NOT_READY, UNREACHABLE

NOW = 10_000.0


def node(ready: str = "", *taints: tuple[str, str]) -> core_pb2.Node:
    n = core_pb2.Node()
    n.metadata.name = "n1"
    if ready:
        c = n.status.conditions.add(type="Ready", status=ready, reason="KubeletReady")
        c.last_heartbeat_time.FromSeconds(123)
    for key, effect in taints:
        t = n.spec.taints.add(key=key, effect=effect)
        if effect == "NoExecute":
            t.time_added.FromSeconds(5)
    return n


def test_mark_unknown_keeps_heartbeat_and_adds_missing() -> None:
    n = node("True")
    assert h.mark_unknown(n.status, NOW)
    got = {c.type: c for c in n.status.conditions}
    assert set(got) == set(h.KUBELET_CONDITIONS)
    ready = got["Ready"]
    assert (ready.status, ready.reason, ready.message) == (
        "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
    assert ready.last_heartbeat_time.seconds == 123
    assert ready.last_transition_time.seconds == int(NOW)
    assert got["DiskPressure"].reason == "NodeStatusNeverUpdated"
    assert not h.mark_unknown(n.status, NOW + 5)  # idempotent


@pytest.mark.parametrize(("ready", "have", "want"), [
    pytest.param("Unknown", [], [(UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")],
                 id="unknown-taints-unreachable"),
    pytest.param("False", [(UNREACHABLE, "NoExecute")],
                 [(NOT_READY, "NoExecute"), (NOT_READY, "NoSchedule")],
                 id="false-swaps-to-not-ready"),
    pytest.param("True", [(UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule"),
                          ("user", "NoSchedule")], [("user", "NoSchedule")],
                 id="ready-removes-only-ours"),
    pytest.param("True", [], None, id="ready-untainted-unchanged"),
    pytest.param("Unknown", [(UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")], None,
                 id="already-tainted-unchanged"),
])
def test_taints_follow_ready(ready: str, have: list[tuple[str, str]],
                             want: list[tuple[str, str]] | None) -> None:
    got = h.wanted_taints(node(ready, *have), NOW)
    if want is None:
        assert got is None
        return
    assert got is not None
    assert sorted((t.key, t.effect) for t in got) == sorted(want)
    for t in got:
        if t.effect == "NoExecute":
            assert t.time_added.seconds == (5 if (t.key, t.effect) in have else int(NOW))
        else:
            assert not t.HasField("time_added")


def pod(*tolerations: core_pb2.Toleration, daemon: bool = False) -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name = "p"
    p.spec.tolerations.extend(tolerations)
    if daemon:
        p.metadata.owner_references.add(kind="DaemonSet", name="ds", uid="u", controller=True)
    return p


def taint(key: str = UNREACHABLE, added: int = 1000) -> core_pb2.Taint:
    t = core_pb2.Taint(key=key, effect="NoExecute")
    t.time_added.FromSeconds(added)
    return t


def tol(key: str = UNREACHABLE, seconds: int | None = None) -> core_pb2.Toleration:
    t = core_pb2.Toleration(key=key, operator="Exists", effect="NoExecute")
    if seconds is not None:
        t.toleration_seconds = seconds
    return t


@pytest.mark.parametrize(("p", "taints", "at"), [
    pytest.param(pod(), [taint()], 1300.0, id="default-300s-from-timeAdded"),
    pytest.param(pod(tol(seconds=30)), [taint()], 1030.0, id="own-tolerationSeconds"),
    pytest.param(pod(tol()), [taint()], None, id="tolerates-forever"),
    pytest.param(pod(daemon=True), [taint(), taint(NOT_READY)], None, id="daemonset-forever"),
    pytest.param(pod(), [taint("example.com/maintenance")], NOW, id="untolerated-now"),
    pytest.param(pod(tol(seconds=-5)), [taint()], 1000.0, id="negative-seconds-now"),
    pytest.param(pod(tol(seconds=30), tol(NOT_READY, seconds=10)),
                 [taint(), taint(NOT_READY, 2000)], 1030.0, id="earliest-of-taints"),
    pytest.param(pod(), [], None, id="no-taints"),
])
def test_eviction_deadline(p: core_pb2.Pod, taints: list[core_pb2.Taint],
                           at: float | None) -> None:
    assert h.eviction(p, taints, 300.0, NOW).at == at


def test_taint_without_time_added_counts_from_first_seen() -> None:
    t = core_pb2.Taint(key=UNREACHABLE, effect="NoExecute")
    assert h.eviction(pod(), [t], 300.0, NOW, added_at=lambda _: 9_000.0).at == 9_300.0


def test_pod_not_ready() -> None:
    status = core_pb2.PodStatus()
    assert not h.mark_pod_not_ready(status, NOW)  # no Ready condition: nothing to say
    status.conditions.add(type="Ready", status="True")
    assert h.mark_pod_not_ready(status, NOW)
    c = status.conditions[0]
    assert (c.status, c.reason) == ("False", "NodeNotReady")
    assert not h.mark_pod_not_ready(status, NOW)


@pytest.mark.parametrize(("ready", "state"), [
    pytest.param(["True", "True"], h.NORMAL, id="all-ready"),
    pytest.param(["Unknown"], h.FULL, id="one-node-down"),
    pytest.param(["Unknown", "False", ""], h.FULL, id="none-ready"),
    pytest.param(["True", "Unknown", "Unknown"], h.NORMAL, id="two-down-is-normal"),
    pytest.param(["True", "True", "Unknown", "Unknown", "Unknown"], h.PARTIAL,
                 id="three-of-five-partial"),
    pytest.param(["True"] * 3 + ["Unknown"] * 3, h.NORMAL, id="half-is-below-55pct"),
])
def test_zone_state(ready: list[str], state: str) -> None:
    assert h.zone_state(ready) == state


def test_zone_census_follows_changes_as_a_recount_would() -> None:
    """Nodes added, changing zone and Ready, and removed, in a seeded random order: after
    every step the census agrees with zone_state over the nodes as they are."""
    rng = random.Random(7)
    census, now = h.ZoneCensus(), {}
    for _ in range(2000):
        name = f"n{rng.randrange(40)}"
        if rng.random() < 0.15:
            census.remove(name)
            now.pop(name, None)
        else:
            n = node(rng.choice(["True", "False", "Unknown", ""]))
            n.metadata.labels[h.ZONE_LABEL] = rng.choice(["a", "b", "c"])
            census.set(name, n)
            now[name] = n
        by_zone: dict[str, list[str]] = {}
        for n in now.values():
            by_zone.setdefault(h.zone_of(n), []).append(h.ready_status(n))
        assert census.states() == {z: h.zone_state(r) for z, r in by_zone.items()}
        assert census.sizes() == {z: len(r) for z, r in by_zone.items()}


@pytest.mark.parametrize(("zone", "states", "sizes", "policy"), [
    pytest.param("a", {"a": h.FULL, "b": h.NORMAL}, {"a": 1, "b": 1}, h.ADD,
                 id="one-zone-down-evicts"),
    pytest.param("a", {"a": h.FULL, "b": h.FULL}, {"a": 1, "b": 1}, h.REMOVE,
                 id="every-zone-down-stops"),
    pytest.param("a", {"a": h.PARTIAL}, {"a": 5}, h.KEEP, id="small-partial-pauses"),
    pytest.param("a", {"a": h.PARTIAL}, {"a": 60}, h.ADD, id="large-partial-evicts"),
])
def test_no_execute_policy(zone: str, states: dict[str, str], sizes: dict[str, int],
                           policy: str) -> None:
    assert h.no_execute_policy(zone, states, sizes) == policy


def test_keep_adds_no_new_no_execute_and_remove_drops_ours() -> None:
    fresh = h.wanted_taints(node("Unknown"), NOW, no_execute=h.KEEP)
    assert fresh is not None and [(t.key, t.effect) for t in fresh] == [
        (UNREACHABLE, "NoSchedule")]
    tainted = node("Unknown", (UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule"))
    assert h.wanted_taints(tainted, NOW, no_execute=h.KEEP) is None
    dropped = h.wanted_taints(tainted, NOW, no_execute=h.REMOVE)
    assert dropped is not None and [(t.key, t.effect) for t in dropped] == [
        (UNREACHABLE, "NoSchedule")]
