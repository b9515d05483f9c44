"""PodStatus from the runtime view: phase, container states and reasons, conditions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kemu.api import manifest
from kemu.nodeagent import status
from kemu.nodeagent.runtime import ContainerInfo
from kemu.nodeagent.status import ContainerView, PodView

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def pod(containers: int = 1, init: int = 0, policy: str = "Always", **spec: Any) -> Any:
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns",
                                                           "uid": "u1"},
           "spec": {"restartPolicy": policy, "nodeName": "n1",
                    "containers": [{"name": f"c{i}", "image": "img"} for i in range(containers)],
                    "initContainers": [{"name": f"i{i}", "image": "img"} for i in range(init)],
                    **spec}}
    return manifest.from_dict(doc).pod


def running(cid: str = "r1", **labels: str) -> ContainerInfo:
    return ContainerInfo(id=cid, name=cid, labels=labels, state="running",
                         started_at=NOW - timedelta(seconds=30), image_id="sha256:abc")


def exited(code: int, cid: str = "e1", oom: bool = False) -> ContainerInfo:
    return ContainerInfo(id=cid, name=cid, labels={}, state="exited", exit_code=code,
                         oom_killed=oom, started_at=NOW - timedelta(seconds=20),
                         finished_at=NOW - timedelta(seconds=10))


SANDBOX = ContainerInfo(id="sb", name="sb", labels={}, state="running", ip="10.0.0.5")


def view(apps: list[ContainerView], inits: list[ContainerView] | None = None,
         sandbox: ContainerInfo | None = SANDBOX) -> PodView:
    return PodView(sandbox=sandbox, pod_ip=sandbox.ip if sandbox else "", init=inits or [],
                   app=apps)


def state(cs: Any) -> str:
    which = next((f for f in ("waiting", "running", "terminated") if cs.state.HasField(f)), "")
    reason = getattr(cs.state, which).reason if which in ("waiting", "terminated") else ""
    return f"{which}:{reason}" if reason else which


@pytest.mark.parametrize(("policy", "cv", "phase", "shown"), [
    pytest.param("Always", ContainerView("c0"), "Pending", "waiting:ContainerCreating",
                 id="not-created"),
    pytest.param("Always", ContainerView("c0", current=running(), ready=True, started=True),
                 "Running", "running", id="running"),
    pytest.param("Never", ContainerView("c0", current=exited(0)), "Succeeded",
                 "terminated:Completed", id="never-success"),
    pytest.param("Never", ContainerView("c0", current=exited(2)), "Failed",
                 "terminated:Error", id="never-error"),
    pytest.param("Never", ContainerView("c0", current=exited(137, oom=True)), "Failed",
                 "terminated:OOMKilled", id="oom"),
    pytest.param("OnFailure", ContainerView("c0", current=exited(0)), "Succeeded",
                 "terminated:Completed", id="onfailure-success"),
    pytest.param("Always", ContainerView("c0", current=exited(1), restart_count=3,
                                         waiting_reason="CrashLoopBackOff",
                                         waiting_message="back-off 40s"),
                 "Running", "waiting:CrashLoopBackOff", id="crashloop"),
    pytest.param("OnFailure", ContainerView("c0", current=exited(1),
                                            waiting_reason="CrashLoopBackOff"),
                 "Running", "waiting:CrashLoopBackOff", id="onfailure-restarting"),
    pytest.param("Always", ContainerView("c0", waiting_reason="ErrImagePull",
                                         waiting_message="no such image"),
                 "Pending", "waiting:ErrImagePull", id="err-image-pull"),
    pytest.param("Always", ContainerView("c0", waiting_reason="CreateContainerConfigError"),
                 "Pending", "waiting:CreateContainerConfigError", id="config-error"),
])
def test_phase_and_container_state(policy: str, cv: ContainerView, phase: str,
                                   shown: str) -> None:
    st = status.compute(pod(policy=policy), view([cv]), host_ip="192.0.2.1", now=NOW)
    assert st.phase == phase
    assert state(st.container_statuses[0]) == shown


def test_crash_loop_keeps_last_termination_and_restart_count() -> None:
    cv = ContainerView("c0", current=exited(1, cid="dead"), restart_count=4,
                       waiting_reason="CrashLoopBackOff", waiting_message="back-off 1m20s")
    cs = status.compute(pod(), view([cv]), host_ip="h", now=NOW).container_statuses[0]
    assert cs.restart_count == 4 and not cs.ready
    assert cs.state.waiting.message == "back-off 1m20s"
    assert cs.last_state.terminated.exit_code == 1
    assert cs.last_state.terminated.reason == "Error"
    assert cs.last_state.terminated.container_id == "docker://dead"


def test_running_after_restart_shows_previous_termination() -> None:
    cv = ContainerView("c0", current=running("new"), previous=exited(1, cid="old"),
                       restart_count=1, ready=True, started=True)
    cs = status.compute(pod(), view([cv]), host_ip="h", now=NOW).container_statuses[0]
    assert cs.state.HasField("running") and cs.ready and cs.started
    assert cs.container_id == "docker://new" and cs.image_id == "docker://sha256:abc"
    assert cs.last_state.terminated.container_id == "docker://old"


def test_start_error_is_a_termination() -> None:
    failed = ContainerInfo(id="x", name="x", labels={}, state="created", error="exec: nope")
    cs = status.compute(pod(policy="Never"), view([ContainerView("c0", current=failed)]),
                        host_ip="h", now=NOW).container_statuses[0]
    assert (cs.state.terminated.reason, cs.state.terminated.exit_code) == ("StartError", 128)


def conds(st: Any) -> dict[str, tuple[str, str, str]]:
    return {c.type: (c.status, c.reason, c.message) for c in st.conditions}


def test_conditions_ready_and_not_ready() -> None:
    p = pod(containers=2)
    st = status.compute(p, view([ContainerView("c0", current=running(), ready=True,
                                               started=True),
                                 ContainerView("c1", current=running("r2"), started=True)]),
                        host_ip="h", now=NOW)
    c = conds(st)
    assert c["Ready"] == ("False", "ContainersNotReady", "containers with unready status: [c1]")
    assert c["ContainersReady"][0] == "False"
    assert c["Initialized"] == ("True", "", "")
    assert c["PodScheduled"][0] == "True"
    assert c["PodReadyToStartContainers"][0] == "True"
    assert st.pod_ip == "10.0.0.5" and [i.ip for i in st.pod_ips] == ["10.0.0.5"]
    assert st.host_ip == "h" and st.qos_class == "BestEffort"


def test_init_containers_pending_then_initialized() -> None:
    p = pod(init=2)
    st = status.compute(p, view([ContainerView("c0")],
                                [ContainerView("i0", current=exited(0)),
                                 ContainerView("i1", current=running())]),
                        host_ip="h", now=NOW)
    assert st.phase == "Pending"
    assert conds(st)["Initialized"] == ("False", "ContainersNotInitialized",
                                        "containers with incomplete status: [i1]")
    assert st.container_statuses[0].state.waiting.reason == "PodInitializing"
    assert st.init_container_statuses[0].state.terminated.reason == "Completed"


def test_failed_init_with_never_fails_the_pod() -> None:
    st = status.compute(pod(init=1, policy="Never"),
                        view([ContainerView("c0")], [ContainerView("i0", current=exited(1))]),
                        host_ip="h", now=NOW)
    assert st.phase == "Failed"


def test_succeeded_pod_ready_false_pod_completed_and_phase_sticks() -> None:
    p = pod(policy="Never")
    st = status.compute(p, view([ContainerView("c0", current=exited(0))]), host_ip="h", now=NOW)
    assert st.phase == "Succeeded"
    assert conds(st)["Ready"][:2] == ("False", "PodCompleted")
    p.status.CopyFrom(st)
    later = status.compute(p, view([ContainerView("c0")], sandbox=None), host_ip="h",
                           now=NOW + timedelta(minutes=1))
    assert later.phase == "Succeeded" and later.pod_ip == "10.0.0.5"


def test_transition_times_and_start_time_are_kept() -> None:
    p = pod()
    v = view([ContainerView("c0", current=running(), ready=True, started=True)])
    first = status.compute(p, v, host_ip="h", now=NOW)
    p.status.CopyFrom(first)
    second = status.compute(p, v, host_ip="h", now=NOW + timedelta(minutes=5))
    assert second == first
    third = status.compute(p, view([ContainerView("c0", current=running())]), host_ip="h",
                           now=NOW + timedelta(minutes=6))
    ready = next(c for c in third.conditions if c.type == "Ready")
    assert ready.last_transition_time.ToDatetime(UTC) == NOW + timedelta(minutes=6)
    assert third.start_time == first.start_time


def test_scheduler_condition_and_readiness_gates() -> None:
    p = pod(readinessGates=[{"conditionType": "example.com/gate"}])
    p.status.conditions.add(type="PodScheduled", status="True", reason="")
    v = view([ContainerView("c0", current=running(), ready=True, started=True)])
    c = conds(status.compute(p, v, host_ip="h", now=NOW))
    assert c["Ready"][:2] == ("False", "ReadinessGatesNotReady")
    assert c["ContainersReady"][0] == "True"
    p.status.conditions.add(type="example.com/gate", status="True")
    c = conds(status.compute(p, v, host_ip="h", now=NOW))
    assert c["Ready"][0] == "True" and c["example.com/gate"][0] == "True"


@pytest.mark.parametrize(("resources", "qos"), [
    pytest.param({}, "BestEffort", id="none"),
    pytest.param({"requests": {"cpu": "100m"}}, "Burstable", id="requests"),
    pytest.param({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed", id="limits"),
    pytest.param({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}},
                 "Burstable", id="requests-below-limits"),
])
def test_qos_class(resources: dict[str, Any], qos: str) -> None:
    p = pod()
    for k, v in resources.items():
        getattr(p.spec.containers[0].resources, k).update(v)
    assert status.compute(p, view([ContainerView("c0")]), host_ip="h", now=NOW).qos_class == qos
