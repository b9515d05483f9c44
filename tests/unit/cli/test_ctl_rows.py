"""Each kind's `get` row: the cells kubectl prints, from typed objects and a fixed clock."""

from __future__ import annotations

from typing import Any

import pytest

from kemu.api import manifest, objects
from kemu.cli.ctl.table import TableOptions, columns_for, headers, row

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
CREATED = "2023-11-14T22:08:20Z"  # five minutes earlier


def obj(api_version: str, kind: str, body: dict[str, Any], name: str = "x",
        namespace: str = "default", **meta: Any) -> Any:
    m = {"name": name, "creationTimestamp": CREATED, **meta}
    if namespace:
        m["namespace"] = namespace
    return manifest.from_dict({"apiVersion": api_version, "kind": kind, "metadata": m, **body})


def cells(o: Any, wide: bool = False) -> list[str]:
    return row(o, TableOptions(wide=wide), NOW)


TEMPLATE: dict[str, Any] = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1"},
                                    {"name": "side", "image": "busybox"}]}}


@pytest.mark.parametrize(("o", "wide", "expected"), [
    pytest.param(obj("v1", "Service", {"spec": {
        "type": "NodePort", "clusterIP": "10.96.0.12", "clusterIPs": ["10.96.0.12"],
        "selector": {"app": "web"},
        "ports": [{"port": 80, "nodePort": 31514, "protocol": "TCP"}]}}), True,
        ["x", "NodePort", "10.96.0.12", "<none>", "80:31514/TCP", "5m", "app=web"],
        id="service-nodeport-wide"),
    pytest.param(obj("v1", "Service", {"spec": {
        "type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"],
        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}}), False,
        ["x", "ClusterIP", "None", "<none>", "53/UDP,53/TCP", "5m"], id="service-headless"),
    pytest.param(obj("v1", "Service", {"spec": {
        "type": "LoadBalancer", "clusterIP": "10.96.0.9",
        "ports": [{"port": 443, "nodePort": 30443, "protocol": "TCP"}]}}), False,
        ["x", "LoadBalancer", "10.96.0.9", "<pending>", "443:30443/TCP", "5m"],
        id="service-loadbalancer-pending"),
    pytest.param(obj("v1", "Service", {
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.9", "externalIPs": ["1.2.3.4"],
                 "ports": [{"port": 80, "protocol": "TCP"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}]}}}), False,
        ["x", "LoadBalancer", "10.96.0.9", "5.6.7.8,1.2.3.4", "80/TCP", "5m"],
        id="service-loadbalancer-ingress-and-external-ips"),
    pytest.param(obj("v1", "Service", {"spec": {"type": "ExternalName",
                                                "externalName": "db.example.com"}}), False,
                 ["x", "ExternalName", "<none>", "db.example.com", "<none>", "5m"],
                 id="service-externalname"),
    pytest.param(obj("apps/v1", "Deployment", {
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": TEMPLATE},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}), True,
        ["x", "2/3", "3", "2", "5m", "web,side", "nginx:1,busybox", "app=web"],
        id="deployment-wide"),
    pytest.param(obj("apps/v1", "ReplicaSet", {
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["b", "a"]}]}, "template": TEMPLATE},
        "status": {"replicas": 2, "readyReplicas": 1}}), True,
        ["x", "2", "2", "1", "5m", "web,side", "nginx:1,busybox", "app=web,tier in (a,b)"],
        id="replicaset-wide-set-selector"),
    pytest.param(obj("apps/v1", "DaemonSet", {
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {**TEMPLATE, "spec": {**TEMPLATE["spec"],
                                                   "nodeSelector": {"disk": "ssd"}}}},
        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                   "updatedNumberScheduled": 3, "numberAvailable": 2}}), False,
        ["x", "3", "3", "2", "3", "2", "disk=ssd", "5m"], id="daemonset"),
    pytest.param(obj("apps/v1", "StatefulSet", {
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": TEMPLATE, "serviceName": "web"},
        "status": {"readyReplicas": 1}}), False, ["x", "1/3", "5m"], id="statefulset"),
    pytest.param(obj("batch/v1", "Job", {
        "spec": {"completions": 3, "template": TEMPLATE},
        "status": {"succeeded": 3, "startTime": "2023-11-14T22:09:00Z",
                   "completionTime": "2023-11-14T22:10:05Z",
                   "conditions": [{"type": "Complete", "status": "True"}]}}), False,
        ["x", "Complete", "3/3", "65s", "5m"], id="job-complete"),
    pytest.param(obj("batch/v1", "Job", {
        "spec": {"parallelism": 2, "template": TEMPLATE},
        "status": {"active": 2, "startTime": "2023-11-14T22:12:20Z"}}), False,
        ["x", "Running", "0/1 of 2", "60s", "5m"], id="job-running-parallel"),
    pytest.param(obj("batch/v1", "Job", {
        "spec": {"suspend": True, "template": TEMPLATE},
        "status": {"conditions": [{"type": "Suspended", "status": "True"}]}}), False,
        ["x", "Suspended", "0/1", "", "5m"], id="job-suspended"),
    pytest.param(obj("batch/v1", "CronJob", {
        "spec": {"schedule": "*/5 * * * *", "suspend": False,
                 "jobTemplate": {"spec": {"template": TEMPLATE}}},
        "status": {"lastScheduleTime": "2023-11-14T22:10:00Z",
                   "active": [{"name": "x-1"}]}}), False,
        ["x", "*/5 * * * *", "<none>", "False", "1", "3m20s", "5m"], id="cronjob"),
    pytest.param(obj("v1", "ConfigMap", {"data": {"a": "1", "b": "2"}}), False,
                 ["x", "2", "5m"], id="configmap"),
    pytest.param(obj("v1", "Secret", {"type": "kubernetes.io/tls",
                                      "data": {"tls.crt": "YQ==", "tls.key": "Yg=="}}), False,
                 ["x", "kubernetes.io/tls", "2", "5m"], id="secret"),
    pytest.param(obj("v1", "Namespace", {"status": {"phase": "Active"}}, namespace=""), False,
                 ["x", "Active", "5m"], id="namespace"),
    pytest.param(obj("v1", "Node", {
        "metadata": {"name": "n1", "creationTimestamp": CREATED, "labels": {
            "node-role.kubernetes.io/control-plane": ""}},
        "spec": {"unschedulable": True},
        "status": {"conditions": [{"type": "Ready", "status": "False"}],
                   "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}],
                   "nodeInfo": {"kubeletVersion": "v0.1.0", "osImage": "Debian",
                                "kernelVersion": "6.1", "containerRuntimeVersion": "docker://24"}}},
        namespace=""), True,
        ["n1", "NotReady,SchedulingDisabled", "control-plane", "5m", "v0.1.0", "10.0.0.5",
         "<none>", "Debian", "6.1", "docker://24"], id="node-wide"),
    pytest.param(obj("v1", "Endpoints", {"subsets": [
        {"addresses": [{"ip": f"10.244.0.{i}"} for i in range(1, 6)],
         "ports": [{"port": 8080}]}]}), False,
        ["x", "10.244.0.1:8080,10.244.0.2:8080,10.244.0.3:8080 + 2 more...", "5m"],
        id="endpoints-more"),
    pytest.param(obj("v1", "Endpoints", {}), False, ["x", "<none>", "5m"], id="endpoints-empty"),
    pytest.param(obj("v1", "Event", {
        "involvedObject": {"kind": "Pod", "name": "web-1"}, "type": "Warning",
        "reason": "BackOff", "message": "Back-off restarting failed container ", "count": 3,
        "firstTimestamp": "2023-11-14T22:03:20Z", "lastTimestamp": "2023-11-14T22:12:20Z"}),
        False, ["60s (x3 over 10m)", "Warning", "BackOff", "pod/web-1",
                "Back-off restarting failed container"], id="event-repeated"),
    pytest.param(obj("v1", "PersistentVolumeClaim", {
        "spec": {"volumeName": "pv-1", "storageClassName": "local",
                 "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
                   "capacity": {"storage": "2Gi"}}}), False,
        ["x", "Bound", "pv-1", "2Gi", "RWO,ROX", "local", "5m"], id="pvc-bound"),
    pytest.param(obj("networking.k8s.io/v1", "Ingress", {
        "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example"]}],
                 "rules": [{"host": "a.example"}, {"host": "b.example"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}]}}}), False,
        ["x", "nginx", "a.example,b.example", "10.0.0.9", "80, 443", "5m"], id="ingress"),
    pytest.param(obj("coordination.k8s.io/v1", "Lease", {"spec": {"holderIdentity": "node-1"}}),
                 False, ["x", "node-1", "5m"], id="lease"),
])
def test_row(o: Any, wide: bool, expected: list[str]) -> None:
    assert cells(o, wide) == expected
    assert len(headers(objects.kind_of(o), TableOptions(wide=wide))) == len(expected)


@pytest.mark.parametrize(("plural", "expected"), [
    pytest.param("pods", "NAME READY STATUS RESTARTS AGE", id="pods"),
    pytest.param("services", "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE", id="services"),
    pytest.param("deployments", "NAME READY UP-TO-DATE AVAILABLE AGE", id="deployments"),
    pytest.param("replicasets", "NAME DESIRED CURRENT READY AGE", id="replicasets"),
    pytest.param("replicationcontrollers", "NAME DESIRED CURRENT READY AGE", id="rc"),
    pytest.param("daemonsets", "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE",
                 id="daemonsets"),
    pytest.param("statefulsets", "NAME READY AGE", id="statefulsets"),
    pytest.param("jobs", "NAME STATUS COMPLETIONS DURATION AGE", id="jobs"),
    pytest.param("cronjobs", "NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE",
                 id="cronjobs"),
    pytest.param("configmaps", "NAME DATA AGE", id="configmaps"),
    pytest.param("secrets", "NAME TYPE DATA AGE", id="secrets"),
    pytest.param("namespaces", "NAME STATUS AGE", id="namespaces"),
    pytest.param("nodes", "NAME STATUS ROLES AGE VERSION", id="nodes"),
    pytest.param("endpoints", "NAME ENDPOINTS AGE", id="endpoints"),
    pytest.param("events", "LAST SEEN TYPE REASON OBJECT MESSAGE", id="events"),
    pytest.param("persistentvolumeclaims",
                 "NAME STATUS VOLUME CAPACITY ACCESS MODES STORAGECLASS AGE", id="pvc"),
    pytest.param("ingresses", "NAME CLASS HOSTS ADDRESS PORTS AGE", id="ingresses"),
    pytest.param("leases", "NAME HOLDER AGE", id="leases"),
])
def test_headers(plural: str, expected: str) -> None:
    from kemu.api import kinds

    assert " ".join(columns_for(kinds.resolve(plural)).headers) == expected
