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

import pytest

from kemu.client import Client
from tests.support.labcluster import LabCluster, lab_cluster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SUBNET = "198.18.252.0/24"
IMAGES = ["kemu/pause:3.9", "kemu/tools:1", "kemu/bootcamp:v1", "kemu/bootcamp:v2"]


@pytest.fixture(scope="module")
def cl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        pytest.skip("needs root and dockerd for a lab")
    tmp = tmp_path_factory.mktemp("worklab")
    with lab_cluster(tmp, nodes=2, subnet=SUBNET, images=IMAGES) as cluster:
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


class Sampler(threading.Thread):
    """Requests the NodePort on alternate nodes and samples availability until stopped."""

    def __init__(self, cl: LabCluster, api_address: str, node_port: int) -> None:
        super().__init__(daemon=True)
        self.urls = [f"http://{n.ip}:{node_port}/" for n in cl.lab.nodes]
        self.api_address = api_address
        self.stop_flag = threading.Event()
        self.answers: collections.Counter[str] = collections.Counter()
        self.failures = 0
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
                except OSError:
                    self.failures += 1
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
    # Traffic kept flowing: both versions answered during the rollout, nothing failed
    # beyond a rare reset while an old pod was terminating.
    total = sum(sampler.answers.values())
    assert sampler.answers["1"] > 0 and sampler.answers["2"] > 0, sampler.answers
    assert sampler.failures <= max(2, total // 50), (sampler.failures, sampler.answers)
    # maxUnavailable 1: never fewer than 2 available replicas.
    assert sampler.available and min(sampler.available) >= 2, sampler.available
    pods = api.list("pods", "default", label_selector="app=web").items
    running = [p for p in pods if not p.pod.metadata.HasField("deletion_timestamp")]
    assert {c.image for p in running for c in p.pod.spec.containers} == {"kemu/bootcamp:v2"}

    history = kemuctl(cl, "rollout", "history", "deployment/web").stdout
    assert "REVISION  CHANGE-CAUSE" in history
    assert "1         <none>" in history
    assert "2         kemuctl" in history and "set image deployment/web" in history
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
