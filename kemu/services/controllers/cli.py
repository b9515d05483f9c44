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

from kemu.util import logsetup
from kemu.util.argtypes import run_standalone, seconds
from kemu.util.leaderflags import add_leader_election_flags, leader_election_options
from kemu.util.metricsflag import add_metrics_flag

PROG = "kemu controller-manager"


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _seconds(text: str) -> float:
    """kube-controller-manager's durations (`40s`, `5m`), for argparse."""
    try:
        return seconds(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--apiserver", default="127.0.0.1:6443", metavar="HOST:PORT",
                   help="the API server to watch and write through")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16", metavar="CIDR",
                   help="the range node podCIDRs are carved from")
    p.add_argument("--node-cidr-mask-size", type=int, default=24, metavar="BITS",
                   help="prefix length of each node's podCIDR")
    p.add_argument("--controllers", type=_names, default=("*",), metavar="NAME,...",
                   help="controllers to run: endpoints, nodeipam, replicaset, "
                        "replicationcontroller, deployment, daemonset, statefulset, job, "
                        "cronjob, garbagecollector, namespace, nodelifecycle, "
                        "horizontalpodautoscaling, service-lb, or * for all "
                        "(default: *, as kube-controller-manager)")
    for flag, what, default in (("replicaset", "ReplicaSets", 5),
                                ("rc", "ReplicationControllers", 5),
                                ("deployment", "Deployments", 5),
                                ("daemonset", "DaemonSets", 2),
                                ("statefulset", "StatefulSets", 5),
                                ("job", "Jobs", 5),
                                ("cron-job", "CronJobs", 5),
                                ("gc", "garbage collector items", 20),
                                ("namespace", "Namespaces", 10),
                                ("horizontal-pod-autoscaler", "HorizontalPodAutoscalers", 5)):
        p.add_argument(f"--concurrent-{flag}-syncs", type=int, default=default, metavar="N",
                       help=f"{what} synced at once")
    for name, duration, meaning in (
            ("--node-monitor-grace-period", "40s",
             "a node silent this long becomes NotReady (Ready Unknown) and is tainted"),
            ("--pod-eviction-timeout", "5m",
             "pods on an unreachable node are deleted after this (unless they tolerate it)"),
            ("--node-monitor-period", "5s", "how often node health is checked"),
            ("--horizontal-pod-autoscaler-sync-period", "15s",
             "how often each HorizontalPodAutoscaler is evaluated"),
            ("--horizontal-pod-autoscaler-downscale-stabilization", "5m",
             "scale-downs use the highest recommendation of this window")):
        p.add_argument(name, type=_seconds, default=_seconds(duration), metavar="DURATION",
                       help=f"{meaning} (default {duration})")
    p.add_argument("--horizontal-pod-autoscaler-tolerance", type=float, default=0.1,
                   metavar="RATIO", help="usage within this ratio of the target does not "
                                         "scale (default 0.1)")
    p.add_argument("--load-balancer-pool", default="", metavar="CIDR|FIRST-LAST",
                   help="addresses for LoadBalancer Services, announced by the node agents "
                        "(default: none; LoadBalancer Services stay <pending>)")
    p.add_argument("--health-listen", default=None, metavar="HOST:PORT",
                   help="serve grpc.health.v1 here (SERVING once the caches are filled)")
    add_leader_election_flags(p, "kube-controller-manager")
    add_metrics_flag(p)
    logsetup.add_flags(p)


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
    from kemu.client.leaderelection import LeaderElectionConfig, LeaderElectionLost
    from kemu.services.controllers.manager import ControllerManagerConfig
    from kemu.services.controllers.manager import run as run_manager

    try:
        options = leader_election_options(args)
        config = ControllerManagerConfig(
            apiserver=args.apiserver, cluster_cidr=args.cluster_cidr,
            node_cidr_mask_size=args.node_cidr_mask_size,
            controllers=tuple(args.controllers), health_listen=args.health_listen,
            replicaset_workers=args.concurrent_replicaset_syncs,
            rc_workers=args.concurrent_rc_syncs,
            deployment_workers=args.concurrent_deployment_syncs,
            daemonset_workers=args.concurrent_daemonset_syncs,
            statefulset_workers=args.concurrent_statefulset_syncs,
            job_workers=args.concurrent_job_syncs,
            cronjob_workers=args.concurrent_cron_job_syncs,
            gc_workers=args.concurrent_gc_syncs,
            namespace_workers=args.concurrent_namespace_syncs,
            node_monitor_grace_period=args.node_monitor_grace_period,
            pod_eviction_timeout=args.pod_eviction_timeout,
            node_monitor_period=args.node_monitor_period,
            hpa_workers=args.concurrent_horizontal_pod_autoscaler_syncs,
            hpa_sync_period=args.horizontal_pod_autoscaler_sync_period,
            hpa_downscale_stabilization=args.horizontal_pod_autoscaler_downscale_stabilization,
            hpa_tolerance=args.horizontal_pod_autoscaler_tolerance,
            load_balancer_pool=args.load_balancer_pool, metrics_listen=args.metrics_listen,
            leader_election=LeaderElectionConfig(**options) if options is not None else None)
    except ValueError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    try:
        run_manager(config)
    except KeyboardInterrupt:
        return 130
    except (OSError, LeaderElectionLost) as e:  # lost: exit, to be restarted clean
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except RuntimeError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_standalone(PROG, "Run the kemu controller manager.", add_arguments, run, argv)
