"""kemuctl top, autoscale and get hpa against a real apiserver whose Metrics service reaches
a stand-in node agent. The verbs and the hpa table are registered here as kemuctl.py and
table.py register them (the integrator adds the same entries)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

import grpc
import pytest

from kemu.api import manifest
from kemu.api.v1 import nodeagent_pb2, nodeagent_pb2_grpc
from kemu.cli import kemuctl
from kemu.cli.ctl import describe, describe_autoscaling, rows_autoscaling, table
from kemu.client import Client
from tests.conftest import Cluster
from tests.integration.apiserver.test_metrics_api import serving

pytestmark = pytest.mark.integration

VERBS = {"top": ("cmd_top", "Display resource (CPU/memory) usage"),
         "autoscale": ("cmd_autoscale", "Auto-scale a deployment, replica set, stateful set, "
                                        "or replication controller")}


class StandInAgent(nodeagent_pb2_grpc.NodeAgentServicer):
    def __init__(self) -> None:
        self.pods: dict[str, str] = {}  # name -> uid, all in namespace "top"

    def Stats(self, request: nodeagent_pb2.StatsRequest,
              context: grpc.ServicerContext) -> nodeagent_pb2.StatsResponse:
        resp = nodeagent_pb2.StatsResponse()
        resp.node.usage.update({"cpu": "500000000n", "memory": "262144Ki"})
        for i, (name, uid) in enumerate(sorted(self.pods.items())):
            pod = resp.pods.add()
            pod.metadata.namespace, pod.metadata.name, pod.metadata.uid = "top", name, uid
            pod.containers.add(name="c", usage={"cpu": f"{(i + 1) * 2_500_000}n",
                                                "memory": f"{(i + 1) * 12288}Ki"})
        return resp


@pytest.fixture(scope="module")
def agent() -> Iterator[tuple[StandInAgent, int]]:
    servicer = StandInAgent()
    with serving(servicer) as port:
        yield servicer, port


def ctl(server: str, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(kemuctl.VERBS, VERBS), \
            mock.patch.dict(table.TABLES, rows_autoscaling.COLUMNS), \
            mock.patch.dict(describe.DESCRIBERS, {
                "horizontalpodautoscalers": describe_autoscaling.describe_hpa}), \
            redirect_stdout(out), redirect_stderr(err):
        code = kemuctl.main(["--server", server, *args])
    return code, out.getvalue(), err.getvalue()


def test_top_autoscale_and_get_hpa(cluster: Cluster, agent: tuple[StandInAgent, int]) -> None:
    servicer, port = agent
    with Client(cluster.server) as client:
        for doc in (
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "top"}},
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "top-node"},
             "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
                        "allocatable": {"cpu": "2", "memory": "1Gi"}}},
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "web", "namespace": "top"},
             "spec": {"selector": {"matchLabels": {"app": "web"}},
                      "template": {"metadata": {"labels": {"app": "web"}},
                                   "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}},
        ):
            client.create(manifest.from_dict(doc))
        for name in ("web-a", "web-b"):
            created = client.create(manifest.from_dict({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "top", "labels": {"app": "web"}},
                "spec": {"nodeName": "top-node",
                         "containers": [{"name": "c", "image": "x:1"}]}}))
            servicer.pods[name] = created.pod.metadata.uid

    code, out, _ = ctl(cluster.server, "top", "pods", "-n", "top")
    assert code == 0
    assert out.splitlines() == ["NAME    CPU(cores)   MEMORY(bytes)",
                                "web-a   3m           12Mi",
                                "web-b   5m           24Mi"]
    code, out, _ = ctl(cluster.server, "top", "pod", "web-b", "-n", "top", "--no-headers")
    assert out.split() == ["web-b", "5m", "24Mi"]
    code, out, _ = ctl(cluster.server, "top", "pods", "-A", "-l", "app=web", "--sort-by", "cpu")
    assert [line.split()[:2] for line in out.splitlines()] == [
        ["NAMESPACE", "NAME"], ["top", "web-b"], ["top", "web-a"]]
    code, out, err = ctl(cluster.server, "top", "pod", "nope", "-n", "top")
    assert code == 1 and err.strip() == ('Error from server (NotFound): '
                                         'podmetrics.metrics.k8s.io "top/nope" not found')
    code, out, _ = ctl(cluster.server, "top", "nodes", "top-node")
    assert out.splitlines() == ["NAME       CPU(cores)   CPU%   MEMORY(bytes)   MEMORY%",
                                "top-node   500m         25%    256Mi           25%"]

    code, out, err = ctl(cluster.server, "autoscale", "deployment", "web", "-n", "top",
                         "--min", "2", "--max", "5", "--cpu-percent", "50")
    assert (code, out, err) == (0, "horizontalpodautoscaler.autoscaling/web autoscaled\n", "")
    code, out, _ = ctl(cluster.server, "get", "hpa", "-n", "top")
    header, row = out.splitlines()
    assert header.split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS",
                              "AGE"]
    assert row.split()[:7] == ["web", "Deployment/web", "cpu:", "<unknown>/50%", "2", "5", "0"]
    code, out, _ = ctl(cluster.server, "describe", "hpa", "web", "-n", "top")
    assert "Reference:" in out and "Deployment/web" in out
    assert "resource cpu on pods  (as a percentage of request):  <unknown> / 50%" in out
    code, _, err = ctl(cluster.server, "autoscale", "deployment", "web", "-n", "top",
                       "--max", "5")
    assert code == 1 and "AlreadyExists" in err


def test_hpa_manifest_applies_and_reapplies_unchanged(cluster: Cluster) -> None:
    manifest_text = (Path(__file__).parents[2] / "unit" / "api" / "manifests" /
                     "hpa-php-apache.yaml").read_text()
    spec_only = manifest_text.split("\nstatus:")[0] + "\n"
    with mock.patch("sys.stdin", io.StringIO(spec_only)):
        code, out, err = ctl(cluster.server, "apply", "-f", "-")
    assert (code, out) == (0, "horizontalpodautoscaler.autoscaling/php-apache created\n"), err
    with mock.patch("sys.stdin", io.StringIO(spec_only)):
        code, out, err = ctl(cluster.server, "apply", "-f", "-")
    assert (code, out) == (0, "horizontalpodautoscaler.autoscaling/php-apache unchanged\n"), err
    code, out, _ = ctl(cluster.server, "get", "hpa", "php-apache", "--no-headers")
    assert out.split()[:5] == ["php-apache", "Deployment/php-apache", "cpu:", "<unknown>/50%,",
                               "memory:"]
