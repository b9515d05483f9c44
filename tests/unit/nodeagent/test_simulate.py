"""Simulated nodes without an apiserver: configuration, pod CIDRs and IPs, heartbeat
spreading and pacing, the Node status, and the simulated kubelet's pod sync against a
recording client."""

from __future__ import annotations

import ipaddress
import random
from datetime import UTC, datetime

import pytest

from kemu.api import manifest
from kemu.api.v1 import api_pb2, core_pb2
from kemu.nodeagent.clock import FakeClock
from kemu.nodeagent.simulate import (
    HeartbeatPlan,
    Pacer,
    PodIPs,
    PodIPsExhausted,
    SimulatedKubelet,
    SimulatorConfig,
    heartbeat_interval,
    node_ip_of,
    node_labels,
    node_status,
    pod_action,
    pod_cidr_for,
    running_status,
)
from tests.unit.nodeagent.fakes import FakeClient

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def pod(name: str = "web-1", node: str = "sim-node-0", **status: str) -> core_pb2.Pod:
    obj = manifest.from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": {"nodeName": node,
                 "initContainers": [{"name": "init", "image": "busybox"}],
                 "containers": [{"name": "app", "image": "kemu/bootcamp:v1"},
                                {"name": "side", "image": "busybox"}]},
        "status": status})
    return obj.pod


@pytest.mark.parametrize(("kwargs", "message"), [
    pytest.param({"count": 0}, "--count must be at least 1, got 0", id="zero"),
    pytest.param({"count": -3}, "--count must be at least 1, got -3", id="negative"),
    pytest.param({"count": 2, "heartbeat_qps": 0}, "--heartbeat-qps must be above 0",
                 id="qps"),
    pytest.param({"count": 300, "pod_cidr_range": "10.0.0.0/16"},
                 "holds 256 /24 subnets, fewer than --count 300", id="small-range"),
])
def test_bad_config_is_one_line(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimulatorConfig(apiserver="127.0.0.1:6443", **kwargs)  # type: ignore[arg-type]


def test_names_and_cidrs_by_number() -> None:
    cfg = SimulatorConfig(apiserver="x:1", count=3, name_prefix="sim")
    assert cfg.node_names() == ["sim-0", "sim-1", "sim-2"]
    assert pod_cidr_for("100.64.0.0/10", 0) == "100.64.0.0/24"
    assert pod_cidr_for("100.64.0.0/10", 257) == "100.65.1.0/24"
    assert node_ip_of("100.64.3.0/24") == "100.64.3.1"


@pytest.mark.parametrize(("count", "renew", "qps", "want"), [
    pytest.param(50, 10.0, 200.0, 10.0, id="rate-suffices"),
    pytest.param(5000, 10.0, 200.0, 25.0, id="stretched-by-rate"),
    pytest.param(1000, 2.0, 100.0, 10.0, id="short-interval-stretched"),
])
def test_heartbeat_interval(count: int, renew: float, qps: float, want: float) -> None:
    assert heartbeat_interval(count, renew, qps) == want


def test_heartbeats_are_spread_and_repeat_one_interval_apart() -> None:
    names = [f"n-{i}" for i in range(1000)]
    plan = HeartbeatPlan(names, lease_interval=10.0, status_interval=300.0, now=0.0,
                         rng=random.Random(1))
    per_second = [0] * 10
    leases: dict[str, float] = {}
    t = 0.0
    while t < 10.0:
        beat = plan.pop(t)
        if beat is None:
            t += 0.01
            continue
        kind, name = beat
        if kind == "lease":
            per_second[int(t)] += 1
            leases[name] = t
    assert len(leases) == 1000  # every node once in the first interval
    assert max(per_second) < 160 and min(per_second) > 50, per_second  # no herd
    while (beat := plan.pop(20.0)) is not None and beat[1] != "n-0":
        pass
    due = plan.next_due()
    assert due is not None and due >= 10.0


def test_a_late_heartbeat_is_not_repeated_in_a_burst() -> None:
    plan = HeartbeatPlan(["a"], lease_interval=10.0, status_interval=100.0, now=0.0,
                         rng=random.Random(2))
    beats = []
    while (beat := plan.pop(95.0)) is not None:  # 95 s late
        beats.append(beat)
    assert beats.count(("lease", "a")) == 1
    assert plan.next_due() is not None and plan.next_due() > 95.0  # type: ignore[operator]


def test_pacer_spaces_starts_evenly() -> None:
    clock = FakeClock()
    pacer = Pacer(100.0, clock.monotonic)
    waits = [pacer.reserve() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.01, 0.02, 0.03, 0.04])
    clock.advance(1.0)
    assert pacer.reserve() == 0.0


def test_pod_ips_unique_stable_and_reused() -> None:
    ips = PodIPs()
    cidr = "100.64.0.0/24"
    a = ips.allocate("ns/a", cidr)
    assert a == "100.64.0.2"  # .0 network, .1 the node
    assert ips.allocate("ns/a", cidr) == a  # idempotent
    b = ips.allocate("ns/b", cidr)
    assert b != a
    ips.observe("ns/c", cidr, "100.64.0.4")
    assert ips.allocate("ns/d", cidr) == "100.64.0.5"
    ips.release("ns/a", cidr)
    got = {ips.allocate(f"ns/x{i}", cidr) for i in range(250)}
    assert a in got and len(got) == 250
    with pytest.raises(PodIPsExhausted):
        ips.allocate("ns/full", cidr)


def test_node_status_is_ready_and_says_fake() -> None:
    cfg = SimulatorConfig(apiserver="x:1", count=1, cpu="8", memory="16Gi", max_pods=50)
    st = node_status(cfg, "sim-node-0", "100.64.0.1", NOW)
    assert dict(st.capacity) == {"cpu": "8", "memory": "16Gi", "pods": "50",
                                 "ephemeral-storage": "100Gi"}
    assert st.allocatable == st.capacity
    assert {c.type: c.status for c in st.conditions} == {
        "Ready": "True", "MemoryPressure": "False", "DiskPressure": "False",
        "PIDPressure": "False"}
    assert st.node_info.container_runtime_version == "fake://kemu-simulated"
    assert [(a.type, a.address) for a in st.addresses] == [
        ("InternalIP", "100.64.0.1"), ("Hostname", "sim-node-0")]
    later = node_status(cfg, "sim-node-0", "100.64.0.1",
                        NOW.replace(minute=5), st)
    ready = next(c for c in later.conditions if c.type == "Ready")
    assert ready.last_transition_time == st.conditions[0].last_transition_time
    assert ready.last_heartbeat_time.seconds > ready.last_transition_time.seconds
    labels = node_labels(cfg, "sim-node-0")
    assert labels["kemu.io/simulated"] == "true"
    assert labels["kubernetes.io/hostname"] == "sim-node-0"


def test_running_status_is_running_and_ready() -> None:
    st = running_status(pod(), "100.64.0.7", "100.64.0.1", NOW)
    assert st.phase == "Running"
    assert (st.pod_ip, st.host_ip) == ("100.64.0.7", "100.64.0.1")
    conds = {c.type: c.status for c in st.conditions}
    assert conds["Ready"] == conds["ContainersReady"] == conds["Initialized"] == "True"
    assert [c.name for c in st.container_statuses] == ["app", "side"]
    assert all(c.ready and c.state.HasField("running") for c in st.container_statuses)
    assert all(c.container_id.startswith("fake://") for c in st.container_statuses)
    init = st.init_container_statuses[0]
    assert init.state.terminated.reason == "Completed"
    assert init.state.terminated.container_id.startswith("fake://")


@pytest.mark.parametrize(("status", "deleting", "want"), [
    pytest.param({}, False, "run", id="pending"),
    pytest.param({"phase": "Running", "podIP": "100.64.0.2"}, False, "", id="running"),
    pytest.param({"phase": "Running"}, False, "run", id="running-no-ip"),
    pytest.param({"phase": "Succeeded"}, False, "", id="finished"),
    pytest.param({"phase": "Running", "podIP": "100.64.0.2"}, True, "delete", id="deleting"),
])
def test_pod_action(status: dict[str, str], deleting: bool, want: str) -> None:
    p = pod(**status)
    if deleting:
        p.metadata.deletion_timestamp.FromDatetime(NOW)
    assert pod_action(p) == want


async def test_kubelet_sync_runs_deletes_and_ignores_others() -> None:
    pods = {"default/web-1": pod("web-1"), "default/web-2": pod("web-2"),
            "default/other": pod("other", node="real-node")}
    pods["default/web-2"].metadata.deletion_timestamp.FromDatetime(NOW)
    client = FakeClient()
    kubelet = SimulatedKubelet(
        client, lambda key: api_pb2.Object(pod=pods[key]) if key in pods else None,
        {"sim-node-0": "100.64.0.0/24"}, FakeClock(NOW))
    for key in [*pods, "default/gone"]:
        await kubelet.sync(key)
    assert [(o.pod.metadata.name, o.pod.status.phase, o.pod.status.pod_ip)
            for o in client.statuses] == [("web-1", "Running", "100.64.0.2")]
    assert not client.statuses[0].pod.metadata.resource_version  # unconditional write
    assert client.deletes == [("pods", "default", "web-2", 0, "uid-web-2")]
    assert (kubelet.running, kubelet.deleted) == (1, 1)
    ip = ipaddress.ip_address(client.statuses[0].pod.status.pod_ip)
    assert ip in ipaddress.ip_network("100.64.0.0/24")


@pytest.mark.parametrize(("argv", "message"), [
    pytest.param(["--count", "0"], "--count must be at least 1, got 0", id="zero"),
    pytest.param(["--count", "-2"], "--count must be at least 1, got -2", id="negative"),
    pytest.param(["--count", "3", "--pod-cidr-range", "nonsense"],
                 "does not appear to be an IPv4 or IPv6 network", id="bad-range"),
])
def test_cli_bad_input_is_one_line(argv: list[str], message: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from kemu.cli.kemu_main import main

    code = main(["simulate", "nodes", "--apiserver", "127.0.0.1:1", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("kemu simulate nodes: error: ") and message in err
    assert err.count("\n") == 1
