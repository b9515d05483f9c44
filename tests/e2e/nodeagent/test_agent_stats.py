"""A busy pod's CPU usage, sampled by the real agent from the real dockerd, reaches clients
through the apiserver's Metrics service, as `kubectl top pods` reads metrics-server."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from unittest import mock

import grpc
import pytest

from kemu.api import quantity
from kemu.api.v1 import metrics_pb2, metrics_pb2_grpc, nodeagent_pb2, nodeagent_pb2_grpc
from kemu.cli import kemuctl
from kemu.client import Client
from tests.e2e.nodeagent.helpers import TOOLS_IMAGE, AgentHandle, create_pod, wait_for, wait_ready

pytestmark = pytest.mark.e2e


def test_busy_pod_shows_cpu_usage_through_the_apiserver(api: Client, agent: AgentHandle,
                                                        namespace: str) -> None:
    create_pod(api, "busy", namespace, agent.node, [
        {"name": "spin", "image": TOOLS_IMAGE, "command": ["sh", "-c", "while :; do :; done"],
         "resources": {"requests": {"cpu": "100m", "memory": "16Mi"}}}],
        terminationGracePeriodSeconds=1)
    create_pod(api, "idle", namespace, agent.node, [
        {"name": "nap", "image": TOOLS_IMAGE, "command": ["sleep", "3600"]}],
        terminationGracePeriodSeconds=1)
    wait_ready(api, namespace, "busy")
    wait_ready(api, namespace, "idle")

    with grpc.insecure_channel(agent.cluster.server) as channel:
        metrics = metrics_pb2_grpc.MetricsStub(channel)

        def usage() -> dict[str, float]:
            resp = metrics.ListPodMetrics(metrics_pb2.ListPodMetricsRequest(
                namespace=namespace), timeout=30)
            return {p.metadata.name: float(sum(quantity.parse(c.usage["cpu"])
                                               for c in p.containers)) for p in resp.items}

        # A spinning loop takes a core on an idle machine, but the suite's other tests share
        # the two cores: 250m is still far above what the sleeping pod uses.
        seen = wait_for(lambda: (lambda u: u if u.get("busy", 0) > 0.25 and "idle" in u
                                 else None)(usage()), 60, "the busy pod to use over 250m")
        assert seen["idle"] < 0.05

        nodes = metrics.ListNodeMetrics(metrics_pb2.ListNodeMetricsRequest(
            field_selector=f"metadata.name={agent.node}"), timeout=30)
        [node] = nodes.items
        assert float(quantity.parse(node.usage["cpu"])) > 0.25
        assert quantity.parse(node.usage["memory"]) > 0

    # what a user sees: `kemuctl top pods` (registered here as kemuctl.py registers it)
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(kemuctl.VERBS, {"top": ("cmd_top", "Display resource usage")}), \
            redirect_stdout(out), redirect_stderr(err):
        code = kemuctl.main(["--server", agent.cluster.server, "top", "pods", "-n", namespace,
                             "--sort-by", "cpu"])
    assert code == 0, err.getvalue()
    header, busy, idle = (line.split() for line in out.getvalue().splitlines())
    assert header == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert busy[0] == "busy" and int(busy[1].removesuffix("m")) > 250 and idle[0] == "idle"

    with grpc.insecure_channel(agent.grpc_address) as channel:
        stats = nodeagent_pb2_grpc.NodeAgentStub(channel).Stats(nodeagent_pb2.StatsRequest(),
                                                                timeout=30)
        [spin] = [c for p in stats.pods if p.metadata.name == "busy" for c in p.containers]
        assert spin.name == "spin" and quantity.parse(spin.usage["memory"]) > 0
