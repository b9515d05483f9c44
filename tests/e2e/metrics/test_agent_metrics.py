"""`kemu agent --metrics-listen` for real: an agent with the iptables Service proxy on, in a
network namespace of the test's own (joined to the host by a veth pair, so its rules never
touch the host's), running a pod on the host's dockerd; its /metrics scraped with urllib.

Asserts the kubelet's pod start latency and pod counts, kube-proxy's sync duration and the
gRPC server series of the NodeAgent port; and the kubelet's resource series on
/metrics/resource, against what the apiserver's Metrics service (`kemuctl top`) reports.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import docker
import grpc
import pytest

from kemu.api import quantity
from kemu.api.v1 import metrics_pb2, metrics_pb2_grpc
from kemu.client import Client
from tests.conftest import Cluster
from tests.e2e.nodeagent.conftest import docker_client  # noqa: F401 - the fixture
from tests.e2e.nodeagent.helpers import (
    PAUSE_IMAGE,
    TOOLS_IMAGE,
    cleanup_node,
    create_namespace,
    create_pod,
    wait_pod,
)
from tests.integration.metrics.scrape import Samples, scrape, value, wait_metric
from tests.support import processes

pytestmark = pytest.mark.e2e

@dataclass
class Veth:
    netns: str
    host_ip: str  # the host's end, where the apiserver listens too
    ns_ip: str  # the namespace's end: the node's IP


@pytest.fixture(scope="module")
def veth_netns() -> Iterator[Veth]:
    """A network namespace joined to the host by a veth pair on a random /30 of
    198.18.231.0/24 (the testing range); deleted with its veth at the end."""
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("iptables-restore") \
            is None:
        pytest.skip("needs root, iproute2 and iptables to make a network namespace")
    tag = secrets.token_hex(3)
    netns, host_if, ns_if = f"kemu-mtest-{tag}", f"km{tag}h", f"km{tag}n"
    base = 4 * secrets.randbelow(64)
    host_ip, ns_ip = f"198.18.231.{base + 1}", f"198.18.231.{base + 2}"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)
    ip("netns", "add", netns)
    try:
        ip("-n", netns, "link", "set", "lo", "up")
        ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", netns)
        ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        ip("link", "set", host_if, "up")
        ip("-n", netns, "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        ip("-n", netns, "link", "set", ns_if, "up")
        yield Veth(netns, host_ip, ns_ip)
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)


@dataclass
class Agent:
    node: str
    metrics: str
    cluster: Cluster


@pytest.fixture(scope="module")
def agent(veth_netns: Veth, docker_client: docker.DockerClient,  # noqa: F811
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    tmp = tmp_path_factory.mktemp("agent-metrics")
    store = processes.kemu_store(tmp)
    api_port = processes.free_port()
    api = processes.kemu_apiserver(tmp, store.address, port=api_port,
                                   extra=("--listen", f"{veth_netns.host_ip}:{api_port}"))
    node = f"e2e-metrics-{secrets.token_hex(3)}"
    agent_port, metrics_port = processes.free_port(), processes.free_port()
    proc = processes.Proc(f"agent-{node}", [
        "nsenter", f"--net=/run/netns/{veth_netns.netns}", "--", processes.PYTHON, "-m",
        "kemu.nodeagent", "--insecure", "--apiserver", f"{veth_netns.host_ip}:{api_port}",
        "--node-name", node, "--node-ip", veth_netns.ns_ip, "--address", veth_netns.ns_ip,
        "--port", str(agent_port), "--data-dir", str(tmp / "agent-data"),
        "--pause-image", PAUSE_IMAGE, "--proxy-mode", "iptables", "--network-plugin", "none",
        "--metrics-listen", f"{veth_netns.ns_ip}:{metrics_port}"],
        tmp / "agent.log", f"{veth_netns.ns_ip}:{agent_port}")
    try:
        with processes.running(store, api, proc):
            yield Agent(node, f"{veth_netns.ns_ip}:{metrics_port}",
                        Cluster(api.address, store.address, store, api, tmp))
            assert proc.alive(), f"the agent died:\n{proc.tail()}"
    finally:
        cleanup_node(docker_client, node)


def test_agent_reports_pod_start_pods_per_phase_and_proxy_syncs(agent: Agent) -> None:
    with Client(agent.cluster.server, read_retry_seconds=10) as api:
        ns = f"metrics-{secrets.token_hex(2)}"
        create_namespace(api, ns)
        create_pod(api, "sleeper", ns, agent.node,
                   [{"name": "main", "image": TOOLS_IMAGE, "command": ["sleep", "3600"]}])
        wait_pod(api, ns, "sleeper", lambda p: p.status.phase == "Running", 60, "Running")
    samples = wait_metric(agent.metrics, "a pod start and a proxy sync", lambda s: bool(
        value(s, "kubelet_pod_start_duration_seconds_count")
        and value(s, "kubeproxy_sync_proxy_rules_duration_seconds_count")))
    assert 0 < (value(samples, "kubelet_pod_start_duration_seconds_sum") or 0) < 60
    assert value(samples, "kubelet_pods", phase="Running") == 1
    assert value(samples, "kubelet_pods", phase="Pending") == 0
    assert value(samples, "kubelet_running_pods") == 1
    assert (value(samples, "kubeproxy_sync_proxy_rules_last_timestamp_seconds") or 0) > \
        time.time() - 3600
    assert value(samples, "grpc_server_handled_total", grpc_service="grpc.health.v1.Health",
                 grpc_method="Check", grpc_code="OK")  # the readiness probe's calls


def scrape_resource(address: str) -> Samples:
    """Every sample of http://address/metrics/resource (sampled on the scrape)."""
    return scrape(address, "/metrics/resource", timeout=30)


def test_resource_metrics_agree_with_the_metrics_service(agent: Agent) -> None:
    ns = f"resource-{secrets.token_hex(2)}"
    with Client(agent.cluster.server, read_retry_seconds=10) as api:
        create_namespace(api, ns)
        create_pod(api, "napper", ns, agent.node,
                   [{"name": "nap", "image": TOOLS_IMAGE, "command": ["sleep", "3600"]}])
        wait_pod(api, ns, "napper", lambda p: p.status.phase == "Running", 60, "Running")
    ours = {"container": "nap", "namespace": ns, "pod": "napper"}
    deadline = time.monotonic() + 60
    while True:
        samples = scrape_resource(agent.metrics)
        if (value(samples, "container_memory_working_set_bytes", **ours) or 0) > 0:
            break
        assert time.monotonic() < deadline, f"no usage of the pod's container: {samples}"
        time.sleep(0.5)
    assert value(samples, "scrape_error") == 0
    memory = value(samples, "container_memory_working_set_bytes", **ours) or 0
    cpu = value(samples, "container_cpu_usage_seconds_total", **ours)
    started = value(samples, "container_start_time_seconds", **ours) or 0
    assert cpu is not None and 0 <= cpu < (time.time() - started) * (os.cpu_count() or 1) + 1
    assert time.time() - 120 < started <= time.time()
    assert value(samples, "pod_memory_working_set_bytes", namespace=ns, pod="napper") == memory
    assert (value(samples, "node_memory_working_set_bytes") or 0) >= memory
    assert (value(samples, "node_cpu_usage_seconds_total") or 0) >= cpu
    assert "kubelet_running_pods" not in {name for name, _, _ in samples}

    with grpc.insecure_channel(agent.cluster.server) as channel:
        resp = metrics_pb2_grpc.MetricsStub(channel).ListPodMetrics(
            metrics_pb2.ListPodMetricsRequest(namespace=ns), timeout=30)
    [pod] = resp.items
    [container] = pod.containers
    served = float(quantity.parse(container.usage["memory"]))
    assert container.name == "nap" and memory / 2 <= served <= memory * 2, (memory, served)
