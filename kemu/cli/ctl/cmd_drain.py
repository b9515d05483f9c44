"""`kemuctl drain NODE [--ignore-daemonsets] [--force] [--delete-emptydir-data]
[--grace-period N] [--timeout D] [--pod-selector S]`: cordon the node, then remove its pods
and wait until they are gone, as kubectl does.

kubectl evicts; kemu has no Eviction subresource (and no PodDisruptionBudgets), so each pod
is deleted with its own grace period (or --grace-period), and the output keeps kubectl's
eviction wording (`evicting pod ns/name`, `pod/name evicted`, `node/NAME drained`). Which
pods may go is decided before anything is deleted (`drainfilter`): DaemonSet pods are
left alone with --ignore-daemonsets and refused without; bare pods need --force; pods with
emptyDir volumes need --delete-emptydir-data. A pod is gone when the API no longer has it
(or has a new pod of that name): a bound pod stays Terminating until its node agent has
stopped it, so drain polls until then or until --timeout. The failure report is kubectl's,
several lines on stderr, because scripts and people compare it with kubectl's.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from kemu.cli.ctl import cmd_cordon
from kemu.cli.ctl import drainfilter as df
from kemu.cli.ctl import parser as cli
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import Reported
from kemu.client.errors import ClientError, NotFound, Unavailable

POLL_SECONDS = 0.5


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("nodes", nargs="*", metavar="NODE")
    p.add_argument("-l", "--selector", default="", help="the nodes with these labels")
    p.add_argument("--force", action="store_true",
                   help="continue even if there are pods that do not declare a controller")
    p.add_argument("--ignore-daemonsets", action="store_true", help="ignore DaemonSet-managed pods")
    p.add_argument("--delete-emptydir-data", action="store_true",
                   help="continue even if there are pods using emptyDir (local data that will "
                        "be deleted when the node is drained)")
    p.add_argument("--delete-local-data", action="store_true",
                   help="deprecated: use --delete-emptydir-data")
    p.add_argument("--grace-period", type=int, default=-1,
                   help="seconds each pod gets to terminate; negative: the pod's own")
    p.add_argument("--timeout", default="0s",
                   help="how long to wait before giving up, e.g. 5m; 0 means forever")
    p.add_argument("--pod-selector", default="", help="only the pods with these labels")
    p.add_argument("--disable-eviction", action="store_true",
                   help="delete rather than evict (kemu always deletes)")
    p.add_argument("--skip-wait-for-delete-timeout", type=int, default=0,
                   help="do not wait for pods deleted more than this many seconds ago")
    cli.add_dry_run(p)


def run(ctx: Ctx, args: Any) -> int:
    if args.delete_local_data:
        ctx.error("Flag --delete-local-data has been deprecated, This option is deprecated and "
                  "will be deleted. Use --delete-emptydir-data.")
    nodes = cmd_cordon.select_nodes(ctx, "drain", args.nodes, args.selector)
    for line in cmd_cordon.cordon_all(ctx, nodes, True, args.dry_run):
        ctx.error(line)
    opts = df.Options(force=args.force, ignore_daemonsets=args.ignore_daemonsets,
                      delete_emptydir_data=args.delete_emptydir_data or args.delete_local_data,
                      skip_wait_for_delete_timeout=args.skip_wait_for_delete_timeout)
    timeout = cli.parse_duration(args.timeout)
    failed: list[tuple[str, list[str]]] = []
    for node in nodes:
        name = node.node.metadata.name
        problems = drain_node(ctx, name, opts, args, timeout)
        if not problems:
            ctx.line(f"node/{name} drained{cmd_cordon.DRY_RUN_SUFFIX[args.dry_run]}")
            continue
        ctx.err.write(f'error: unable to drain node "{name}" due to error: '
                      f"{df.aggregate(problems)}, continuing command...\n")
        failed.append((name, problems))
    if not failed:
        return 0
    lines = ["There are pending nodes to be drained:", *(f" {name}" for name, _ in failed)]
    # kubectl's final error: the one node's messages one per line, else one line per node.
    lines += failed[0][1] if len(failed) == 1 else [df.aggregate(p) for _, p in failed]
    ctx.err.write("".join(line + "\n" for line in lines))
    ctx.err.flush()
    raise Reported()


def _daemonset_lookup(ctx: Ctx) -> df.DaemonSetLookup:
    def missing(namespace: str, name: str) -> str | None:
        try:
            ctx.client.get("daemonsets", name, namespace)
        except NotFound as e:
            return e.message
        return None
    return missing


def pods_on(ctx: Ctx, node: str, pod_selector: str) -> list[Any]:
    listed = ctx.client.list("pods", "", label_selector=pod_selector,
                             field_selector=f"spec.nodeName={node}")
    return [o.pod for o in listed.items]


def drain_node(ctx: Ctx, node: str, opts: df.Options, args: Any,
               timeout: float) -> list[str]:
    """Remove the node's pods; the error messages if it could not (empty: drained)."""
    decisions = df.classify(pods_on(ctx, node, args.pod_selector), opts,
                            _daemonset_lookup(ctx), ctx.now())
    refused = df.errors(decisions)
    if refused:
        return refused
    warning = df.warnings(decisions)
    if warning:
        ctx.error(f"Warning: {warning}")
    victims = df.to_delete(decisions)
    if args.dry_run != "none":
        word = "dry run" if args.dry_run == "client" else "server dry run"
        for pod in victims:
            ctx.line(f"evicting pod {pod.metadata.namespace}/{pod.metadata.name} ({word})")
        return []
    problems = evict(ctx, victims, args.grace_period, timeout, opts.skip_wait_for_delete_timeout)
    if problems:
        pending = df.to_delete(df.classify(pods_on(ctx, node, args.pod_selector), opts,
                                           _daemonset_lookup(ctx), ctx.now()))
        if pending:
            ctx.err.write(f'There are pending pods in node "{node}" when an error occurred: '
                          f"{df.aggregate(problems)}\n")
            ctx.err.write("".join(f"pod/{p.metadata.name}\n" for p in pending))
            ctx.err.flush()
    return problems


def evict(ctx: Ctx, pods: list[Any], grace: int, timeout: float, skip_seconds: int) -> list[str]:
    """Delete each pod, then wait until every one is gone; kubectl's messages for the
    pods that could not be deleted or did not go in time."""
    problems: list[str] = []
    waiting: list[Any] = []
    for pod in pods:
        ns, name = pod.metadata.namespace, pod.metadata.name
        ctx.line(f"evicting pod {ns}/{name}")
        try:
            ctx.client.delete("pods", name, ns, grace_period_seconds=grace if grace >= 0 else None)
        except NotFound:
            continue
        except Unavailable:
            raise
        except ClientError as e:
            problems.append(f'error when evicting pods/"{name}" -n "{ns}": {e.message}')
            continue
        waiting.append(pod)
    return problems + wait_gone(ctx, waiting, timeout, skip_seconds)


def wait_gone(ctx: Ctx, pods: list[Any], timeout: float, skip_seconds: int) -> list[str]:
    """Poll until each pod is gone (or replaced by a new pod of its name), printing
    `pod/NAME evicted` as each goes; the timeout messages for those that did not."""
    deadline = time.monotonic() + timeout if timeout > 0 else float("inf")
    pending = list(pods)
    while True:
        still = []
        for pod in pending:
            ns, name = pod.metadata.namespace, pod.metadata.name
            try:
                current = ctx.client.get("pods", name, ns).pod
            except NotFound:
                ctx.line(f"pod/{name} evicted")
                continue
            if current.metadata.uid != pod.metadata.uid:
                ctx.line(f"pod/{name} evicted")
                continue
            if df.should_skip(current, skip_seconds, ctx.now()):
                ctx.line(f'pod "{name}" has DeletionTimestamp older than {skip_seconds} '
                         "seconds, skipping")
                continue
            still.append(pod)
        pending = still
        if not pending:
            return []
        left = deadline - time.monotonic()
        if left <= 0:
            return [f'error when waiting for pod "{p.metadata.name}" in namespace '
                    f'"{p.metadata.namespace}" to terminate: global timeout reached: '
                    f"{df.go_duration(timeout)}" for p in pending]
        time.sleep(min(POLL_SECONDS, left))
