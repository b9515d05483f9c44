"""The workload controllers in the controller manager: `--controllers` names (and `*`),
per-controller worker flags, and the informers each controller is given."""

from __future__ import annotations

import argparse

import pytest

from kemu.services.controllers import cli
from kemu.services.controllers import manager as mgr
from kemu.services.controllers.deployment import DeploymentController
from kemu.services.controllers.replicaset import ReplicaSetController


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kemu")
    cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["controller-manager", *argv])


def test_worker_flags() -> None:
    args = parse("--controllers", "replicaset,deployment", "--concurrent-replicaset-syncs",
                 "2", "--concurrent-deployment-syncs", "3")
    assert (args.controllers, args.concurrent_replicaset_syncs, args.concurrent_rc_syncs,
            args.concurrent_deployment_syncs) == (("replicaset", "deployment"), 2, 5, 3)


def test_star_means_every_controller_and_is_the_default() -> None:
    assert mgr.ControllerManagerConfig(controllers=("*",)).controllers == mgr.KNOWN
    assert mgr.ControllerManagerConfig().controllers == mgr.KNOWN


def test_bad_worker_count() -> None:
    with pytest.raises(ValueError, match="--concurrent-deployment-syncs"):
        mgr.ControllerManagerConfig(deployment_workers=0)


async def test_manager_builds_workload_controllers_on_shared_informers() -> None:
    m = mgr.ControllerManager(mgr.ControllerManagerConfig(
        controllers=("replicaset", "replicationcontroller", "deployment")))
    try:
        assert set(m.informers) == {"pods", "replicasets", "replicationcontrollers",
                                    "deployments"}
        rs, rc, d = (m.controllers[n] for n in ("replicaset", "replicationcontroller",
                                                 "deployment"))
        assert isinstance(rs, ReplicaSetController) and isinstance(rc, ReplicaSetController)
        assert (rs.workload.kind, rc.workload.kind) == ("ReplicaSet", "ReplicationController")
        assert isinstance(d, DeploymentController)
        assert rs.pods is rc.pods is d.pods, "one pods informer for all"
    finally:
        await m.client.close()
