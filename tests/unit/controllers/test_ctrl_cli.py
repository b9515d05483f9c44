"""`kemu controller-manager` flags: registered on kemu's subcommands with the defaults the
design names (10.244.0.0/16, /24, both controllers)."""

from __future__ import annotations

import argparse

import pytest

from kemu.services.controllers import cli


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kemu")
    sub = parser.add_subparsers(dest="command")
    cli.add_parser(sub)
    return parser.parse_args(["controller-manager", *argv])


def test_defaults() -> None:
    args = parse()
    assert (args.apiserver, args.cluster_cidr, args.node_cidr_mask_size, args.controllers,
            args.health_listen) == ("127.0.0.1:6443", "10.244.0.0/16", 24,
                                    ("*",), None)


def test_flags() -> None:
    args = parse("--apiserver", "10.0.0.1:6443", "--cluster-cidr", "10.200.0.0/16",
                 "--node-cidr-mask-size", "26", "--controllers", "nodeipam",
                 "--health-listen", "127.0.0.1:10257")
    assert (args.cluster_cidr, args.node_cidr_mask_size, args.controllers,
            args.health_listen) == ("10.200.0.0/16", 26, ("nodeipam",), "127.0.0.1:10257")


def test_bad_value_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(parse("--controllers", "nope")) == 2
    err = capsys.readouterr().err
    assert err == ("kemu controller-manager: error: --controllers: unknown controller "
                   "'nope' (known: endpoints, nodeipam, replicaset, "
                   "replicationcontroller, deployment, daemonset, statefulset, job, "
                   "cronjob, garbagecollector, namespace, nodelifecycle, horizontalpodautoscaling, "
                   "service-lb)\n")


def test_leader_election_defaults_as_kube_controller_manager() -> None:
    args = parse()
    assert (args.leader_elect, args.leader_elect_resource_name,
            args.leader_elect_resource_namespace, args.leader_elect_lease_duration,
            args.leader_elect_renew_deadline, args.leader_elect_retry_period) == (
        True, "kube-controller-manager", "kube-system", 15.0, 10.0, 2.0)
    assert parse("--leader-elect=false").leader_elect is False


def test_bad_leader_election_timings_one_line_exit_2(capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    assert cli.run(parse("--leader-elect-lease-duration", "5s",
                         "--leader-elect-renew-deadline", "10s")) == 2
    assert capsys.readouterr().err == (
        "kemu controller-manager: error: --leader-elect-lease-duration must be greater "
        "than --leader-elect-renew-deadline\n")
