"""get against a real apiserver: columns per kind, selectors, -A, output formats,
NotFound and empty results worded as kubectl words them."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.integration.kemuctl.conftest import Kemuctl, unique

pytestmark = pytest.mark.integration

TEMPLATE = ("  selector: {matchLabels: {app: x}}\n  template:\n    metadata: {labels: {app: x}}\n"
            "    spec: {containers: [{name: c, image: busybox}]}\n")
MANIFESTS = {
    "pods": "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n"
            "spec: {containers: [{name: c, image: busybox}]}\n",
    "services": "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n"
                "spec: {ports: [{port: 80}]}\n",
    "deployments": f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: x}}\nspec:\n"
                   f"{TEMPLATE}",
    "replicasets": f"apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {{name: x}}\nspec:\n"
                   f"{TEMPLATE}",
    "daemonsets": f"apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {{name: x}}\nspec:\n"
                  f"{TEMPLATE}",
    "statefulsets": f"apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: x}}\nspec:\n"
                    f"  serviceName: x\n{TEMPLATE}",
    "replicationcontrollers": "apiVersion: v1\nkind: ReplicationController\n"
                              "metadata: {name: x}\nspec:\n  selector: {app: x}\n  template:\n"
                              "    metadata: {labels: {app: x}}\n"
                              "    spec: {containers: [{name: c, image: busybox}]}\n",
    "jobs": "apiVersion: batch/v1\nkind: Job\nmetadata: {name: x}\nspec:\n  template:\n"
            "    spec: {restartPolicy: Never, containers: [{name: c, image: busybox}]}\n",
    "cronjobs": "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: x}\nspec:\n"
                "  schedule: '*/5 * * * *'\n  jobTemplate:\n    spec:\n      template:\n"
                "        spec: {restartPolicy: Never, containers: [{name: c, image: busybox}]}\n",
    "configmaps": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n",
    "secrets": "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringData: {a: b}\n",
    "endpoints": "apiVersion: v1\nkind: Endpoints\nmetadata: {name: x}\nsubsets:\n"
                 "- addresses: [{ip: 10.244.1.5}]\n  ports: [{port: 8080}]\n",
    "events": "apiVersion: v1\nkind: Event\nmetadata: {name: x}\n"
              "involvedObject: {kind: Pod, name: x}\nreason: Tested\nmessage: hello\n"
              "type: Normal\n",
    "persistentvolumeclaims": "apiVersion: v1\nkind: PersistentVolumeClaim\n"
                              "metadata: {name: x}\nspec:\n  accessModes: [ReadWriteOnce]\n"
                              "  resources: {requests: {storage: 1Gi}}\n",
    "ingresses": "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: x}\n"
                 "spec:\n  rules: [{host: x.example}]\n",
    "leases": "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: x}\n"
              "spec: {holderIdentity: me}\n",
}
COLUMNS = {
    "pods": (["NAME", "READY", "STATUS", "RESTARTS", "AGE"], ["x", "0/1", "Pending", "0"]),
    "services": (["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
                 ["x", "ClusterIP"]),
    "deployments": (["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], ["x", "0/1", "0", "0"]),
    "replicasets": (["NAME", "DESIRED", "CURRENT", "READY", "AGE"], ["x", "1", "0", "0"]),
    "daemonsets": (["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE",
                    "SELECTOR", "AGE"], ["x", "0", "0", "0", "0", "0", "<none>"]),
    "statefulsets": (["NAME", "READY", "AGE"], ["x", "0/1"]),
    "replicationcontrollers": (["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
                               ["x", "1", "0", "0"]),
    "jobs": (["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"], ["x", "Running", "0/1"]),
    "cronjobs": (["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"],
                 ["x", "*/5", "*", "*", "*", "*", "<none>"]),
    "configmaps": (["NAME", "DATA", "AGE"], ["x", "1"]),
    "secrets": (["NAME", "TYPE", "DATA", "AGE"], ["x", "Opaque", "1"]),
    "endpoints": (["NAME", "ENDPOINTS", "AGE"], ["x", "10.244.1.5:8080"]),
    "events": (["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
               ["<unknown>", "Normal", "Tested", "pod/x", "hello"]),
    "persistentvolumeclaims": (["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES",
                                "STORAGECLASS", "AGE"], ["x", "Pending", "<none>"]),
    "ingresses": (["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"],
                  ["x", "<none>", "x.example", "80"]),
    "leases": (["NAME", "HOLDER", "AGE"], ["x", "me"]),
}


@pytest.mark.parametrize("plural", [pytest.param(p, id=p) for p in MANIFESTS])
def test_columns_per_kind(ctl: Kemuctl, ns: str, plural: str) -> None:
    ctl.ok("apply", "-n", ns, "-f", "-", stdin=MANIFESTS[plural])
    lines = ctl.ok("get", plural, "-n", ns).lines
    header, cells = COLUMNS[plural]
    assert lines[0].split() == header
    row = lines[1].split()
    assert len(row) >= len(cells), lines
    assert all(want in ("*", got) for want, got in zip(cells, row, strict=False)), lines


def test_wide_columns(ctl: Kemuctl, ns: str) -> None:
    ctl.ok("apply", "-n", ns, "-f", "-", stdin=MANIFESTS["pods"] + "---\n"
           + MANIFESTS["deployments"] + "---\n" + MANIFESTS["services"])
    assert ctl.ok("get", "pods", "-n", ns, "-o", "wide").lines[0].split() == [
        "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE",
        "READINESS", "GATES"]
    deploy = ctl.ok("get", "deploy", "-n", ns, "-o", "wide").lines
    assert deploy[0].split()[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert deploy[1].split()[-3:] == ["c", "busybox", "app=x"]
    assert ctl.ok("get", "svc", "-n", ns, "-o", "wide").lines[0].split()[-1] == "SELECTOR"


def apply_labelled(ctl: Kemuctl, ns: str) -> None:
    docs = [f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"
            f"  labels: {{tier: {tier}}}\n" for name, tier in
            (("front", "web"), ("back", "db"), ("other", "web"))]
    ctl.ok("apply", "-n", ns, "-f", "-", stdin="---\n".join(docs))


@pytest.mark.parametrize(("flags", "names"), [
    pytest.param(["-l", "tier=web"], ["front", "other"], id="label-equals"),
    pytest.param(["-l", "tier!=web"], ["back"], id="label-not-equals"),
    pytest.param(["-l", "tier in (db,cache)"], ["back"], id="label-set"),
    pytest.param(["--field-selector", "metadata.name=back"], ["back"], id="field"),
    pytest.param(["--field-selector", "metadata.name!=back", "-l", "tier=web"],
                 ["front", "other"], id="field-and-label"),
])
def test_selectors(ctl: Kemuctl, ns: str, flags: list[str], names: list[str]) -> None:
    apply_labelled(ctl, ns)
    out = ctl.ok("get", "cm", "-n", ns, "-o", "name", *flags).out
    assert sorted(out.split()) == sorted(f"configmap/{n}" for n in names)


def test_all_namespaces_adds_namespace_column(ctl: Kemuctl) -> None:
    first, second = unique("a"), unique("b")
    for name in (first, second):
        ctl.ok("create", "ns", name)
        ctl.ok("create", "cm", "shared", "-n", name, "--from-literal=k=v")
    lines = ctl.ok("get", "cm", "-A", "--field-selector", "metadata.name=shared").lines
    assert lines[0].split() == ["NAMESPACE", "NAME", "DATA", "AGE"]
    rows = {tuple(line.split()[:2]) for line in lines[1:]}
    assert {(first, "shared"), (second, "shared")} <= rows


def test_several_types_are_prefixed_and_separated(ctl: Kemuctl, ns: str) -> None:
    ctl.ok("apply", "-n", ns, "-f", "-", stdin=MANIFESTS["deployments"] + "---\n"
           + MANIFESTS["services"])
    out = ctl.ok("get", "deploy,svc", "-n", ns).out
    deploy, svc = out.split("\n\n")
    assert deploy.splitlines()[1].startswith("deployment.apps/x ")
    assert svc.splitlines()[1].startswith("service/x ")
    everything = ctl.ok("get", "all", "-n", ns).out
    assert "deployment.apps/x" in everything and "service/x" in everything


def test_output_formats(ctl: Kemuctl, ns: str) -> None:
    ctl.ok("apply", "-n", ns, "-f", "-", stdin=MANIFESTS["configmaps"])
    assert ctl.ok("get", "cm", "x", "-n", ns, "-o", "name").out == "configmap/x\n"
    doc = json.loads(ctl.ok("get", "cm", "x", "-n", ns, "-o", "json").out)
    assert doc["data"] == {"a": "b"} and doc["metadata"]["namespace"] == ns
    listed = yaml.safe_load(ctl.ok("get", "cm", "-n", ns, "-o", "yaml").out)
    assert listed["kind"] == "List" and [i["metadata"]["name"] for i in listed["items"]] == ["x"]
    assert ctl.ok("get", "cm", "-n", ns, "-o", "jsonpath={.items[*].data.a}").out == "b"


def test_labels_columns(ctl: Kemuctl, ns: str) -> None:
    apply_labelled(ctl, ns)
    lines = ctl.ok("get", "cm", "front", "-n", ns, "--show-labels", "-L", "tier").lines
    assert lines[0].split() == ["NAME", "DATA", "AGE", "TIER", "LABELS"]
    assert lines[1].split()[-2:] == ["web", "tier=web"]


def test_not_found_and_partial_results(ctl: Kemuctl, ns: str) -> None:
    ctl.ok("apply", "-n", ns, "-f", "-", stdin=MANIFESTS["configmaps"])
    result = ctl("get", "cm", "x", "nope", "-n", ns)
    assert result.code == 1
    assert [line.split()[0] for line in result.lines] == ["NAME", "x"]
    assert result.err_lines == ['Error from server (NotFound): configmaps "nope" not found']
    quiet = ctl("get", "cm", "nope", "-n", ns, "--ignore-not-found")
    assert (quiet.code, quiet.out, quiet.err) == (0, "", "")


def test_nothing_found(ctl: Kemuctl, ns: str) -> None:
    result = ctl("get", "pods", "-n", ns)
    assert (result.code, result.out) == (0, "")
    assert result.err_lines == [f"No resources found in {ns} namespace."]


@pytest.mark.parametrize("short", [pytest.param(s, id=s) for s in (
    "po", "svc", "deploy", "rs", "rc", "ds", "sts", "cm", "ns", "no", "ep", "cj", "pvc", "ing")])
def test_short_names(ctl: Kemuctl, short: str) -> None:
    result = ctl("get", short, "-n", "kube-public")
    assert result.code == 0, result.err


def test_cluster_scoped_kinds_print_no_namespace(ctl: Kemuctl) -> None:
    lines = ctl.ok("get", "ns", "-A").lines
    assert lines[0].split() == ["NAME", "STATUS", "AGE"]
    assert any(line.split()[:2] == ["default", "Active"] for line in lines)
