"""Restart policies with Kubernetes' back-off (the agent runs with a 1 s initial back-off
and an 8 s cap so the doubling shows in seconds), terminal phases, OOMKilled."""

from __future__ import annotations

import itertools
import time

import pytest

from kemu.client import Client
from tests.e2e.nodeagent.helpers import (
    TOOLS_IMAGE,
    AgentHandle,
    create_pod,
    events,
    status_of,
    wait_for,
    wait_pod,
    waiting_reason,
)

pytestmark = pytest.mark.e2e


def test_never_failed_with_error(api: Client, agent: AgentHandle, namespace: str) -> None:
    create_pod(api, "fail", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE, "command": ["sh", "-c", "echo bye; exit 3"]}],
        restartPolicy="Never")
    create_pod(api, "done", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE, "command": ["true"]}], restartPolicy="Never")
    pod = wait_pod(api, namespace, "fail", lambda p: p.status.phase == "Failed", 20, "Failed")
    t = status_of(pod, "app").state.terminated
    assert (t.exit_code, t.reason) == (3, "Error")
    assert status_of(pod, "app").restart_count == 0
    assert pod.status.pod_ip  # kept for a terminal pod
    pod = wait_pod(api, namespace, "done", lambda p: p.status.phase == "Succeeded", 20,
                   "Succeeded")
    t = status_of(pod, "app").state.terminated
    assert (t.exit_code, t.reason) == (0, "Completed")
    ready = next(c for c in pod.status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "PodCompleted")


def test_on_failure_restarts_until_success(api: Client, agent: AgentHandle,
                                           namespace: str) -> None:
    create_pod(api, "retry", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE,
         "command": ["sh", "-c", "if [ -f /state/once ]; then exit 0; fi; touch /state/once; "
                                 "exit 1"],
         "volumeMounts": [{"name": "state", "mountPath": "/state"}]}],
        restartPolicy="OnFailure", volumes=[{"name": "state", "emptyDir": {}}])
    pod = wait_pod(api, namespace, "retry", lambda p: p.status.phase == "Succeeded", 30,
                   "Succeeded after one restart")
    cs = status_of(pod, "app")
    assert cs.restart_count == 1
    assert cs.state.terminated.reason == "Completed"
    assert cs.last_state.terminated.exit_code == 1


def test_always_crash_loop_back_off_grows(api: Client, agent: AgentHandle,
                                          namespace: str) -> None:
    create_pod(api, "crash", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE, "command": ["sh", "-c", "exit 1"]}])
    seen: dict[int, float] = {}
    reasons: set[str] = set()
    messages: set[str] = set()
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and len(seen) < 5:
        pod = api.get("pods", "crash", namespace).pod
        cs = status_of(pod, "app")
        if cs is not None:
            seen.setdefault(cs.restart_count, time.monotonic())
            if cs.state.waiting.reason:
                reasons.add(cs.state.waiting.reason)
                messages.add(cs.state.waiting.message)
        time.sleep(0.05)
    assert len(seen) >= 5, f"restarts seen: {sorted(seen)}"
    assert "CrashLoopBackOff" in reasons
    assert any(m.startswith("back-off ") and "restarting failed container=app" in m
               for m in messages)
    assert pod.status.phase == "Running"  # restartPolicy Always: restarting
    starts = [seen[i] for i in sorted(seen)][:5]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # back-off 1 s, 2 s, 4 s after the first immediate restart (container runtime adds a bit)
    assert gaps[-1] > gaps[1] * 1.5, f"back-off did not grow: {gaps}"
    assert gaps[-1] >= 3.0, gaps
    backoffs = wait_for(lambda: [e for e in events(api, namespace, "crash")
                                 if e.reason == "BackOff"], 10, "BackOff events")
    assert backoffs[0].type == "Warning" and backoffs[0].count >= 2
    assert waiting_reason(api.get("pods", "crash", namespace).pod, "app") in (
        "CrashLoopBackOff", "")


# Allocates 128 MiB under a 16 MiB limit. The sleep comes first because containerd's shim
# starts watching a container's memory cgroup for OOM only after the start returns: a
# process killed within those first milliseconds leaves Docker with OOMKilled false for
# good (containerd/containerd#8180), and the Kubernetes node e2e test sleeps at start
# for the same reason (kubernetes/kubernetes#116082). An OOM event that is merely late is
# the agent's to wait for, and it does (ContainerInfo.settle_left).
OOM_COMMAND = ["sh", "-c", "sleep 2; exec dd if=/dev/zero of=/dev/null bs=128M count=1"]


def test_oom_killed(api: Client, agent: AgentHandle, namespace: str) -> None:
    create_pod(api, "oom", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE, "command": OOM_COMMAND,
         "resources": {"limits": {"memory": "16Mi"}}}], restartPolicy="Never")
    pod = wait_pod(api, namespace, "oom", lambda p: p.status.phase == "Failed", 30, "Failed")
    t = status_of(pod, "app").state.terminated
    assert (t.exit_code, t.reason) == (137, "OOMKilled"), t
    assert pod.status.qos_class == "Burstable"


def test_oom_killed_restarted_keeps_the_reason(api: Client, agent: AgentHandle,
                                               namespace: str) -> None:
    create_pod(api, "oomloop", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE, "command": OOM_COMMAND,
         "resources": {"limits": {"memory": "16Mi"}}}])
    pod = wait_pod(api, namespace, "oomloop",
                   lambda p: status_of(p, "app") is not None
                   and status_of(p, "app").restart_count >= 1
                   and status_of(p, "app").last_state.HasField("terminated"), 30,
                   "a restart after the OOM kill")
    t = status_of(pod, "app").last_state.terminated
    assert (t.exit_code, t.reason) == (137, "OOMKilled"), t


def test_active_deadline_exceeded(api: Client, agent: AgentHandle, namespace: str) -> None:
    create_pod(api, "deadline", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE, "command": ["sleep", "3600"]}],
        activeDeadlineSeconds=2, terminationGracePeriodSeconds=1)
    pod = wait_pod(api, namespace, "deadline", lambda p: p.status.phase == "Failed", 20,
                   "Failed by its deadline")
    assert pod.status.reason == "DeadlineExceeded"
    assert pod.status.message == "Pod was active on the node longer than the specified deadline"
    assert status_of(pod, "app").state.HasField("terminated")
