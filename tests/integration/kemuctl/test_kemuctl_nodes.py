"""Nodes through kemuctl against a real apiserver: `get nodes`, `describe node` (lease,
conditions, the pods and what they request of the node), cordon/uncordon, and drain: its
refusals, its warnings, and a successful drain while a thread plays the node agent that
finishes terminating pods (without it a bound pod stays Terminating forever)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from kemu.api import manifest
from kemu.api.v1 import api_pb2
from kemu.client import AlreadyExists, Client, NotFound
from tests.integration.kemuctl.conftest import RUNNING, Kemuctl, make_node, make_pod, unique

pytestmark = pytest.mark.integration


@pytest.fixture
def node(api: Client) -> str:
    name = unique("n")
    make_node(api, name, labels={"node-role.kubernetes.io/worker": ""},
              capacity={"cpu": "2", "memory": "4Gi", "pods": "110"},
              allocatable={"cpu": "2", "memory": "4Gi", "pods": "110"})
    return name


def test_get_nodes(ctl: Kemuctl, api: Client, node: str) -> None:
    sick, blank = unique("sick"), unique("blank")
    make_node(api, sick, ready="False")
    api.create(manifest.from_dict({"apiVersion": "v1", "kind": "Node",
                                   "metadata": {"name": blank}}))
    rows = [line.split() for line in ctl.ok("get", "nodes", node, sick, blank).lines]
    assert rows[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert [r[:3] + r[4:] for r in rows[1:]] == [
        [node, "Ready", "worker", "v1.30.0-kemu"], [sick, "NotReady", "<none>", "v1.30.0-kemu"],
        [blank, "Unknown", "<none>"]]
    ctl.ok("cordon", node)
    wide = [line.split() for line in ctl.ok("get", "no", node, "-o", "wide").lines]
    assert wide[0][5:] == ["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION",
                           "CONTAINER-RUNTIME"]
    assert wide[1][:3] == [node, "Ready,SchedulingDisabled", "worker"]
    assert wide[1][5:] == ["127.0.0.1", "<none>", "Debian", "GNU/Linux", "12", "6.1.0",
                           "docker://24.0.7"]


def test_describe_node(ctl: Kemuctl, ns: str, api: Client, node: str) -> None:
    with contextlib.suppress(AlreadyExists):  # another test made it first
        api.create(manifest.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": "kube-node-lease"}}))
    api.create(manifest.from_dict({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": node, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": 40,
                 "renewTime": "2024-01-02T03:04:05.000000Z"}}))
    make_pod(api, ns, "web", node=node, status=RUNNING, spec={"containers": [{
        "name": "c", "image": "x", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                                                 "limits": {"memory": "2Gi"}}}]})
    make_pod(api, ns, "done", node=node, status={"phase": "Succeeded"},
             spec={"containers": [{"name": "c", "image": "x",
                                   "resources": {"requests": {"cpu": "1"}}}]})
    lines = ctl.ok("describe", "node", node).lines
    text = "\n".join(lines)
    assert lines[0].split() == ["Name:", node]
    assert lines[1].split() == ["Roles:", "worker"]
    assert "Unschedulable:      false" in text
    i = lines.index("Lease:")
    assert lines[i + 1].split() == ["HolderIdentity:", node]
    assert lines[i + 3].split()[0] == "RenewTime:" and "2024" in lines[i + 3]
    i = lines.index("Conditions:")
    assert lines[i + 3].split()[:2] == ["Ready", "True"]
    assert lines[i + 3].endswith("KubeletReady   kemu agent is posting ready status")
    assert any(line.split() == ["InternalIP:", "127.0.0.1"] for line in lines)
    i = lines.index("Non-terminated Pods:          (1 in total)")
    assert lines[i + 3].split() == [ns, "web", "500m", "(25%)", "0", "(0%)", "1Gi", "(25%)",
                                    "2Gi", "(50%)", lines[i + 3].split()[-1]]
    i = lines.index("Allocated resources:")
    assert [line.split() for line in lines[i + 4:i + 7]] == [
        ["cpu", "500m", "(25%)", "0", "(0%)"], ["memory", "1Gi", "(25%)", "2Gi", "(50%)"],
        ["ephemeral-storage", "0", "(0%)", "0", "(0%)"]]
    assert lines[-1].split() == ["Events:", "<none>"]


def test_cordon_and_uncordon(ctl: Kemuctl, api: Client, node: str) -> None:
    assert ctl.ok("cordon", node).lines == [f"node/{node} cordoned"]
    assert api.get("nodes", node).node.spec.unschedulable
    assert ctl.ok("cordon", f"node/{node}").lines == [f"node/{node} already cordoned"]
    assert ctl.ok("uncordon", node).lines == [f"node/{node} uncordoned"]
    assert not api.get("nodes", node).node.spec.unschedulable
    assert ctl.ok("uncordon", node).lines == [f"node/{node} already uncordoned"]
    assert ctl.ok("cordon", node, "--dry-run=client").lines == [f"node/{node} cordoned (dry run)"]
    assert not api.get("nodes", node).node.spec.unschedulable
    assert ctl("cordon", "nope").err_lines == ['Error from server (NotFound): nodes "nope" not '
                                               'found']


def owned(kind: str, name: str) -> dict[str, Any]:
    return {"ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": name,
                                 "uid": "u-1", "controller": True}]}


@pytest.fixture
def workloads(ctl: Kemuctl, ns: str, api: Client, node: str) -> str:
    """On `node`: a DaemonSet pod, a bare pod, a ReplicaSet pod with an emptyDir, and a
    plain ReplicaSet pod."""
    ctl.ok("apply", "-n", ns, "-f", "-", stdin=(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\nspec:\n"
        "  selector: {matchLabels: {app: agent}}\n  template:\n"
        "    metadata: {labels: {app: agent}}\n"
        "    spec: {containers: [{name: c, image: x}]}\n"))
    make_pod(api, ns, "agent-x", node=node, status=RUNNING, **owned("DaemonSet", "agent"))
    make_pod(api, ns, "bare", node=node, status=RUNNING)
    make_pod(api, ns, "cache", node=node, status=RUNNING, **owned("ReplicaSet", "web-1"),
             spec={"volumes": [{"name": "scratch", "emptyDir": {}}]})
    make_pod(api, ns, "web", node=node, status=RUNNING, **owned("ReplicaSet", "web-1"))
    return ns


def test_drain_refuses_and_says_why(ctl: Kemuctl, workloads: str, api: Client,
                                    node: str) -> None:
    ns = workloads
    result = ctl("drain", node)
    assert result.code == 1
    assert result.lines == [f"node/{node} cordoned"]
    problems = [
        f"cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): {ns}/agent-x",
        f"cannot delete Pods declare no controller (use --force to override): {ns}/bare",
        f"cannot delete Pods with local storage (use --delete-emptydir-data to override): "
        f"{ns}/cache"]
    assert result.err_lines == [
        f'error: unable to drain node "{node}" due to error: [{", ".join(problems)}], '
        "continuing command...",
        "There are pending nodes to be drained:", f" {node}", *problems]
    assert api.get("pods", "web", ns).pod.metadata.deletion_timestamp.seconds == 0


class FinishTerminations:
    """Plays the node agent: deletes with grace 0 every pod on the node once it is marked
    for deletion, as an agent does after stopping its containers."""

    def __init__(self, client: Client, node: str) -> None:
        self.client, self.node = client, node
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FinishTerminations:
        version = self.client.list("pods", field_selector=f"spec.nodeName={self.node}"
                                   ).resource_version
        self.version = version
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)

    def _events(self) -> Iterator[api_pb2.WatchEvent]:
        while not self.stop.is_set():
            yield from self.client.watch("pods", field_selector=f"spec.nodeName={self.node}",
                                         resource_version=self.version, timeout=1)

    def _run(self) -> None:
        for ev in self._events():
            self.version = ev.object.pod.metadata.resource_version
            pod = ev.object.pod
            if ev.type == api_pb2.WatchEvent.MODIFIED and pod.metadata.HasField(
                    "deletion_timestamp"):
                with contextlib.suppress(NotFound):
                    self.client.delete("pods", pod.metadata.name, pod.metadata.namespace,
                                       grace_period_seconds=0)


def test_drain(ctl: Kemuctl, workloads: str, api: Client, node: str) -> None:
    ns = workloads
    with FinishTerminations(api, node):
        result = ctl("drain", node, "--ignore-daemonsets", "--force", "--delete-emptydir-data",
                     "--timeout=60s")
    assert result.code == 0, result.err
    assert result.err_lines == [f"Warning: ignoring DaemonSet-managed Pods: {ns}/agent-x; "
                                f"deleting Pods that declare no controller: {ns}/bare"]
    assert result.lines[0] == f"node/{node} cordoned"
    assert result.lines[-1] == f"node/{node} drained"
    assert sorted(result.lines[1:-1]) == sorted(
        [f"evicting pod {ns}/{p}" for p in ("bare", "cache", "web")]
        + [f"pod/{p} evicted" for p in ("bare", "cache", "web")])
    left = [o.pod.metadata.name for o in api.list("pods", ns).items]
    assert left == ["agent-x"]
    assert api.get("nodes", node).node.spec.unschedulable


def test_drain_gives_up_at_the_timeout(ctl: Kemuctl, ns: str, api: Client, node: str) -> None:
    make_pod(api, ns, "stays", node=node, status=RUNNING, **owned("ReplicaSet", "web-1"))
    make_pod(api, ns, "pending", **owned("ReplicaSet", "web-1"))  # not on the node
    result = ctl("drain", node, "--timeout=1s")
    assert result.code == 1
    assert result.lines == [f"node/{node} cordoned", f"evicting pod {ns}/stays"]
    waited = (f'error when waiting for pod "stays" in namespace "{ns}" to terminate: global '
              "timeout reached: 1s")
    assert result.err_lines == [
        f'There are pending pods in node "{node}" when an error occurred: {waited}',
        "pod/stays",
        f'error: unable to drain node "{node}" due to error: {waited}, continuing command...',
        "There are pending nodes to be drained:", f" {node}", waited]
    assert api.get("pods", "stays", ns).pod.metadata.HasField("deletion_timestamp")
