"""Probes against real containers: httpGet, tcpSocket and exec; readiness flips the Ready
condition, liveness failure restarts the container, a startup probe gates both."""

from __future__ import annotations

from typing import Any

import pytest

from kemu.client import Client
from tests.e2e.nodeagent.helpers import (
    APP_IMAGE,
    TOOLS_IMAGE,
    AgentHandle,
    condition,
    create_pod,
    events,
    exec_,
    status_of,
    wait_for,
    wait_pod,
    wait_ready,
)

pytestmark = pytest.mark.e2e
SLEEP = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


def probe(handler: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {**handler, "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 1, **kw}


def not_ready_running(p: Any) -> bool:
    cs = status_of(p, "app")
    return p.status.phase == "Running" and cs is not None and cs.state.HasField("running") \
        and not cs.ready and condition(p, "Ready") == "False"


def test_http_and_tcp_readiness(api: Client, agent: AgentHandle, namespace: str) -> None:
    port = [{"name": "http", "containerPort": 8080}]
    create_pod(api, "http-ok", namespace, agent.node, [
        {"name": "app", "image": APP_IMAGE, "ports": port,
         "readinessProbe": probe({"httpGet": {"path": "/", "port": "http"}})}])
    create_pod(api, "tcp-ok", namespace, agent.node, [
        {"name": "app", "image": APP_IMAGE,
         "readinessProbe": probe({"tcpSocket": {"port": 8080}})}])
    create_pod(api, "http-bad", namespace, agent.node, [
        {"name": "app", "image": APP_IMAGE,
         "readinessProbe": probe({"httpGet": {"path": "/", "port": 9999}})}])
    create_pod(api, "tcp-bad", namespace, agent.node, [
        {"name": "app", "image": APP_IMAGE,
         "readinessProbe": probe({"tcpSocket": {"port": 9998}})}])
    wait_ready(api, namespace, "http-ok")
    wait_ready(api, namespace, "tcp-ok")
    for name in ("http-bad", "tcp-bad"):
        pod = wait_pod(api, namespace, name, not_ready_running, 20, "Running, not Ready")
        ready = next(c for c in pod.status.conditions if c.type == "Ready")
        assert ready.reason == "ContainersNotReady"
        assert ready.message == "containers with unready status: [app]"
    msgs = wait_for(lambda: [e.message for e in events(api, namespace, "http-bad")
                             if e.reason == "Unhealthy"], 10, "an Unhealthy event")
    assert any(m.startswith("Readiness probe failed:") for m in msgs)


def test_exec_readiness_flips_ready(api: Client, agent: AgentHandle, namespace: str) -> None:
    create_pod(api, "flip", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE, "command": SLEEP,
         "readinessProbe": probe({"exec": {"command": ["cat", "/tmp/ready"]}})}])
    wait_pod(api, namespace, "flip", not_ready_running, 20, "Running, not Ready")
    exec_(agent.grpc_address, namespace, "flip", ["touch", "/tmp/ready"])
    pod = wait_ready(api, namespace, "flip", 15)
    assert status_of(pod, "app").ready
    exec_(agent.grpc_address, namespace, "flip", ["rm", "/tmp/ready"])
    pod = wait_pod(api, namespace, "flip", not_ready_running, 15, "Ready to flip to False")
    assert status_of(pod, "app").restart_count == 0  # readiness never restarts


def test_exec_liveness_failure_restarts(api: Client, agent: AgentHandle, namespace: str) -> None:
    create_pod(api, "live", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE,
         "command": ["sh", "-c", "touch /tmp/alive; trap 'exit 0' TERM; "
                                 "while true; do sleep 1; done"],
         "livenessProbe": probe({"exec": {"command": ["cat", "/tmp/alive"]}})}],
        terminationGracePeriodSeconds=1)
    pod = wait_ready(api, namespace, "live")
    first_id = status_of(pod, "app").container_id
    exec_(agent.grpc_address, namespace, "live", ["rm", "/tmp/alive"])
    pod = wait_pod(api, namespace, "live",
                   lambda p: status_of(p, "app").restart_count == 1
                   and status_of(p, "app").state.HasField("running"), 20,
                   "a restart after the liveness failure")
    cs = status_of(pod, "app")
    assert cs.container_id != first_id
    assert cs.last_state.terminated.container_id == first_id
    evs = wait_for(lambda: {e.reason: e.message for e in events(api, namespace, "live")
                            if e.reason in ("Unhealthy", "Killing")}, 10, "events")
    assert evs["Unhealthy"].startswith("Liveness probe failed:")
    assert evs["Killing"] == "Container app failed liveness probe, will be restarted"
    wait_ready(api, namespace, "live")  # the new container is healthy again


def test_http_liveness_failure_restarts(api: Client, agent: AgentHandle,
                                        namespace: str) -> None:
    create_pod(api, "deadport", namespace, agent.node, [
        {"name": "app", "image": APP_IMAGE,
         "livenessProbe": probe({"httpGet": {"path": "/healthz", "port": 9999}},
                                failureThreshold=2)}],
        terminationGracePeriodSeconds=1)
    wait_pod(api, namespace, "deadport",
             lambda p: status_of(p, "app") is not None
             and status_of(p, "app").restart_count >= 1, 30, "restarts by liveness")


def test_startup_probe_gates_readiness(api: Client, agent: AgentHandle,
                                       namespace: str) -> None:
    create_pod(api, "slow", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE, "command": SLEEP,
         "startupProbe": probe({"exec": {"command": ["cat", "/tmp/started"]}},
                               failureThreshold=60),
         "livenessProbe": probe({"exec": {"command": ["cat", "/tmp/started"]}})}])
    pod = wait_pod(api, namespace, "slow", not_ready_running, 20, "Running, not started")
    assert not status_of(pod, "app").started
    exec_(agent.grpc_address, namespace, "slow", ["touch", "/tmp/started"])
    pod = wait_ready(api, namespace, "slow", 15)
    assert status_of(pod, "app").started and status_of(pod, "app").restart_count == 0
