"""A node agent killed with -9 at random points while it starts pods, and again while
they run, and restarted each time: it adopts the containers it made, creates none twice
and leaks none (Docker's containers counted by the pod labels), and the pods end Running
and Ready with the same containers as before the last kill. The seed is printed;
KEMU_CHAOS_SEED repeats a run."""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from pathlib import Path

import docker
import pytest

from tests.conftest import Cluster
from tests.e2e.nodeagent.helpers import (
    TOOLS_IMAGE,
    create_namespace,
    create_pod,
    running_agent,
    status_of,
    wait_for,
    wait_ready,
)

pytestmark = pytest.mark.e2e
SLEEP = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
PODS_PER_ROUND, ROUNDS = 3, 3


def containers(client: docker.DockerClient, node: str) -> list[docker.models.containers.Container]:
    return client.containers.list(all=True, filters={"label": f"io.kemu.node={node}"})


def by_pod(client: docker.DockerClient, node: str) -> dict[str, Counter[tuple[str, str]]]:
    """uid -> Counter of (container name label, Docker status)."""
    out: dict[str, Counter[tuple[str, str]]] = {}
    for c in containers(client, node):
        uid = c.labels["io.kemu.pod.uid"]
        out.setdefault(uid, Counter())[(c.labels["io.kemu.container"], c.status)] += 1
    return out


def test_agent_kill9_while_starting_and_running_pods(cluster: Cluster,
                                                     docker_client: docker.DockerClient,
                                                     tmp_path: Path) -> None:
    seed = int(os.environ.get("KEMU_CHAOS_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"\nagent chaos seed {seed}")
    with running_agent(cluster, docker_client, tmp_path, "e2e-chaos") as agent, \
            agent.client() as api:
        ns = "agent-chaos"
        create_namespace(api, ns)
        names: list[str] = []
        kills: list[str] = []
        for r in range(ROUNDS):
            for i in range(PODS_PER_ROUND):
                name = f"r{r}-p{i}"
                create_pod(api, name, ns, agent.node, [
                    {"name": "app", "image": TOOLS_IMAGE, "command": SLEEP}])
                names.append(name)
            pause = rng.uniform(0.1, 2.5)  # a random point of their start-up
            time.sleep(pause)
            kills.append(f"{pause:.2f}s after round {r}")
            agent.proc.kill9()
            agent.restart()
        pods = {n: wait_ready(api, ns, n, timeout=60) for n in names}
        uids = {p.metadata.uid: n for n, p in pods.items()}

        def exactly_one_each() -> bool:
            seen = by_pod(docker_client, agent.node)
            return set(seen) == set(uids) and all(
                c == Counter({("POD", "running"): 1, ("app", "running"): 1})
                for c in seen.values())
        wait_for(exactly_one_each, 20, "one sandbox and one app container per pod, no "
                 f"other container of the node: {by_pod(docker_client, agent.node)}")
        before = {n: (status_of(p, "app").container_id, status_of(p, "app").restart_count,
                      p.status.pod_ip) for n, p in pods.items()}
        ids_before = sorted(c.id for c in containers(docker_client, agent.node))

        # Killed while they run: all adopted, nothing restarted, nothing new.
        agent.proc.kill9()
        assert all(api.get("pods", n, ns).pod.status.phase == "Running" for n in names)
        agent.restart()
        again = {n: wait_ready(api, ns, n, timeout=30) for n in names}
        wait_for(exactly_one_each, 20, "the same containers after the last kill")
        assert sorted(c.id for c in containers(docker_client, agent.node)) == ids_before
        for n, p in again.items():
            assert (status_of(p, "app").container_id, status_of(p, "app").restart_count,
                    p.status.pod_ip) == before[n]
        print(f"agent kill -9 at {', '.join(kills)}, then while running: "
              f"{len(names)} pods, {len(ids_before)} containers, none leaked or doubled")
