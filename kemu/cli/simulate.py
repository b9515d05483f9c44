"""`kemu simulate nodes`: many simulated nodes (no containers) in one process, as KWOK.

For scale work only: the scheduler and control plane benchmarks, and trying a Deployment of
thousands of replicas on one machine. The nodes run the FAKE runtime: nothing runs, pods
just look Running (kemu/nodeagent/simulate.py says how).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from kemu.nodeagent.cli import _labels
from kemu.util import tls
from kemu.util.argtypes import host_port

PROG = "kemu simulate nodes"


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `simulate nodes` on kemu's subcommands."""
    s: argparse.ArgumentParser = subparsers.add_parser(
        "simulate", help="simulated nodes for scale tests (fake runtime, no containers)")
    sim = s.add_subparsers(dest="simulate_command", required=True, metavar="WHAT")
    n = sim.add_parser(
        "nodes", help="run N simulated node agents in this process",
        description="Register N Nodes that run the FAKE runtime (no containers: pods bound "
                    "to them go Running at once with an IP from the node's podCIDR), keep "
                    "their Leases renewed and their Ready condition posted, until SIGINT or "
                    "SIGTERM. For scale tests only, as KWOK.")
    n.add_argument("--count", type=_int, required=True, help="number of nodes (at least 1)")
    n.add_argument("--apiserver", type=host_port, required=True, metavar="HOST:PORT")
    n.add_argument("--name-prefix", default="sim-node",
                   help="nodes are PREFIX-0 .. PREFIX-(N-1) (default sim-node)")
    n.add_argument("--cpu", default="32", help="each node's cpu capacity (default 32)")
    n.add_argument("--memory", default="256Gi", help="each node's memory (default 256Gi)")
    n.add_argument("--max-pods", type=_int, default=110, help="pods per node (default 110)")
    n.add_argument("--labels", type=_labels, default={},
                   help="extra node labels, k=v[,k=v...]")
    n.add_argument("--pod-cidr-range", default="100.64.0.0/10",
                   help="each node's podCIDR is its /24 in this range by its number "
                        "(default 100.64.0.0/10; a node that has one keeps it)")
    n.add_argument("--lease-renew-interval", type=float, default=10.0,
                   help="seconds between renewals of one node's Lease (default 10, as the "
                        "kubelet; longer when --heartbeat-qps cannot keep up)")
    n.add_argument("--node-status-interval", type=float, default=300.0,
                   help="seconds between status posts of one node (default 300, as the "
                        "kubelet's nodeStatusReportFrequency)")
    n.add_argument("--heartbeat-qps", type=float, default=200.0,
                   help="Lease renewals and status posts per second, all nodes together, "
                        "at most (default 200)")
    n.add_argument("--concurrency", type=_int, default=32,
                   help="API calls in flight at most for registrations and pods "
                        "(heartbeats have their own: as many as --heartbeat-qps)")
    n.add_argument("--run-pods", action=argparse.BooleanOptionalAction, default=True,
                   help="make pods bound to these nodes Running and Ready (default); with "
                        "--no-run-pods they stay as the scheduler left them, as the nodes "
                        "of kube-scheduler's scheduler_perf (deletions are still honoured)")
    n.add_argument("--cleanup", action="store_true",
                   help="on SIGINT/SIGTERM, delete the nodes, their Leases and their pods")
    n.add_argument("--token", default=None,
                   help="bearer token for an apiserver started with --token-file "
                        "(default: $KEMU_TOKEN)")
    tls.add_client_flags(n)
    return s


def run(args: argparse.Namespace) -> int:
    """Run the simulator from parsed flags; the exit status (one line on error)."""
    from kemu.nodeagent.simulate import SimulatorConfig, SimulatorError
    from kemu.nodeagent.simulate import run as run_simulator

    try:
        config = SimulatorConfig(
            apiserver=args.apiserver, count=args.count, name_prefix=args.name_prefix,
            token=args.token or os.environ.get("KEMU_TOKEN", ""), cpu=args.cpu,
            memory=args.memory, max_pods=args.max_pods, labels=args.labels,
            pod_cidr_range=args.pod_cidr_range,
            lease_renew_interval=args.lease_renew_interval,
            node_status_interval=args.node_status_interval,
            heartbeat_qps=args.heartbeat_qps, concurrency=args.concurrency,
            cleanup=args.cleanup, run_pods=args.run_pods)
        tls.export_client_flags(args)
    except (ValueError, tls.TLSConfigError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    if config.token:
        os.environ["KEMU_TOKEN"] = config.token
    try:
        run_simulator(config)
    except SimulatorError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
