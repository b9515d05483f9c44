"""`kemu scheduler` and `python -m kemu.services.scheduler`: flags -> SchedulerConfig -> run.

Kept free of heavy imports (grpc, the framework) so that `kemu` can import it at start-up
to register the subcommand; `run` imports the scheduler only when it is chosen. Flags are
validated by SchedulerConfig, so a bad value is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kemu.services.scheduler.config import SchedulerConfig
from kemu.util import logsetup
from kemu.util.argtypes import run_standalone
from kemu.util.leaderflags import add_leader_election_flags, leader_election_options
from kemu.util.metricsflag import add_metrics_flag

PROG = "kemu scheduler"


def _optional_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--apiserver", default="127.0.0.1:6443", metavar="HOST:PORT",
                   help="the API server to watch and bind through")
    p.add_argument("--scheduler-name", default="default-scheduler",
                   help="schedule pods whose spec.schedulerName is this")
    p.add_argument("--percentage-of-nodes-to-score", type=_optional_int, default=None,
                   metavar="PCT", help="stop filtering after this share of nodes fit "
                   "(default: kube-scheduler's adaptive rule, all nodes below 100)")
    p.add_argument("--health-listen", default=None, metavar="HOST:PORT",
                   help="serve grpc.health.v1 here (SERVING once the caches are filled)")
    p.add_argument("--bind-concurrency", type=int, default=64,
                   help="Bind RPCs in flight at most")
    p.add_argument("--unschedulable-retry-seconds", type=float, default=30.0,
                   help="retry pods that fit nowhere at least this often")
    p.add_argument("--seed", type=_optional_int, default=None,
                   help="seed for breaking score ties (reproducible placement)")
    add_leader_election_flags(p, "kube-scheduler")
    add_metrics_flag(p)
    logsetup.add_flags(p)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `scheduler` on kemu's subcommands (an argparse _SubParsersAction)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "scheduler", help="run the scheduler (binds pending pods to nodes)",
        description="Watch pods and nodes through the API server and bind each pending pod "
                    "to a node, as kube-scheduler does.")
    add_arguments(p)
    return p


def config_from_args(args: argparse.Namespace) -> SchedulerConfig:
    """Raises ValueError with a one-line message on a bad value."""
    from kemu.client.leaderelection import LeaderElectionConfig

    options = leader_election_options(args)
    return SchedulerConfig(
        apiserver=args.apiserver, scheduler_name=args.scheduler_name,
        percentage_of_nodes_to_score=args.percentage_of_nodes_to_score,
        health_listen=args.health_listen, bind_concurrency=args.bind_concurrency,
        unschedulable_retry_seconds=args.unschedulable_retry_seconds, seed=args.seed,
        metrics_listen=args.metrics_listen,
        leader_election=LeaderElectionConfig(**options) if options is not None else None)


def run(args: argparse.Namespace) -> int:
    """Run the scheduler from parsed flags; the exit status."""
    try:
        config = config_from_args(args)
    except ValueError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    from kemu.client.leaderelection import LeaderElectionLost
    from kemu.services.scheduler.scheduler import run as run_scheduler

    try:
        run_scheduler(config)
    except KeyboardInterrupt:
        return 130
    except LeaderElectionLost as e:  # as kube-scheduler: exit, to be restarted clean
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_standalone(PROG, "Run the kemu scheduler.", add_arguments, run, argv)
