"""`--metrics-listen`, kept apart from kemu.util.metrics so that registering a subcommand's
flags does not import prometheus_client and grpc (the components import those when run)."""

from __future__ import annotations

import argparse

from kemu.util.argtypes import host_port

METRICS_HELP = ("serve Prometheus metrics over HTTP at /metrics on HOST:PORT "
                "(default: off); docs/metrics.md lists the series")


def add_metrics_flag(parser: argparse.ArgumentParser) -> None:
    """`--metrics-listen HOST:PORT` on a component's parser (dest metrics_listen)."""
    parser.add_argument("--metrics-listen", type=host_port, default=None, metavar="HOST:PORT",
                        help=METRICS_HELP)
