"""Workload controllers across a controller-manager restart: a restarted manager finds
the ReplicaSets and pods it made (the pod-template-hash is stable, expectations start
empty) and creates nothing twice, and picks up what changed while it was down. Its own
module, so its own store + apiserver."""

from __future__ import annotations

import pytest

from kemu.client import Client
from tests.conftest import Cluster
from tests.integration.controllers.conftest import controller_manager
from tests.integration.controllers.test_deployment_process import (
    complete,
    create_deploy,
    live_pods,
    replica_sets,
    set_image,
    settle,
)
from tests.support import processes

pytestmark = pytest.mark.integration

CONTROLLERS = ("--controllers", "replicaset,deployment")


def test_restart_creates_nothing_twice_and_catches_up(cluster: Cluster, client: Client,
                                                      namespace: str) -> None:
    ns = namespace
    cm = controller_manager(cluster.tmp, cluster.server, *CONTROLLERS)
    with processes.running(cm):
        create_deploy(client, ns, "web", 3, "img:v1")
        settle(client, ns, "web", lambda: complete(client, ns, "web", 3), "web complete")
        assert cm.alive(), cm.tail()
    [rs] = replica_sets(client, ns, "web")
    pods = {p.metadata.name for p in live_pods(client, ns, "web")}

    cm2 = controller_manager(cluster.tmp, cluster.server, *CONTROLLERS, name="cm2")
    with processes.running(cm2):
        # Barrier: a Deployment made after the restart completes, so the restarted
        # manager has long synced "web" from its first list.
        create_deploy(client, ns, "marker", 1, "img:v1")
        settle(client, ns, "marker", lambda: complete(client, ns, "marker", 1), "marker")
        assert [r.metadata.name for r in replica_sets(client, ns, "web")] == [rs.metadata.name]
        assert {p.metadata.name for p in live_pods(client, ns, "web")} == pods
        assert complete(client, ns, "web", 3)
        assert cm2.alive(), cm2.tail()

    # Changed while no manager runs: a pod deleted and a new image.
    client.delete("pods", sorted(pods)[0], ns)
    set_image(client, ns, "web", "img:v2")
    cm3 = controller_manager(cluster.tmp, cluster.server, *CONTROLLERS, name="cm3")
    with processes.running(cm3):
        settle(client, ns, "web", lambda: complete(client, ns, "web", 3)
               and len(replica_sets(client, ns, "web")) == 2, "rollout after restart")
        images = {p.spec.containers[0].image for p in live_pods(client, ns, "web")}
        assert images == {"img:v2"}
        assert cm3.alive(), cm3.tail()
