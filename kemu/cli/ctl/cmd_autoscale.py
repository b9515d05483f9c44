"""`kemuctl autoscale TYPE NAME --max M [--min N] [--cpu-percent P]`: create a
HorizontalPodAutoscaler for a Deployment, ReplicaSet, StatefulSet or ReplicationController,
as `kubectl autoscale` does.

The autoscaler is named after its target unless --name says otherwise. Bounds and target
left out are left to the server's defaults (minReplicas 1, cpu at 80%), as kubectl leaves
them, so that the stored object reads the same whichever client made it.
"""

from __future__ import annotations

import argparse
from typing import Any

from kemu.api import kinds, objects
from kemu.api.v1 import api_pb2, autoscaling_pb2
from kemu.cli.ctl import batch, cmd_expose, output
from kemu.cli.ctl import parser as cli
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError

SCALABLE = ("deployments", "replicasets", "statefulsets", "replicationcontrollers")


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("resources", nargs="*", metavar="TYPE NAME | TYPE/NAME",
                   help="deployment, replicaset, statefulset or replicationcontroller, and "
                        "its name")
    p.add_argument("--max", type=int, default=-1, metavar="MAXPODS",
                   help="the upper limit for the number of pods (required)")
    p.add_argument("--min", type=int, default=-1, metavar="MINPODS",
                   help="the lower limit for the number of pods (default: the server's, 1)")
    p.add_argument("--cpu-percent", type=int, default=-1, metavar="CPU",
                   help="the target average CPU utilization over all the pods, in percent "
                        "of their requests (default: the server's, 80)")
    p.add_argument("--name", default="", help="the autoscaler's name (default: the target's)")
    cli.add_output(p, "yaml|json|name")
    cli.add_dry_run(p)


def check_bounds(min_pods: int, max_pods: int) -> None:
    """kubectl's checks and wording for --min and --max."""
    if max_pods < 1:
        raise CtlError(f"--max=MAXPODS is required and must be at least 1, max: {max_pods}")
    if max_pods < min_pods:
        raise CtlError(f"--max=MAXPODS must be larger or equal to --min=MINPODS, max: "
                       f"{max_pods}, min: {min_pods}")


def build_hpa(kind: kinds.Kind, target_meta: Any, *, name: str, min_pods: int, max_pods: int,
              cpu_percent: int) -> api_pb2.Object:
    """The HorizontalPodAutoscaler for the target; negative values are left unset."""
    hpa = autoscaling_pb2.HorizontalPodAutoscaler()
    hpa.metadata.name = name or target_meta.name
    hpa.metadata.namespace = target_meta.namespace
    ref = hpa.spec.scale_target_ref
    ref.api_version, ref.kind, ref.name = kind.api_version, kind.kind, target_meta.name
    hpa.spec.max_replicas = max_pods
    if min_pods >= 0:
        hpa.spec.min_replicas = min_pods
    if cpu_percent >= 0:
        metric = hpa.spec.metrics.add(type="Resource")
        metric.resource.name = "cpu"
        metric.resource.target.type = "Utilization"
        metric.resource.target.average_utilization = cpu_percent
    return objects.fill_type_meta(objects.wrap(hpa))


def run(ctx: Ctx, args: Any) -> int:
    fmt, template = output.parse_format(args.output, args.template)
    check_bounds(args.min, args.max)
    kind, name = cmd_expose.target(args.resources, verb="autoscale", allowed=SCALABLE)
    obj = objects.unwrap(ctx.client.get(kind.plural, name, ctx.namespace))
    hpa = build_hpa(kind, obj.metadata, name=args.name, min_pods=args.min,
                    max_pods=args.max, cpu_percent=args.cpu_percent)
    if args.dry_run == "client":
        batch.report(ctx, hpa, "autoscaled (dry run)", fmt, template)
        return 0
    server_dry = args.dry_run == "server"
    created = ctx.client.create(hpa, dry_run=server_dry)
    batch.report(ctx, created, "autoscaled" + (" (server dry run)" if server_dry else ""),
                 fmt, template)
    return 0
