"""Workload controllers on a 2-node lab, checked the way a user follows a tutorial.

A Deployment of kemu/bootcamp is rolled from v1 to v2 with `kemuctl set image` while a
thread keeps requesting its NodePort from the host and samples the Deployment's available
replicas; `kemuctl rollout status`, `history` and `undo` behave as kubectl's. The lab (2
network namespaces, a dockerd and an agent each, the control plane on the host) and
everything in it is removed at the end.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from kemu.cli import addons
from kemu.client import Client
from kemu.client.errors import NotFound
from tests.support.labcluster import LabCluster, lab_cluster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SUBNET = "198.18.252.0/24"
IMAGES = ["kemu/pause:3.9", "kemu/tools:1", "kemu/bootcamp:v1", "kemu/bootcamp:v2",
          "kemu/kemu:latest"]
# Short node-lifecycle timings so a killed agent's pods move within the test.
CONTROLLER_ARGS = ("--node-monitor-grace-period", "8s", "--pod-eviction-timeout", "5s",
                   "--node-monitor-period", "1s",
                   "--horizontal-pod-autoscaler-sync-period", "2s")


@pytest.fixture(scope="module")
def cl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        pytest.skip("needs root and dockerd for a lab")
    tmp = tmp_path_factory.mktemp("worklab")
    with lab_cluster(tmp, nodes=2, subnet=SUBNET, images=IMAGES,
                     controller_args=CONTROLLER_ARGS) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def api(cl: LabCluster) -> Iterator[Client]:
    with cl.client() as c:
        yield c


def kemuctl(cl: LabCluster, *args: str, timeout: float = 120, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
    return cl.kemuctl(*args, timeout=timeout, check=check)


def apply(cl: LabCluster, text: str) -> None:
    cl.kemuctl("apply", "-f", "-", stdin=text)


WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: kemu/bootcamp:v1
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
        # As in Kubernetes: keep serving while the endpoint removal reaches every node.
        lifecycle: {preStop: {exec: {command: [sleep, "2"]}}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
"""


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status == 200
    except OSError:
        return False


class Sampler(threading.Thread):
    """Requests the NodePort on alternate nodes and samples availability until stopped."""

    def __init__(self, cl: LabCluster, api_address: str, node_port: int) -> None:
        super().__init__(daemon=True)
        self.urls = [f"http://{n.ip}:{node_port}/" for n in cl.lab.nodes]
        self.api_address = api_address
        self.stop_flag = threading.Event()
        self.answers: collections.Counter[str] = collections.Counter()
        self.failures = 0
        self.errors: list[str] = []
        self.available: list[int] = []

    def run(self) -> None:
        with Client(self.api_address) as api:
            i = 0
            deadline = time.monotonic() + 240  # bounded, whatever happens
            while not self.stop_flag.is_set() and time.monotonic() < deadline:
                url = self.urls[i % len(self.urls)]
                i += 1
                try:
                    with urllib.request.urlopen(url, timeout=3) as r:
                        body = r.read().decode()
                    self.answers[body.rsplit("v=", 1)[-1].strip()] += 1
                except OSError as e:
                    self.failures += 1
                    self.errors.append(f"{time.strftime('%H:%M:%S')} {url} {e!r}")
                if i % 5 == 0:
                    d = api.get("deployments", "web", "default").deployment
                    self.available.append(d.status.available_replicas)
                time.sleep(0.05)


def test_rolling_update_keeps_serving_then_undo(cl: LabCluster, api: Client) -> None:
    apply(cl, WEB)
    status = kemuctl(cl, "rollout", "status", "deployment/web", "--timeout", "120s")
    assert 'deployment "web" successfully rolled out' in status.stdout
    node_port = api.get("services", "web", "default").service.spec.ports[0].node_port
    sampler = Sampler(cl, cl.apiserver, node_port)
    wait_for(lambda: len(kemuctl(cl, "get", "ep", "web").stdout.split(",")) == 3, 30,
             "three endpoints")
    # Both nodes' Service rules have the endpoints (they follow the Endpoints within about
    # a second) before the sampling starts.
    wait_for(lambda: all(_answers(u) for u in sampler.urls for _ in range(5)), 30,
             "the NodePort answering on both nodes")
    sampler.start()
    try:
        kemuctl(cl, "set", "image", "deployment/web", "web=kemu/bootcamp:v2", "--record")
        status = kemuctl(cl, "rollout", "status", "deployment/web", "--timeout", "180s")
        # A few more answers after the rollout: the new version serves.
        wait_for(lambda: sampler.answers["2"] >= 5, 30, "answers from v2")
    finally:
        sampler.stop_flag.set()
        sampler.join(timeout=30)
    lines = status.stdout.splitlines()
    assert lines[-1] == 'deployment "web" successfully rolled out'
    assert any(line.startswith('Waiting for deployment "web" rollout to finish:')
               for line in lines), lines
    # Traffic kept flowing: both versions answered during the rollout and no request failed
    # (the preStop sleep keeps an old pod serving until every node has dropped it).
    assert sampler.answers["1"] > 0 and sampler.answers["2"] > 0, sampler.answers
    assert sampler.failures == 0, (sampler.answers, sampler.errors)
    # maxUnavailable 1: never fewer than 2 available replicas.
    assert sampler.available and min(sampler.available) >= 2, sampler.available
    pods = api.list("pods", "default", label_selector="app=web").items
    running = [p for p in pods if not p.pod.metadata.HasField("deletion_timestamp")]
    assert {c.image for p in running for c in p.pod.spec.containers} == {"kemu/bootcamp:v2"}

    history = kemuctl(cl, "rollout", "history", "deployment/web").stdout
    assert "REVISION  CHANGE-CAUSE" in history
    assert "1         <none>" in history
    assert "2         kemuctl" in history and "set image deployment/web" in history
    detail = kemuctl(cl, "rollout", "history", "deployment/web", "--revision", "2").stdout
    assert detail.startswith("deployment.apps/web with revision #2")
    assert "Image:" in detail and "kemu/bootcamp:v2" in detail, detail
    events = kemuctl(cl, "get", "events").stdout
    assert "ScalingReplicaSet" in events and "SuccessfulCreate" in events

    assert "rolled back" in kemuctl(cl, "rollout", "undo", "deployment/web").stdout
    kemuctl(cl, "rollout", "status", "deployment/web", "--timeout", "180s")

    def all_v1() -> bool:
        got = api.list("pods", "default", label_selector="app=web").items
        live = [p for p in got if not p.pod.metadata.HasField("deletion_timestamp")]
        return len(live) == 3 and all(c.image == "kemu/bootcamp:v1"
                                      for p in live for c in p.pod.spec.containers)
    wait_for(all_v1, 60, "three v1 pods after the undo")
    assert "3         <none>" in kemuctl(cl, "rollout", "history", "deployment/web").stdout


def test_recreate_replaces_all_pods_at_once(cl: LabCluster, api: Client) -> None:
    apply(cl, WEB.replace("name: web", "name: rec").replace("app: web", "app: rec")
          .replace("{type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}",
                   "{type: Recreate}").split("---")[0])
    kemuctl(cl, "rollout", "status", "deploy/rec", "--timeout", "120s")
    old = {p.pod.metadata.name for p in api.list("pods", "default",
                                                label_selector="app=rec").items}
    kemuctl(cl, "set", "image", "deploy/rec", "rec=kemu/bootcamp:v2")  # container "rec"
    deadline = time.monotonic() + 120
    # Recreate: every old pod is gone before any new one exists.
    while time.monotonic() < deadline:
        pods = api.list("pods", "default", label_selector="app=rec").items
        names = {p.pod.metadata.name for p in pods}
        if names and not (names & old):
            break
        assert not (names - old) or not (names & old), f"old and new pods at once: {names}"
        time.sleep(0.1)
    else:
        raise AssertionError("the Recreate rollout did not replace the pods within 120s")
    kemuctl(cl, "rollout", "status", "deploy/rec", "--timeout", "120s")


def test_pause_resume_and_restart(cl: LabCluster, api: Client) -> None:
    assert "deployment.apps/web paused" in kemuctl(cl, "rollout", "pause", "deploy/web").stdout
    again = kemuctl(cl, "rollout", "pause", "deploy/web", check=False)
    assert again.returncode == 1 and 'is already paused' in again.stderr
    assert "resumed" in kemuctl(cl, "rollout", "resume", "deploy/web").stdout
    before = {p.pod.metadata.name for p in api.list("pods", "default",
                                                   label_selector="app=web").items}
    assert "restarted" in kemuctl(cl, "rollout", "restart", "deploy/web").stdout
    kemuctl(cl, "rollout", "status", "deploy/web", "--timeout", "180s")

    def replaced() -> bool:
        pods = api.list("pods", "default", label_selector="app=web").items
        live = {p.pod.metadata.name for p in pods
                if not p.pod.metadata.HasField("deletion_timestamp")}
        return len(live) == 3 and not (live & before)
    wait_for(replaced, 60, "every pod replaced by the restart")


def live_pods(api: Client, selector: str) -> list[Any]:
    return [o.pod for o in api.list("pods", "default", label_selector=selector).items
            if not o.pod.metadata.HasField("deletion_timestamp")]


def ready(pod: Any) -> bool:
    return pod.status.phase == "Running" and any(
        c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def test_daemonset_runs_one_pod_on_every_node(cl: LabCluster, api: Client) -> None:
    apply(cl, """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node-probe}
spec:
  selector: {matchLabels: {app: node-probe}}
  template:
    metadata: {labels: {app: node-probe}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: probe, image: "kemu/tools:1", command: [sleep, "3600"]}]
""")
    status = kemuctl(cl, "rollout", "status", "ds/node-probe", "--timeout", "120s")
    assert 'daemon set "node-probe" successfully rolled out' in status.stdout
    pods = live_pods(api, "app=node-probe")
    assert sorted(p.spec.node_name for p in pods) == sorted(cl.node_name(n)
                                                            for n in cl.lab.nodes)
    assert all(ready(p) for p in pods)


def test_statefulset_ordinals_claims_and_dns_names(cl: LabCluster, api: Client) -> None:
    for doc in (addons.dns_service(), addons.dns_deployment("kemu/kemu:latest", replicas=1)):
        api.create(manifest_of(doc))
    apply(cl, """
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: http, port: 8080}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 3
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: db
        image: kemu/bootcamp:v1
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 10Mi}}
""")
    # OrderedReady: a pod appears only after every lower ordinal has been Ready.
    seen_ready: set[str] = set()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        pods = {p.metadata.name: p for p in live_pods(api, "app=db")}
        seen_ready |= {name for name, pod in pods.items() if ready(pod)}
        for i in (1, 2):
            if f"db-{i}" in pods:
                assert f"db-{i - 1}" in seen_ready, f"db-{i} exists before db-{i - 1} is Ready"
        if len(pods) == 3 and all(ready(p) for p in pods.values()):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the StatefulSet did not get 3 Ready pods within 180s")
    claims = {o.persistent_volume_claim.metadata.name
              for o in api.list("persistentvolumeclaims", "default").items}
    assert {"data-db-0", "data-db-1", "data-db-2"} <= claims
    pods = {p.metadata.name: p for p in live_pods(api, "app=db")}
    assert pods["db-0"].spec.hostname == "db-0" and pods["db-0"].spec.subdomain == "db"

    wait_for(lambda: endpoints_ready(api, "kube-dns", "kube-system"), 120, "a kube-dns pod")
    api.create(manifest_of({"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": "dns-probe"},
                            "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                                {"name": "c", "image": "kemu/tools:1",
                                 "command": ["sleep", "3600"]}]}}))
    wait_for(lambda: ready(api.get("pods", "dns-probe", "default").pod), 60, "dns-probe")
    out = kemuctl(cl, "exec", "dns-probe", "--", "nslookup",
                  "db-1.db.default.svc.cluster.local", check=False).stdout
    assert f"Address: {pods['db-1'].status.pod_ip}" in out, out

    # Scale down: highest ordinal first; the claims stay.
    kemuctl(cl, "scale", "statefulset", "db", "--replicas", "1")
    wait_for(lambda: [p.metadata.name for p in live_pods(api, "app=db")] == ["db-0"], 60,
             "only db-0 left")
    claims = {o.persistent_volume_claim.metadata.name
              for o in api.list("persistentvolumeclaims", "default").items}
    assert {"data-db-1", "data-db-2"} <= claims


def manifest_of(doc: dict[str, Any]) -> Any:
    from kemu.api import manifest

    return manifest.from_dict(doc)


def endpoints_ready(api: Client, name: str, ns: str) -> bool:
    try:
        ep = api.get("endpoints", name, ns).endpoints
    except NotFound:
        return False
    return any(s.addresses for s in ep.subsets)


def test_job_with_completions_and_parallelism(cl: LabCluster, api: Client) -> None:
    apply(cl, """
apiVersion: batch/v1
kind: Job
metadata: {name: batch}
spec:
  completions: 5
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers: [{name: work, image: "kemu/tools:1", command: [sh, -c, "sleep 1"]}]
""")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        job = api.get("jobs", "batch", "default").job
        assert job.status.active <= 2, f"{job.status.active} pods active at once"
        running = [p for p in live_pods(api, "job-name=batch")
                   if p.status.phase in ("Pending", "Running")]
        assert len(running) <= 2, [p.metadata.name for p in running]
        if any(c.type == "Complete" and c.status == "True" for c in job.status.conditions):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the Job did not complete within 180s")
    assert job.status.succeeded == 5
    line = kemuctl(cl, "get", "jobs", "batch").stdout.splitlines()[1]
    assert "Complete" in line and "5/5" in line, line


def test_cronjob_fires_on_its_schedule(cl: LabCluster, api: Client) -> None:
    apply(cl, """
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers: [{name: tick, image: "kemu/tools:1", command: [echo, tick]}]
""")
    kemuctl(cl, "create", "job", "tick-now", "--from=cronjob/tick")

    def finished_jobs() -> list[str]:
        jobs = api.list("jobs", "default").items
        return [o.job.metadata.name for o in jobs
                if any(r.kind == "CronJob" and r.name == "tick"
                       for r in o.job.metadata.owner_references)
                and any(c.type == "Complete" and c.status == "True"
                        for c in o.job.status.conditions)]
    # The manual Job at once; a scheduled one at the next minute (at most 60 s away).
    names = wait_for(lambda: len(finished_jobs()) >= 2 and finished_jobs(), 100,
                     "the manual and a scheduled Job complete")
    assert "tick-now" in names and any(n.startswith("tick-") and n != "tick-now"
                                       for n in names), names
    cj = api.get("cronjobs", "tick", "default").cron_job
    assert cj.status.HasField("last_schedule_time")
    api.delete("cronjobs", "tick", "default")


def test_cascading_and_orphaning_deletes(cl: LabCluster, api: Client) -> None:
    for name in ("cas", "orph"):
        apply(cl, WEB.split("---")[0].replace("name: web", f"name: {name}")
              .replace("app: web", f"app: {name}").replace("replicas: 3", "replicas: 2"))
    for name in ("cas", "orph"):
        wait_for(lambda n=name: len([p for p in live_pods(api, f"app={n}") if ready(p)]) == 2,
                 90, f"{name}'s pods")
    kemuctl(cl, "delete", "deployment", "cas")
    wait_for(lambda: not api.list("replicasets", "default", label_selector="app=cas").items
             and not live_pods(api, "app=cas"), 60, "cas's ReplicaSet and pods collected")

    pods_before = {p.metadata.name for p in live_pods(api, "app=orph")}
    kemuctl(cl, "delete", "deployment", "orph", "--cascade=orphan")
    wait_for(lambda: not api.list("deployments", "default").items
             or all(o.deployment.metadata.name != "orph"
                    for o in api.list("deployments", "default").items), 30, "orph deleted")
    rs = api.list("replicasets", "default", label_selector="app=orph").items
    assert len(rs) == 1 and not rs[0].replica_set.metadata.owner_references
    assert {p.metadata.name for p in live_pods(api, "app=orph")} == pods_before
    kemuctl(cl, "delete", "rs", rs[0].replica_set.metadata.name)
    wait_for(lambda: not live_pods(api, "app=orph"), 60, "orph's pods collected")


def test_deleting_a_namespace_deletes_what_is_in_it(cl: LabCluster, api: Client) -> None:
    kemuctl(cl, "create", "namespace", "scratch")
    kemuctl(cl, "create", "deployment", "w", "--image", "kemu/tools:1", "-n", "scratch",
            "--", "sleep", "3600")
    wait_for(lambda: len(api.list("pods", "scratch").items) == 1, 60, "a pod in scratch")
    kemuctl(cl, "delete", "namespace", "scratch")

    def gone() -> bool:
        try:
            api.get("namespaces", "scratch")
        except NotFound:
            return True
        return False
    wait_for(gone, 90, "namespace scratch and everything in it deleted")
    assert not api.list("pods", "scratch").items
    assert not api.list("replicasets", "scratch").items


def test_hpa_scales_a_busy_deployment_out(cl: LabCluster, api: Client) -> None:
    """CPU from Docker stats through the agents: one pod burning a core against a 100m
    request is far above a 50% target, so the autoscaler adds replicas (bounded: each
    burner stops by itself after 40 s, and the Deployment is deleted at the end)."""
    apply(cl, """
apiVersion: apps/v1
kind: Deployment
metadata: {name: burn}
spec:
  replicas: 1
  selector: {matchLabels: {app: burn}}
  template:
    metadata: {labels: {app: burn}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: burn
        image: kemu/tools:1
        command: [sh, -c, "timeout 40 sh -c 'while :; do :; done'; sleep 3600"]
        resources: {requests: {cpu: 100m}}
""")
    try:
        wait_for(lambda: any(ready(p) for p in live_pods(api, "app=burn")), 60, "burn running")
        kemuctl(cl, "autoscale", "deployment", "burn", "--min", "1", "--max", "3",
                "--cpu-percent", "50")
        top = wait_for(lambda: "burn-" in (out := kemuctl(cl, "top", "pods", check=False)
                                           .stdout) and out, 60, "kemuctl top pods")
        assert "CPU(cores)" in top
        wait_for(lambda: api.get("deployments", "burn", "default").deployment.spec.replicas
                 > 1, 60, "the HPA scaling burn out")
        line = kemuctl(cl, "get", "hpa", "burn").stdout.splitlines()[1]
        assert "Deployment/burn" in line and "/50%" in line, line
        events = kemuctl(cl, "describe", "hpa", "burn").stdout
        assert "SuccessfulRescale" in events
    finally:
        kemuctl(cl, "delete", "hpa", "burn", check=False)
        kemuctl(cl, "delete", "deployment", "burn", check=False)


def test_killed_agent_pods_are_recreated_on_the_other_node(cl: LabCluster,
                                                           api: Client) -> None:
    """Last: it kills node 2's agent (and brings it back)."""
    a, b = (cl.node_name(n) for n in cl.lab.nodes)
    apply(cl, WEB.split("---")[0].replace("name: web", "name: mover")
          .replace("app: web", "app: mover").replace("replicas: 3", "replicas: 4"))
    wait_for(lambda: len([p for p in live_pods(api, "app=mover") if ready(p)]) == 4, 120,
             "four mover pods")
    on_b = [p for p in live_pods(api, "app=mover") if p.spec.node_name == b]
    assert on_b, "the scheduler spread none of the 4 replicas to node 2"
    moved_uids = {p.metadata.uid for p in on_b}
    node_b = cl.lab.nodes[1]
    cl.agents[b].kill9()

    def node_unknown() -> bool:
        node = api.get("nodes", b).node
        return any(c.type == "Ready" and c.status == "Unknown" for c in node.status.conditions)
    wait_for(node_unknown, 60, f"{b} Ready=Unknown after its agent died")

    def tainted_unreachable() -> bool:  # written just after the conditions, as Kubernetes does
        taints = api.get("nodes", b).node.spec.taints
        return any(t.key == "node.kubernetes.io/unreachable" for t in taints)
    wait_for(tainted_unreachable, 30, f"{b} tainted node.kubernetes.io/unreachable")

    def replaced_on_a() -> bool:
        pods = live_pods(api, "app=mover")
        return len(pods) == 4 and all(p.spec.node_name == a and ready(p) for p in pods)
    wait_for(replaced_on_a, 120, "all four mover pods Ready on node 1")
    events = kemuctl(cl, "get", "events", "-A").stdout
    assert "NodeNotReady" in events and "TaintManagerEviction" in events

    cl.agents.pop(b)
    cl.start_agent(node_b)
    def back() -> bool:
        taints = api.get("nodes", b).node.spec.taints
        return not node_unknown() and not any(t.key == "node.kubernetes.io/unreachable"
                                              for t in taints)
    wait_for(back, 60, f"{b} Ready again, untainted")

    def old_containers_gone() -> bool:
        out = node_b.docker("ps", "-a", "--format", "{{.Label \"io.kemu.pod.uid\"}}")
        return not (set(out.split()) & moved_uids)
    wait_for(old_containers_gone, 60, "the moved pods' containers removed from node 2")
