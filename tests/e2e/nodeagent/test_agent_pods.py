"""Pods on a real dockerd through a real agent: running, sharing localhost, init order,
environment, image pull errors, graceful deletion, node registration and lease."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import docker
import pytest

from kemu.client import Client
from kemu.client.errors import NotFound
from tests.e2e.nodeagent.helpers import (
    APP_IMAGE,
    APP_IMAGE_V2,
    TOOLS_IMAGE,
    AgentHandle,
    create,
    create_pod,
    events,
    exec_,
    get_pod,
    status_of,
    wait_for,
    wait_gone,
    wait_pod,
    wait_ready,
    waiting_reason,
)

pytestmark = pytest.mark.e2e
SLEEP = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


def test_node_registered_with_capacity_labels_and_lease(api: Client, agent: AgentHandle) -> None:
    node = api.get("nodes", agent.node).node
    assert node.metadata.labels["kubernetes.io/hostname"] == agent.node
    assert node.metadata.labels["kubernetes.io/os"] == "linux"
    assert int(node.status.capacity["cpu"]) >= 1
    assert node.status.capacity["memory"].endswith("Ki")
    assert node.status.capacity["pods"] == "110"
    assert node.status.allocatable["pods"] == "110"
    addresses = {a.type: a.address for a in node.status.addresses}
    assert addresses == {"InternalIP": "127.0.0.1", "Hostname": agent.node}
    assert node.status.daemon_endpoints.kubelet_endpoint.port == agent.port
    assert node.status.node_info.container_runtime_version.startswith("docker://")
    assert node.status.node_info.kubelet_version.startswith("v")
    conds = {c.type: c for c in node.status.conditions}
    assert conds["Ready"].status == "True" and conds["Ready"].reason == "KubeletReady"
    assert {"MemoryPressure", "DiskPressure", "PIDPressure"} <= set(conds)

    def node_lease() -> Any:
        try:
            return api.get("leases", agent.node, "kube-node-lease").lease
        except NotFound:  # the heartbeat runs beside the status writer: may come second
            return None
    lease = wait_for(node_lease, 30, "the node's Lease in kube-node-lease")
    assert lease.spec.holder_identity == agent.node
    assert lease.spec.lease_duration_seconds == 40
    first = lease.spec.renew_time.ToNanoseconds()
    wait_for(lambda: api.get("leases", agent.node, "kube-node-lease").lease.spec.renew_time
             .ToNanoseconds() > first, 15, "the lease to be renewed")


def test_pod_runs_with_ip_and_ready(api: Client, agent: AgentHandle, namespace: str,
                                    docker_client: docker.DockerClient) -> None:
    create_pod(api, "web", namespace, agent.node, [{"name": "app", "image": APP_IMAGE,
                                                     "ports": [{"containerPort": 8080}]}])
    pod = wait_ready(api, namespace, "web")
    assert pod.status.pod_ip and pod.status.host_ip == "127.0.0.1"
    assert pod.status.HasField("start_time")
    conds = {c.type: c.status for c in pod.status.conditions}
    assert conds["Initialized"] == conds["ContainersReady"] == conds["Ready"] == "True"
    assert conds["PodScheduled"] == "True"
    cs = status_of(pod, "app")
    assert cs.ready and cs.started and cs.restart_count == 0
    assert cs.container_id.startswith("docker://") and cs.state.HasField("running")
    labels = docker_client.containers.get(cs.container_id.removeprefix("docker://")).labels
    assert labels["io.kemu.node"] == agent.node
    assert labels["io.kemu.pod.namespace"] == namespace
    assert labels["io.kemu.pod.name"] == "web"
    assert labels["io.kemu.pod.uid"] == pod.metadata.uid
    assert labels["io.kemu.container"] == "app"
    sandboxes = docker_client.containers.list(filters={
        "label": [f"io.kemu.pod.uid={pod.metadata.uid}", "io.kemu.container=POD"]})
    assert len(sandboxes) == 1
    # hostname is the pod name; /etc/hosts names the pod IP
    code, out, _ = exec_(agent.grpc_address, namespace, "web", ["hostname"])
    assert (code, out.strip()) == (0, b"web")
    code, out, _ = exec_(agent.grpc_address, namespace, "web", ["cat", "/etc/hosts"])
    assert f"{pod.status.pod_ip}\tweb".encode() in out
    reasons = [e.reason for e in events(api, namespace, "web")]
    assert "Created" in reasons and "Started" in reasons


def test_containers_of_a_pod_share_localhost(api: Client, agent: AgentHandle,
                                             namespace: str) -> None:
    create_pod(api, "duo", namespace, agent.node, [
        {"name": "app", "image": APP_IMAGE},
        {"name": "client", "image": TOOLS_IMAGE, "command": SLEEP}])
    wait_ready(api, namespace, "duo")

    def fetch() -> bytes:
        code, out, _ = exec_(agent.grpc_address, namespace, "duo",
                             ["wget", "-q", "-O", "-", "http://localhost:8080/"],
                             container="client")
        return out if code == 0 else b""
    out = wait_for(fetch, 20, "the app on localhost:8080 from the other container")
    assert b"Hello Kubernetes bootcamp!" in out
    assert b"Running on: duo" in out


def test_init_containers_run_in_order_before_app(api: Client, agent: AgentHandle,
                                                 namespace: str) -> None:
    create_pod(api, "init", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE,
         "command": ["sh", "-c", "cat /work/order; echo app >> /work/order; exec sleep 3600"],
         "volumeMounts": [{"name": "work", "mountPath": "/work"}]}],
        initContainers=[
            {"name": "first", "image": TOOLS_IMAGE,
             "command": ["sh", "-c", "sleep 1; echo first >> /work/order"],
             "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
            {"name": "second", "image": TOOLS_IMAGE,
             "command": ["sh", "-c", "echo second >> /work/order"],
             "volumeMounts": [{"name": "work", "mountPath": "/work"}]}],
        volumes=[{"name": "work", "emptyDir": {}}])
    pending = wait_pod(api, namespace, "init", lambda p: status_of(p, "first", init=True)
                       is not None and status_of(p, "first", init=True).state.HasField(
                           "running"), 20, "the first init container running")
    assert pending.status.phase == "Pending"
    assert waiting_reason(pending, "app") == "PodInitializing"
    assert {c.type: c.status for c in pending.status.conditions}["Initialized"] == "False"
    pod = wait_ready(api, namespace, "init")
    for name in ("first", "second"):
        t = status_of(pod, name, init=True).state.terminated
        assert (t.exit_code, t.reason) == (0, "Completed")
    first = status_of(pod, "first", init=True).state.terminated
    second = status_of(pod, "second", init=True).state.terminated
    assert first.finished_at.ToNanoseconds() <= second.started_at.ToNanoseconds()
    _, out, _ = exec_(agent.grpc_address, namespace, "init", ["cat", "/work/order"])
    assert out.split() == [b"first", b"second", b"app"]


def test_env_from_configmap_secret_and_field_refs(api: Client, agent: AgentHandle,
                                                  namespace: str) -> None:
    create(api, {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "cfg", "namespace": namespace},
                 "data": {"COLOR": "blue", "SIZE": "10"}})
    create(api, {"apiVersion": "v1", "kind": "Secret",
                 "metadata": {"name": "creds", "namespace": namespace},
                 "stringData": {"password": "s3cret"}})
    create(api, {"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "backend-db", "namespace": namespace},
                 "spec": {"ports": [{"port": 5432, "name": "pg"}], "selector": {"a": "b"}}})
    env = [
        {"name": "PLAIN", "value": "x-$(COLOR)"},
        {"name": "EXPANDED", "value": "y-$(CM_COLOR)"},
        {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "COLOR"}}},
        {"name": "FROM_SECRET",
         "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        *({"name": n, "valueFrom": {"fieldRef": {"fieldPath": p}}} for n, p in [
            ("POD_NAME", "metadata.name"), ("POD_NS", "metadata.namespace"),
            ("POD_UID", "metadata.uid"), ("POD_IP", "status.podIP"),
            ("HOST_IP", "status.hostIP"), ("NODE", "spec.nodeName")]),
    ]
    create_pod(api, "env", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE, "command": SLEEP, "env": env,
         "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CM_"}],
         "workingDir": "/tmp"}])
    pod = wait_ready(api, namespace, "env")
    code, out, _ = exec_(agent.grpc_address, namespace, "env", ["env"])
    assert code == 0
    got = dict(line.split("=", 1) for line in out.decode().splitlines() if "=" in line)
    assert got["PLAIN"] == "x-$(COLOR)"  # COLOR is not in this container's env
    assert got["EXPANDED"] == "y-blue"
    assert got["FROM_CM"] == "blue" and got["FROM_SECRET"] == "s3cret"
    assert got["CM_COLOR"] == "blue" and got["CM_SIZE"] == "10"
    assert got["POD_NAME"] == "env" and got["POD_NS"] == namespace
    assert got["POD_UID"] == pod.metadata.uid and got["POD_IP"] == pod.status.pod_ip
    assert got["HOST_IP"] == "127.0.0.1" and got["NODE"] == agent.node
    assert got["BACKEND_DB_SERVICE_PORT"] == "5432"
    assert got["BACKEND_DB_SERVICE_PORT_PG"] == "5432"
    assert got["BACKEND_DB_SERVICE_HOST"].count(".") == 3
    _, out, _ = exec_(agent.grpc_address, namespace, "env", ["sh", "-c", "pwd"])
    assert out.strip() == b"/tmp"


def test_missing_configmap_for_env_waits_with_config_error(api: Client, agent: AgentHandle,
                                                            namespace: str) -> None:
    create_pod(api, "noconf", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE, "command": SLEEP,
         "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "late", "key": "k"}}}]}])
    pod = wait_pod(api, namespace, "noconf",
                   lambda p: waiting_reason(p, "app") == "CreateContainerConfigError", 20,
                   "CreateContainerConfigError")
    assert status_of(pod, "app").state.waiting.message == 'configmap "late" not found'
    create(api, {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "late", "namespace": namespace}, "data": {"k": "v"}})
    wait_ready(api, namespace, "noconf")


def test_missing_image_err_image_pull_then_backoff(api: Client, agent: AgentHandle,
                                                   namespace: str) -> None:
    create_pod(api, "noimage", namespace, agent.node, [
        {"name": "app", "image": "kemu/does-not-exist:1"}])
    pod = wait_pod(api, namespace, "noimage",
                   lambda p: waiting_reason(p, "app") in ("ErrImagePull", "ImagePullBackOff"),
                   20, "ErrImagePull")
    assert pod.status.phase == "Pending"
    wait_pod(api, namespace, "noimage", lambda p: waiting_reason(p, "app") == "ImagePullBackOff",
             20, "ImagePullBackOff")
    seen = wait_for(lambda: {e.reason for e in events(api, namespace, "noimage")} >= {
        "Pulling", "Failed", "BackOff"} and events(api, namespace, "noimage"), 10,
        "Pulling/Failed/BackOff events")
    assert any("kemu/does-not-exist:1" in e.message for e in seen if e.reason == "Failed")
    # the agent keeps serving other pods
    create_pod(api, "fine", namespace, agent.node, [{"name": "app", "image": TOOLS_IMAGE,
                                                      "command": SLEEP}])
    wait_ready(api, namespace, "fine")


def test_graceful_deletion_sigterm_then_sigkill(api: Client, agent: AgentHandle,
                                                namespace: str,
                                                docker_client: docker.DockerClient) -> None:
    # "polite" exits on SIGTERM, "stubborn" ignores it and is killed after the grace period.
    create_pod(api, "polite", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE, "command": SLEEP}],
        terminationGracePeriodSeconds=30)
    create_pod(api, "stubborn", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE,
         "command": ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]}],
        terminationGracePeriodSeconds=3)
    polite = wait_ready(api, namespace, "polite")
    stubborn = wait_ready(api, namespace, "stubborn")
    t0 = time.monotonic()
    api.delete("pods", "polite", namespace)
    api.delete("pods", "stubborn", namespace)
    terminating = get_pod(api, namespace, "stubborn")
    assert terminating is not None and terminating.metadata.HasField("deletion_timestamp")
    wait_gone(api, namespace, "polite", 20)
    polite_done = time.monotonic() - t0
    wait_gone(api, namespace, "stubborn", 20)
    stubborn_done = time.monotonic() - t0
    assert polite_done < 2.5, f"SIGTERM should stop it at once, took {polite_done:.1f}s"
    assert 2.5 <= stubborn_done < 10, f"SIGKILL after 3s grace, took {stubborn_done:.1f}s"
    for uid in (polite.metadata.uid, stubborn.metadata.uid):
        assert docker_client.containers.list(
            all=True, filters={"label": f"io.kemu.pod.uid={uid}"}) == []
    reasons = [e.reason for e in events(api, namespace, "stubborn")]
    assert "Killing" in reasons


def test_cluster_dns_resolv_conf(api: Client, agent: AgentHandle, namespace: str) -> None:
    """With a kube-dns Service the pod's resolv.conf names it, as the DNS milestone needs."""
    try:
        svc = api.get("services", "kube-dns", "kube-system").service
    except Exception:
        svc = create(api, {"apiVersion": "v1", "kind": "Service",
                           "metadata": {"name": "kube-dns", "namespace": "kube-system"},
                           "spec": {"clusterIP": "10.96.0.10", "selector": {"k8s-app": "kube-dns"},
                                    "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}
                           }).service
    # The Service's watch event leaves the apiserver before the pod below is even created.
    create_pod(api, "dns", namespace, agent.node, [{"name": "app", "image": TOOLS_IMAGE,
                                                     "command": SLEEP}])
    wait_ready(api, namespace, "dns")
    _, out, _ = exec_(agent.grpc_address, namespace, "dns", ["cat", "/etc/resolv.conf"])
    text = out.decode()
    assert f"nameserver {svc.spec.cluster_ip}" in text
    assert f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local" in text
    assert "options ndots:5" in text


def test_pull_always_with_a_local_only_image_runs_it(api: Client, agent: AgentHandle,
                                                     namespace: str) -> None:
    """No registry answers here: Always tries the pull, then uses the local image."""
    create_pod(api, "always", namespace, agent.node, [
        {"name": "app", "image": APP_IMAGE, "imagePullPolicy": "Always"}])
    wait_ready(api, namespace, "always")
    pulled = wait_for(lambda: [e.message for e in events(api, namespace, "always")
                               if e.reason == "Pulled"], 10, "a Pulled event")
    assert "already present on machine" in pulled[0]
    reasons = {e.reason for e in events(api, namespace, "always")}
    assert "Pulling" in reasons and "Failed" not in reasons


def test_image_update_restarts_the_container(api: Client, agent: AgentHandle,
                                             namespace: str) -> None:
    """Pods may change a container's image in place; the agent restarts it with the new one."""
    create_pod(api, "upd", namespace, agent.node, [{"name": "app", "image": APP_IMAGE}])
    pod = wait_ready(api, namespace, "upd")
    obj = api.get("pods", "upd", namespace)
    obj.pod.spec.containers[0].image = APP_IMAGE_V2
    api.update(obj)
    pod = wait_pod(api, namespace, "upd", lambda p: status_of(p, "app").image == APP_IMAGE_V2
                   and status_of(p, "app").ready and status_of(p, "app").restart_count == 1,
                   30, "the container restarted with the new image")
    assert pod.status.pod_ip
    reasons = [e.message for e in events(api, namespace, "upd") if e.reason == "Killing"]
    assert reasons == ["Container app definition changed, will be restarted"]


def test_pod_bound_later_through_the_bind_rpc(api: Client, agent: AgentHandle,
                                              namespace: str) -> None:
    """As the scheduler does it: the pod is created unbound and bound afterwards."""
    create(api, {"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": "bound", "namespace": namespace},
                 "spec": {"containers": [{"name": "app", "image": TOOLS_IMAGE,
                                          "command": SLEEP}]}})
    api.bind(namespace, "bound", agent.node)
    pod = wait_ready(api, namespace, "bound")
    assert pod.spec.node_name == agent.node


def test_post_start_and_pre_stop_hooks(api: Client, agent: AgentHandle, namespace: str,
                                       tmp_path: Path) -> None:
    create_pod(api, "hooks", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE, "command": SLEEP,
         "volumeMounts": [{"name": "h", "mountPath": "/h"}],
         "lifecycle": {
             "postStart": {"exec": {"command": ["sh", "-c", "echo started > /h/post"]}},
             "preStop": {"exec": {"command": ["sh", "-c", "echo stopping > /h/pre"]}}}}],
        volumes=[{"name": "h", "hostPath": {"path": str(tmp_path)}}])
    wait_ready(api, namespace, "hooks")
    assert (tmp_path / "post").read_text() == "started\n"
    assert not (tmp_path / "pre").exists()
    api.delete("pods", "hooks", namespace)
    wait_gone(api, namespace, "hooks")
    assert (tmp_path / "pre").read_text() == "stopping\n"


def test_host_port_reaches_the_pod(api: Client, agent: AgentHandle, namespace: str) -> None:
    import urllib.request

    from tests.support.processes import free_port

    port = free_port()
    create_pod(api, "hostport", namespace, agent.node, [
        {"name": "app", "image": APP_IMAGE,
         "ports": [{"containerPort": 8080, "hostPort": port, "hostIP": "127.0.0.1"}],
         "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}])
    wait_ready(api, namespace, "hostport")

    def fetch() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as resp:
                return str(resp.read().decode())
        except OSError:
            return ""
    assert "Running on: hostport" in wait_for(fetch, 15, "the pod through its hostPort")


def test_limits_become_docker_limits(api: Client, agent: AgentHandle, namespace: str,
                                     docker_client: docker.DockerClient) -> None:
    create_pod(api, "limited", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE, "command": SLEEP,
         "resources": {"limits": {"cpu": "500m", "memory": "64Mi"},
                       "requests": {"cpu": "250m", "memory": "32Mi"}}}])
    pod = wait_ready(api, namespace, "limited")
    cid = status_of(pod, "app").container_id.removeprefix("docker://")
    host = docker_client.api.inspect_container(cid)["HostConfig"]
    assert (host["NanoCpus"], host["Memory"], host["CpuShares"]) == (500_000_000, 64 << 20, 256)
    assert pod.status.qos_class == "Burstable"


def test_host_network_pod(api: Client, agent: AgentHandle, namespace: str) -> None:
    create_pod(api, "hostnet", namespace, agent.node, [
        {"name": "app", "image": TOOLS_IMAGE, "command": SLEEP}], hostNetwork=True)
    pod = wait_ready(api, namespace, "hostnet")
    assert pod.status.pod_ip == pod.status.host_ip == "127.0.0.1"
    code, out, _ = exec_(agent.grpc_address, namespace, "hostnet", ["cat", "/proc/net/dev"])
    assert code == 0
    assert b"docker0" in out or b"br-" in out  # the node's interfaces, not a veth pair
