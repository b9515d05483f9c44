"""`kemu controller-manager` and `python -m kemu.services.controllers`: flags -> config -> run.

Kept free of heavy imports (grpc, informers) so that `kemu` can import it at start-up to
register the subcommand; `run` imports the manager only when it is chosen. Flags are
validated by ControllerManagerConfig, so a bad value is one line on stderr and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kemu.util.argtypes import run_standalone

PROG = "kemu controller-manager"


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--apiserver", default="127.0.0.1:6443", metavar="HOST:PORT",
                   help="the API server to watch and write through")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16", metavar="CIDR",
                   help="the range node podCIDRs are carved from")
    p.add_argument("--node-cidr-mask-size", type=int, default=24, metavar="BITS",
                   help="prefix length of each node's podCIDR")
    p.add_argument("--controllers", type=_names, default=("*",), metavar="NAME,...",
                   help="controllers to run: endpoints, nodeipam, replicaset, "
                        "replicationcontroller, deployment, service-lb, or * for all "
                        "(default: *, as kube-controller-manager)")
    for flag, what in (("replicaset", "ReplicaSets"), ("rc", "ReplicationControllers"),
                       ("deployment", "Deployments")):
        p.add_argument(f"--concurrent-{flag}-syncs", type=int, default=5, metavar="N",
                       help=f"{what} synced at once")
    p.add_argument("--load-balancer-pool", default="", metavar="CIDR|FIRST-LAST",
                   help="addresses for LoadBalancer Services, announced by the node agents "
                        "(default: none; LoadBalancer Services stay <pending>)")
    p.add_argument("--health-listen", default=None, metavar="HOST:PORT",
                   help="serve grpc.health.v1 here (SERVING once the caches are filled)")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `controller-manager` on kemu's subcommands (an argparse _SubParsersAction)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "controller-manager",
        help="run the controller manager (endpoints, node podCIDRs, workloads)",
        description="Watch the cluster through the API server and drive it toward its "
                    "declared state, as kube-controller-manager does.")
    add_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the controller manager from parsed flags; the exit status."""
    from kemu.services.controllers.manager import ControllerManagerConfig
    from kemu.services.controllers.manager import run as run_manager

    try:
        config = ControllerManagerConfig(
            apiserver=args.apiserver, cluster_cidr=args.cluster_cidr,
            node_cidr_mask_size=args.node_cidr_mask_size,
            controllers=tuple(args.controllers), health_listen=args.health_listen,
            replicaset_workers=args.concurrent_replicaset_syncs,
            rc_workers=args.concurrent_rc_syncs,
            deployment_workers=args.concurrent_deployment_syncs,
            load_balancer_pool=args.load_balancer_pool)
    except ValueError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    try:
        run_manager(config)
    except KeyboardInterrupt:
        return 130
    except OSError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except RuntimeError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_standalone(PROG, "Run the kemu controller manager.", add_arguments, run, argv)
