"""`kemu scheduler` flags -> SchedulerConfig: leader election on by default with
kube-scheduler's Lease and timings, off with --leader-elect=false."""

from __future__ import annotations

import argparse

import pytest

from kemu.services.scheduler import cli


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kemu")
    cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["scheduler", *argv])


def test_leader_election_on_by_default() -> None:
    le = cli.config_from_args(parse()).leader_election
    assert le is not None
    assert (le.resource_name, le.resource_namespace, le.lease_duration, le.renew_deadline,
            le.retry_period) == ("kube-scheduler", "kube-system", 15.0, 10.0, 2.0)


def test_leader_election_off_and_short_timings() -> None:
    assert cli.config_from_args(parse("--leader-elect=false")).leader_election is None
    le = cli.config_from_args(parse("--leader-elect-lease-duration", "3s",
                                    "--leader-elect-renew-deadline", "2s",
                                    "--leader-elect-retry-period", "500ms",
                                    "--leader-elect-resource-name", "my-scheduler"))
    assert le.leader_election is not None
    assert (le.leader_election.resource_name, le.leader_election.retry_period) == (
        "my-scheduler", 0.5)


def test_bad_timings_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(parse("--leader-elect-retry-period", "9s")) == 2
    assert capsys.readouterr().err == (
        "kemu scheduler: error: --leader-elect-renew-deadline must be greater than "
        "1.2 x --leader-elect-retry-period\n")
