"""kill -9 of the apiserver, the scheduler and the controller manager at random points
while a Deployment scales and rolls, each restarted at once (and any that exits on its own,
as a leader that could not renew does, restarted by the test as a supervisor would). The
Deployment converges to its declared replicas on the last template, the pods never exceed
replicas + maxSurge (watched from the start by a watch that resumes from its last
resourceVersion across every apiserver restart), and that watch ends with exactly what a
fresh list shows. No node agent: a thread plays the kubelet (bound pods become Running
and Ready, terminating pods are removed). The seed is printed; KEMU_CHAOS_SEED repeats a
run."""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kemu.api import manifest
from kemu.api.v1 import api_pb2
from kemu.client import Client
from kemu.client.errors import ClientError, Conflict, NotFound, Unavailable
from tests.integration.ha import helpers
from tests.integration.ha.helpers import PodWatch
from tests.support import processes

pytestmark = pytest.mark.integration
NS, NAME, SURGE = "chaos", "web", 1
# (replicas, image) after each step: scales and rolls, the widest at 6.
STEPS = ((4, "img:v2"), (6, "img:v2"), (6, "img:v3"), (3, "img:v3"), (3, "img:v4"),
         (5, "img:v4"), (5, "img:v5"))
MAX_REPLICAS = max(r for r, _ in STEPS)


@dataclass
class ControlPlane:
    """Store, apiserver (fixed port), scheduler and controller manager; any can be
    killed and restarted, and `supervise` restarts what exited on its own."""

    tmp: Path
    store: processes.Proc
    api_port: int
    procs: dict[str, processes.Proc] = field(default_factory=dict)
    starts: dict[str, int] = field(default_factory=dict)
    exits: list[str] = field(default_factory=list)

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.api_port}"

    def _new(self, role: str) -> processes.Proc:
        n = self.starts[role] = self.starts.get(role, 0) + 1
        name = f"{role}-{n}"
        if role == "apiserver":
            return processes.kemu_apiserver(self.tmp, self.store.address, port=self.api_port,
                                            name=name)
        if role == "scheduler":
            return helpers.scheduler(self.tmp, self.server, name)
        return helpers.controller_manager(self.tmp, self.server, name, "--controllers",
                                          "replicaset,deployment")

    def start(self, role: str) -> None:
        proc = self._new(role)
        self.procs[role] = proc
        proc.start().wait_ready(timeout=30)

    def kill9(self, role: str) -> None:
        self.procs[role].kill9()

    def supervise(self) -> None:
        for role in ("apiserver", "scheduler", "controller-manager"):
            if not self.procs[role].alive():
                self.exits.append(f"{self.procs[role].name}: {self.procs[role].tail(2)}")
                self.start(role)

    def stop(self) -> None:
        for p in reversed(self.procs.values()):
            p.stop()


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    store = processes.kemu_store(tmp_path)
    store.start().wait_ready()
    cp = ControlPlane(tmp_path, store, processes.free_port())
    try:
        for role in ("apiserver", "scheduler", "controller-manager"):
            cp.start(role)
        yield cp
    finally:
        cp.stop()
        store.stop()


def retry(fn: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """A write that must happen: retried while the apiserver restarts or on a conflict."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except (Unavailable, Conflict, ClientError) as e:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: {e}") from e
            time.sleep(0.1)


class Kubelet:
    """Plays the node agent for the namespace: bound pods Running and Ready, terminating
    pods removed. Rides out apiserver restarts (errors are retried next round)."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="kubelet", daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> Kubelet:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join(timeout=15)
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            with Client(self.server, timeout=3) as client:
                while not self.stop_event.wait(0.1):
                    try:
                        self._round(client)
                    except ClientError:
                        continue
        except BaseException as e:  # raised again by __exit__
            self.error = e

    @staticmethod
    def _round(client: Client) -> None:
        for o in client.list("pods", NS).items:
            p = o.pod
            if p.metadata.HasField("deletion_timestamp"):
                with contextlib.suppress(NotFound, Conflict):
                    client.delete("pods", p.metadata.name, NS, grace_period_seconds=0)
                continue
            ready = any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)
            if p.spec.node_name and not ready:
                p.status.phase = "Running"
                del p.status.conditions[:]
                c = p.status.conditions.add(type="Ready", status="True")
                c.last_transition_time.GetCurrentTime()
                with contextlib.suppress(NotFound, Conflict):
                    client.update_status(api_pb2.Object(pod=p))


def setup(client: Client, replicas: int, image: str) -> None:
    alloc = {"cpu": "64", "memory": "64Gi", "pods": "110"}
    client.create(manifest.from_dict({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "chaos-node", "labels": {"kubernetes.io/hostname": "chaos-node"}},
        "status": {"capacity": alloc, "allocatable": alloc,
                   "conditions": [{"type": "Ready", "status": "True"}]}}))
    client.create(manifest.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": NS}}))
    client.create(manifest.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": NAME}},
                 "strategy": {"type": "RollingUpdate",
                              "rollingUpdate": {"maxSurge": SURGE, "maxUnavailable": 1}},
                 "template": {"metadata": {"labels": {"app": NAME}},
                              "spec": {"containers": [{"name": "app", "image": image}]}}}}))


def declare(client: Client, replicas: int, image: str) -> None:
    obj = client.get("deployments", NAME, NS)
    obj.deployment.spec.replicas = replicas
    obj.deployment.spec.template.spec.containers[0].image = image
    client.update(obj)


def converged(client: Client, replicas: int, image: str) -> bool:
    d = client.get("deployments", NAME, NS).deployment
    st = d.status
    if st.observed_generation != d.metadata.generation:
        return False
    if (st.replicas, st.updated_replicas, st.ready_replicas, st.available_replicas) != (
            replicas, replicas, replicas, replicas):
        return False
    pods = client.list("pods", NS, label_selector=f"app={NAME}").items
    return (len(pods) == replicas
            and all(o.pod.spec.containers[0].image == image for o in pods))


def test_deployment_converges_through_kill9_of_every_component(plane: ControlPlane) -> None:
    seed = int(os.environ.get("KEMU_CHAOS_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"\nchaos seed {seed} (KEMU_CHAOS_SEED={seed} repeats it)")
    client = Client(plane.server, timeout=5, read_retry_seconds=30)
    setup(client, 4, "img:v1")
    watch = PodWatch(plane.server, NS).start()
    victims = ["apiserver", "scheduler", "controller-manager"] * 3
    rng.shuffle(victims)
    kills: list[str] = []
    started = time.monotonic()
    with Kubelet(plane.server):
        for i, (replicas, image) in enumerate(STEPS):
            retry(lambda r=replicas, im=image: declare(client, r, im),  # type: ignore[misc]
                  f"step {i}: {replicas} x {image}")
            for victim in victims[i * len(victims) // len(STEPS):
                                  (i + 1) * len(victims) // len(STEPS)]:
                time.sleep(rng.uniform(0.1, 1.2))  # a random point of the rollout
                plane.kill9(victim)
                kills.append(f"{victim}@{time.monotonic() - started:.1f}s")
                time.sleep(rng.uniform(0.0, 0.5))
                plane.start(victim)
                plane.supervise()
        final_replicas, final_image = STEPS[-1]

        def settled() -> bool:
            plane.supervise()
            try:
                return converged(client, final_replicas, final_image)
            except ClientError:
                return False
        processes.wait_for(settled, 60, "the Deployment to converge", interval=0.2)
    converge_s = time.monotonic() - started

    def caught_up() -> bool:
        fresh = client.list("pods", NS)
        return ({n: o.pod.metadata.resource_version for n, o in watch.pods.items()}
                == {o.pod.metadata.name: o.pod.metadata.resource_version for o in fresh.items})
    processes.wait_for(caught_up, 15, "the resumed watch to match a fresh list")
    watch.stop()
    print(f"kills {', '.join(kills)}; restarted after exiting on their own: "
          f"{plane.exits or 'none'}; converged {converge_s:.1f}s after the first step; "
          f"watch: {watch.events} events, {watch.resumes} resumes, {watch.relists} relists, "
          f"max live pods {watch.max_total}, per ReplicaSet {sorted(watch.max_per_hash.values())}")
    assert sum(k.startswith("apiserver") for k in kills) == 3
    # Restarts close together may break one stream only once (no event came in between),
    # and a resume too old for the new apiserver's cache relists, as in Kubernetes; the
    # watch must have been broken and come back, and it matches a fresh list (above).
    assert watch.resumes + watch.relists >= 1, "the apiserver restarts broke the watch"
    assert watch.max_total <= MAX_REPLICAS + SURGE, watch.max_total
    assert max(watch.max_per_hash.values()) <= MAX_REPLICAS + SURGE
    rs = [o.replica_set for o in client.list("replicasets", NS).items]
    live = [r for r in rs if r.spec.replicas]
    assert len(live) == 1 and live[0].spec.template.spec.containers[0].image == final_image
    client.close()
