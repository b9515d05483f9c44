"""kemuctl's autoscaling pieces, fed objects: `top` number forms and tables as kubectl
prints them, `get hpa` rows, and the HPA that `autoscale` builds."""

from __future__ import annotations

from typing import Any

import pytest

from kemu.api import kinds, manifest
from kemu.api.v1 import core_pb2, metrics_pb2
from kemu.cli.ctl import cmd_autoscale, cmd_expose, cmd_top, describe_autoscaling, rows_autoscaling
from kemu.cli.ctl.describe_base import Writer
from kemu.cli.ctl.errors import CtlError


@pytest.mark.parametrize(("text", "cell"), [
    pytest.param("12345678n", "13m", id="nanocores-round-up"),
    pytest.param("250m", "250m", id="milli"),
    pytest.param("2", "2000m", id="cores"),
    pytest.param("0", "0m", id="idle"),
])
def test_cpu_cells(text: str, cell: str) -> None:
    assert cmd_top.cpu_cell(text) == cell


@pytest.mark.parametrize(("text", "cell"), [
    pytest.param("12288Ki", "12Mi", id="ki"),
    pytest.param("13107199", "12Mi", id="bytes-round-down"),
    pytest.param("1Gi", "1024Mi", id="gi"),
])
def test_memory_cells(text: str, cell: str) -> None:
    assert cmd_top.memory_cell(text) == cell


def pod_metrics(name: str, ns: str, *containers: tuple[str, str, str]
                ) -> metrics_pb2.PodMetrics:
    p = metrics_pb2.PodMetrics()
    p.metadata.name, p.metadata.namespace = name, ns
    for c, cpu, mem in containers:
        p.containers.add(name=c, usage={"cpu": cpu, "memory": mem})
    return p


def test_pod_table_sums_containers_and_sorts() -> None:
    pods = [pod_metrics("web", "a", ("app", "2000000n", "10240Ki"), ("side", "1000000n",
                                                                      "2048Ki")),
            pod_metrics("busy", "b", ("spin", "990000000n", "1024Ki"))]
    assert cmd_top.pod_rows(pods, all_namespaces=False, containers=False) == [
        ["NAME", "CPU(cores)", "MEMORY(bytes)"], ["web", "3m", "12Mi"], ["busy", "990m", "1Mi"]]
    assert cmd_top.pod_rows(pods, all_namespaces=True, containers=False,
                            sort_by="cpu")[1][:2] == ["b", "busy"]
    assert cmd_top.pod_rows(pods[:1], all_namespaces=False, containers=True) == [
        ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"], ["web", "app", "2m", "10Mi"],
        ["web", "side", "1m", "2Mi"]]


def test_node_table_has_percentages_and_unknown_nodes() -> None:
    nodes = []
    for name in ("n1", "n2"):
        n = core_pb2.Node()
        n.metadata.name = name
        n.status.allocatable.update({"cpu": "2", "memory": "1Gi"})
        nodes.append(n)
    m = metrics_pb2.NodeMetrics()
    m.usage.update({"cpu": "500m", "memory": "256Mi"})
    assert cmd_top.node_rows(nodes, {"n1": m}) == [
        ["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"],
        ["n1", "500m", "25%", "256Mi", "25%"],
        ["n2", "<unknown>", "<unknown>", "<unknown>", "<unknown>"]]


def hpa(**spec: Any) -> Any:
    base: dict[str, Any] = {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                            "maxReplicas": 10}
    base.update(spec)
    obj = manifest.from_dict({"apiVersion": "autoscaling/v2",
                              "kind": "HorizontalPodAutoscaler",
                              "metadata": {"name": "web"}, "spec": base})
    return obj.horizontal_pod_autoscaler


CPU50 = {"type": "Resource", "resource": {"name": "cpu", "target": {
    "type": "Utilization", "averageUtilization": 50}}}


def test_hpa_rows_show_targets_like_kubectl() -> None:
    h = hpa(minReplicas=1, metrics=[CPU50])
    assert rows_autoscaling.hpa_row(h, 0, False)[:6] == [
        "web", "Deployment/web", "cpu: <unknown>/50%", "1", "10", "0"]
    cur = h.status.current_metrics.add(type="Resource")
    cur.resource.name = "cpu"
    cur.resource.current.average_utilization = 12
    h.status.current_replicas = 3
    assert rows_autoscaling.hpa_row(h, 0, False)[2:6] == ["cpu: 12%/50%", "1", "10", "3"]
    assert rows_autoscaling.hpa_row(hpa(), 0, False)[2:4] == ["<none>", "<unset>"]
    memory = {"type": "Resource", "resource": {"name": "memory", "target": {
        "type": "AverageValue", "averageValue": "100Mi"}}}
    many = hpa(metrics=[CPU50, memory, CPU50])
    assert rows_autoscaling.format_targets(many.spec.metrics, many.status.current_metrics) == \
        "cpu: <unknown>/50%, memory: <unknown>/100Mi + 1 more..."
    assert rows_autoscaling.COLUMNS["horizontalpodautoscalers"].headers == (
        "NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE")


def test_autoscale_builds_the_hpa_kubectl_would() -> None:
    deploy = kinds.resolve("deployments")
    meta = hpa().metadata
    meta.namespace = "prod"
    obj = cmd_autoscale.build_hpa(deploy, meta, name="", min_pods=2, max_pods=5,
                                  cpu_percent=60)
    h = obj.horizontal_pod_autoscaler
    assert (h.api_version, h.kind, h.metadata.name, h.metadata.namespace) == (
        "autoscaling/v2", "HorizontalPodAutoscaler", "web", "prod")
    assert (h.spec.scale_target_ref.api_version, h.spec.scale_target_ref.kind) == (
        "apps/v1", "Deployment")
    assert (h.spec.min_replicas, h.spec.max_replicas) == (2, 5)
    assert h.spec.metrics[0].resource.target.average_utilization == 60
    bare = cmd_autoscale.build_hpa(deploy, meta, name="other", min_pods=-1, max_pods=5,
                                   cpu_percent=-1).horizontal_pod_autoscaler
    assert bare.metadata.name == "other"
    assert not bare.spec.HasField("min_replicas") and not bare.spec.metrics


@pytest.mark.parametrize(("args", "message"), [
    pytest.param((["deploy"], 1, 3), "no name was specified", id="no-name"),
    pytest.param((["pod/web"], 1, 3), "cannot autoscale a Pod", id="not-scalable"),
    pytest.param((["deploy", "a", "b"], 1, 3), "autoscale takes exactly one resource",
                 id="two-names"),
    pytest.param((["deploy/web"], 1, 0), "--max=MAXPODS is required and must be at least 1, "
                 "max: 0", id="no-max"),
    pytest.param((["deploy/web"], 4, 3), "--max=MAXPODS must be larger or equal to "
                 "--min=MINPODS, max: 3, min: 4", id="max-below-min"),
])
def test_autoscale_refuses_like_kubectl(args: tuple[list[str], int, int], message: str) -> None:
    resources, min_pods, max_pods = args
    with pytest.raises(CtlError, match=message.replace("(", r"\(")):
        cmd_autoscale.check_bounds(min_pods, max_pods)
        cmd_expose.target(resources, verb="autoscale", allowed=cmd_autoscale.SCALABLE)


def test_describe_hpa_reads_as_kubectl() -> None:
    h = hpa(minReplicas=1, metrics=[CPU50], behavior={"scaleDown": {
        "stabilizationWindowSeconds": 60,
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 30}]}})
    cur = h.status.current_metrics.add(type="Resource")
    cur.resource.name = "cpu"
    cur.resource.current.average_utilization = 12
    cur.resource.current.average_value = "24m"
    h.status.current_replicas = h.status.desired_replicas = 2
    h.status.conditions.add(type="AbleToScale", status="True", reason="ReadyForNewScale",
                            message="recommended size matches current size")
    w = Writer()
    describe_autoscaling.describe_hpa(w, None, h, 0)  # type: ignore[arg-type]
    lines = [line.rstrip() for line in w.text().splitlines()]
    assert lines[5:] == [
        "Reference:                                             Deployment/web",
        "Metrics:                                               ( current / target )",
        "  resource cpu on pods  (as a percentage of request):  12% (24m) / 50%",
        "Min replicas:                                          1",
        "Max replicas:                                          10",
        "Behavior:",
        "  Scale Down:",
        "    Stabilization Window: 60 seconds",
        "    Select Policy: Max",
        "    Policies:",
        "      - Type: Pods  Value: 1  Period: 30 seconds",
        # a line without a tab ends a tabwriter column block, in kubectl too
        "Deployment pods:    2 current / 2 desired",
        "Conditions:",
        "  Type         Status  Reason            Message",
        "  ----         ------  ------            -------",
        "  AbleToScale  True    ReadyForNewScale  recommended size matches current size"]
