"""Nodes as kubectl prints them: the STATUS and ROLES cells of `get nodes`, the resource
arithmetic of `describe node` (sums in the first quantity's notation, integer
percentages of allocatable) and the describe layout itself."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from kemu.api import manifest
from kemu.cli.ctl import noderesources as nr
from kemu.cli.ctl.describe_base import Writer
from kemu.cli.ctl.describe_nodes import render_node
from kemu.cli.ctl.rows_core import node_roles, node_row, node_status

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def node(conditions: list[dict[str, str]] | None = None, *, unschedulable: bool = False,
         labels: dict[str, str] | None = None, **status: Any) -> Any:
    return manifest.from_dict({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "n1", "labels": labels or {},
                     "creationTimestamp": "2023-11-14T20:13:20Z"},
        "spec": {"unschedulable": unschedulable},
        "status": {"conditions": conditions or [], **status}}).node


READY = {"type": "Ready", "status": "True"}


@pytest.mark.parametrize(("conditions", "unschedulable", "expected"), [
    pytest.param([READY], False, "Ready", id="ready"),
    pytest.param([{"type": "Ready", "status": "False"}], False, "NotReady", id="not-ready"),
    pytest.param([{"type": "Ready", "status": "Unknown"}], False, "NotReady",
                 id="ready-unknown-is-not-ready"),
    pytest.param([], False, "Unknown", id="no-conditions"),
    pytest.param([{"type": "MemoryPressure", "status": "False"}], False, "Unknown",
                 id="no-ready-condition"),
    pytest.param([READY], True, "Ready,SchedulingDisabled", id="cordoned"),
    pytest.param([], True, "Unknown,SchedulingDisabled", id="cordoned-unknown"),
])
def test_node_status(conditions: list[dict[str, str]], unschedulable: bool,
                     expected: str) -> None:
    assert node_status(node(conditions, unschedulable=unschedulable)) == expected


@pytest.mark.parametrize(("labels", "expected"), [
    pytest.param({}, "<none>", id="none"),
    pytest.param({"node-role.kubernetes.io/control-plane": ""}, "control-plane", id="one"),
    pytest.param({"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/infra": "x"},
                 "infra,worker", id="sorted"),
    pytest.param({"kubernetes.io/role": "master"}, "master", id="legacy-role-label"),
    pytest.param({"node-role.kubernetes.io/": "", "kubernetes.io/role": ""}, "<none>",
                 id="empty-role-names-ignored"),
])
def test_node_roles(labels: dict[str, str], expected: str) -> None:
    assert node_roles(node(labels=labels)) == expected


def test_node_row_wide() -> None:
    n = node([READY], addresses=[{"type": "InternalIP", "address": "10.0.0.2"}],
             nodeInfo={"kubeletVersion": "v1.30.0", "osImage": "Debian GNU/Linux 12"})
    assert node_row(n, NOW, True) == ["n1", "Ready", "<none>", "120m", "v1.30.0", "10.0.0.2",
                                      "<none>", "Debian GNU/Linux 12", "<unknown>",
                                      "<unknown>"]


@pytest.mark.parametrize(("value", "notation", "expected"), [
    pytest.param("0", "decimal", "0", id="zero"),
    pytest.param("0.35", "decimal", "350m", id="millicores"),
    pytest.param("1.5", "decimal", "1500m", id="cores-and-millis"),
    pytest.param("2", "decimal", "2", id="whole-cores"),
    pytest.param("1500000000", "decimal", "1500M", id="decimal-bytes"),
    pytest.param("1000000000", "decimal", "1G", id="decimal-giga"),
    pytest.param("128974848", "decimal", "128974848", id="plain-bytes"),
    pytest.param(str(192 * 2**20), "binary", "192Mi", id="binary"),
    pytest.param(str(2 * 2**30), "binary", "2Gi", id="binary-carries"),
    pytest.param(str(1536 * 2**20), "binary", "1536Mi", id="binary-not-whole-gi"),
    pytest.param("1500", "binary", "1500", id="binary-not-whole-ki"),
    pytest.param("512", "binary", "512", id="binary-below-1024-is-decimal"),
    pytest.param("1000", "exponent", "1e3", id="exponent"),
    pytest.param("0.0000000001", "decimal", "1n", id="below-nano-rounds-up"),
])
def test_format_quantity(value: str, notation: str, expected: str) -> None:
    assert nr.format_quantity(Decimal(value), notation) == expected


def pod_spec(containers: list[dict[str, Any]], **spec: Any) -> Any:
    return manifest.from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                               "spec": {"containers": containers, **spec}}).pod.spec


def res(requests: dict[str, str] | None = None,
        limits: dict[str, str] | None = None, name: str = "c", **more: Any) -> dict[str, Any]:
    return {"name": name, "image": "x", "resources": {"requests": requests or {},
                                                       "limits": limits or {}}, **more}


@pytest.mark.parametrize(("spec", "requests", "limits"), [
    pytest.param(pod_spec([res({"cpu": "100m", "memory": "64Mi"}, {"memory": "128Mi"}),
                           res({"cpu": "250m", "memory": "128Mi"}, name="d")]),
                 {"cpu": "350m", "memory": "192Mi"}, {"memory": "128Mi"},
                 id="containers-add-up"),
    pytest.param(pod_spec([res({"cpu": "1"})], initContainers=[res({"cpu": "2"}, name="i")]),
                 {"cpu": "2"}, {}, id="bigger-init-container-wins"),
    pytest.param(pod_spec([res({"cpu": "1"})],
                          initContainers=[res({"cpu": "500m"}, name="side",
                                              restartPolicy="Always"),
                                          res({"cpu": "1"}, name="i")]),
                 {"cpu": "1500m"}, {}, id="sidecar-adds"),
    pytest.param(pod_spec([res({"cpu": "100m"}, {"cpu": "200m"})],
                          overhead={"cpu": "10m", "memory": "5Mi"}),
                 {"cpu": "110m", "memory": "5Mi"}, {"cpu": "210m"},
                 id="overhead-adds-to-set-limits-only"),
    pytest.param(pod_spec([res({"cpu": "100m"})], resources={"requests": {"cpu": "1"}}),
                 {"cpu": "1"}, {}, id="pod-level-resources-replace"),
    pytest.param(pod_spec([res()]), {}, {}, id="best-effort"),
])
def test_pod_requests_and_limits(spec: Any, requests: dict[str, str],
                                 limits: dict[str, str]) -> None:
    req, lim = nr.pod_requests_and_limits(spec)
    assert {k: str(v) for k, v in req.items()} == requests
    assert {k: str(v) for k, v in lim.items()} == limits


ALLOCATABLE = nr.parse_list({"cpu": "2", "memory": "1Gi", "pods": "110"})


@pytest.mark.parametrize(("name", "amount", "expected"), [
    pytest.param("cpu", "100m", "100m (5%)", id="cpu"),
    pytest.param("cpu", "1999m", "1999m (99%)", id="cpu-truncates"),
    pytest.param("cpu", "3", "3 (150%)", id="cpu-overcommitted"),
    pytest.param("memory", "70Mi", "70Mi (6%)", id="memory"),
    pytest.param("memory", "512Mi", "512Mi (50%)", id="memory-half"),
    pytest.param("ephemeral-storage", "1Gi", "1Gi (0%)", id="nothing-allocatable"),
])
def test_cell_percentages(name: str, amount: str, expected: str) -> None:
    assert nr.cell(name, nr.Amount.parse(amount), ALLOCATABLE) == expected


def test_cell_of_nothing() -> None:
    assert nr.cell("cpu", None, ALLOCATABLE) == "0 (0%)"


def test_totals_keep_the_first_notation() -> None:
    specs = [pod_spec([res({"cpu": "1", "memory": "1G"})]),
             pod_spec([res({"cpu": "500m", "memory": "500M"})])]
    req, _ = nr.total_requests_and_limits(specs)
    assert (str(req["cpu"]), str(req["memory"])) == ("1500m", "1500M")


def running_pod(name: str, namespace: str, requests: dict[str, str],
                limits: dict[str, str]) -> Any:
    return manifest.from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace,
                     "creationTimestamp": "2023-11-14T22:03:20Z"},
        "spec": {"containers": [res(requests, limits)]}}).pod


def test_describe_node_layout() -> None:
    n = node([{"type": "Ready", "status": "True", "reason": "KubeletReady",
               "message": "ready", "lastHeartbeatTime": "2023-11-14T22:13:00Z",
               "lastTransitionTime": "2023-11-14T20:13:20Z"}],
             labels={"node-role.kubernetes.io/worker": ""},
             capacity={"cpu": "2", "memory": "1Gi", "pods": "110"},
             allocatable={"cpu": "2", "memory": "1Gi", "pods": "110",
                          "example.com/gpu": "1"},
             addresses=[{"type": "InternalIP", "address": "10.0.0.2"}],
             nodeInfo={"kubeletVersion": "v1.30.0"})
    lease = manifest.from_dict({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                "metadata": {"name": "n1"},
                                "spec": {"holderIdentity": "n1",
                                         "renewTime": "2023-11-14T22:13:10Z"}}).lease
    pods = [running_pod("web", "default", {"cpu": "100m", "memory": "64Mi"},
                        {"memory": "128Mi"}),
            running_pod("db", "data", {"cpu": "500m"}, {"cpu": "1"})]
    w = Writer()
    render_node(w, n, lease, pods, NOW)
    lines = w.text().splitlines()
    text = "\n".join(lines)
    assert lines[0].split() == ["Name:", "n1"]
    assert lines[1].split() == ["Roles:", "worker"]
    assert "Unschedulable:      false" in text
    i = lines.index("Lease:")
    assert lines[i + 1].split() == ["HolderIdentity:", "n1"]
    assert lines[i + 2].split() == ["AcquireTime:", "<unset>"]
    assert lines[i + 3].strip().startswith("RenewTime:")
    i = lines.index("Conditions:")
    assert lines[i + 1].split() == ["Type", "Status", "LastHeartbeatTime", "LastTransitionTime",
                                    "Reason", "Message"]
    assert lines[i + 3].split()[:2] == ["Ready", "True"]
    assert lines[i + 3].split()[-2:] == ["KubeletReady", "ready"]
    i = lines.index("Non-terminated Pods:          (2 in total)")
    assert lines[i + 1].split() == ["Namespace", "Name", "CPU", "Requests", "CPU", "Limits",
                                    "Memory", "Requests", "Memory", "Limits", "Age"]
    assert lines[i + 3].split() == ["default", "web", "100m", "(5%)", "0", "(0%)", "64Mi",
                                    "(6%)", "128Mi", "(12%)", "10m"]
    assert lines[i + 4].split() == ["data", "db", "500m", "(25%)", "1", "(50%)", "0", "(0%)",
                                    "0", "(0%)", "10m"]
    i = lines.index("Allocated resources:")
    assert lines[i + 1] == "  (Total limits may be over 100 percent, i.e., overcommitted.)"
    assert [line.split() for line in lines[i + 2:i + 8]] == [
        ["Resource", "Requests", "Limits"], ["--------", "--------", "------"],
        ["cpu", "600m", "(30%)", "1", "(50%)"], ["memory", "64Mi", "(6%)", "128Mi", "(12%)"],
        ["ephemeral-storage", "0", "(0%)", "0", "(0%)"], ["example.com/gpu", "0", "0"]]


def test_describe_node_columns_line_up_as_kubectl() -> None:
    """The empty cell after Name and the trailing spaces of condition cells are kubectl's
    and change the spacing; check the exact text of two rows."""
    n = node([{"type": "Ready", "status": "True", "reason": "R", "message": "m",
               "lastHeartbeatTime": "2023-11-14T22:13:00Z",
               "lastTransitionTime": "2023-11-14T22:13:00Z"}],
             allocatable={"cpu": "1", "memory": "1Gi"})
    w = Writer()
    render_node(w, n, None, [running_pod("p", "ns", {"cpu": "1"}, {})], NOW)
    lines = w.text().splitlines()
    head = next(line for line in lines if line.strip().startswith("Type"))
    assert head.startswith("  Type    Status  LastHeartbeatTime")
    # Column 0 is shared with the whole block above (System Info's longest label, 28).
    row = next(line for line in lines if line.strip().startswith("ns "))
    assert row == "  ns" + " " * 26 + "p       1 (100%)      0 (0%)      0 (0%)           " \
                  "0 (0%)         10m"
