"""`kemuctl delete`: by TYPE NAME..., TYPE/NAME, -f FILE, -l selector or --all, with
kubectl's --cascade, --grace-period, --now, --force and --ignore-not-found, printing
`deployment.apps "web" deleted` per object."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

from kemu.api import kinds, objects
from kemu.api.kinds import Kind
from kemu.api.v1 import api_pb2
from kemu.cli.ctl import parser as cli
from kemu.cli.ctl import resargs, sources
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError, Reported, server_error
from kemu.cli.ctl.fetch import nothing_found
from kemu.cli.ctl.table import kind_prefix
from kemu.client.errors import ClientError, NotFound, Unavailable
from kemu.util.tty import StatusLine

CASCADE = {"background": api_pb2.BACKGROUND, "true": api_pb2.BACKGROUND,
           "foreground": api_pb2.FOREGROUND, "orphan": api_pb2.ORPHAN,
           "false": api_pb2.ORPHAN}


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("resources", nargs="*", metavar="TYPE [NAME...] | TYPE/NAME...")
    cli.add_filenames(p, "delete")
    cli.add_selectors(p)
    cli.add_all_namespaces(p)
    p.add_argument("--all", action="store_true", help="every object of the type(s)")
    # kubectl's --cascade takes no value when bare (pflag's NoOptDefVal): "background".
    p.add_argument("--cascade", nargs="?", const="background", default="background",
                   help="background (default; also --cascade alone), foreground or orphan; "
                        "kubectl's older true/false as background/orphan")
    p.add_argument("--grace-period", type=int, default=-1,
                   help="seconds pods get to terminate; -1 uses the pod's own")
    p.add_argument("--now", action="store_true", help="grace period 1: delete immediately")
    p.add_argument("--force", action="store_true",
                   help="with --grace-period=0, do not wait for the node to confirm")
    p.add_argument("--ignore-not-found", action="store_true",
                   help="say nothing about objects that do not exist")
    p.add_argument("--wait", nargs="?", const="true", default="false",
                   choices=("true", "false"),
                   help="wait until the objects are gone (finalizers, foreground)")
    p.add_argument("--timeout", default="60s", help="with --wait, how long to wait")
    cli.add_output(p, "name")


@dataclass(frozen=True)
class Target:
    kind: Kind
    namespace: str
    name: str
    source: str = ""


def grace_period(args: Any) -> int | None:
    if args.now:
        if args.grace_period >= 0:
            raise CtlError("--now and --grace-period cannot be specified together")
        return 1
    if args.force and args.grace_period < 0:
        return 0
    return None if args.grace_period < 0 else int(args.grace_period)


def targets(ctx: Ctx, args: Any) -> tuple[list[Target], list[Kind]]:
    """What to delete, resolved to names (listing for -l/--all), and the kinds involved."""
    if args.filename:
        if args.resources:
            raise CtlError("when -f is given, no resource arguments may be given")
        found = []
        for doc in sources.load(args.filename, recursive=args.recursive, stdin=ctx.stdin,
                                verb="delete"):
            sources.place(doc.obj, ctx.namespace, ctx.namespace_explicit)
            meta = objects.meta(doc.obj)
            found.append(Target(objects.kind_of(doc.obj), meta.namespace, meta.name,
                                doc.source))
        return found, list(dict.fromkeys(t.kind for t in found))
    if not args.resources:
        raise CtlError("You must provide one or more resources by argument or filename.")
    sel = resargs.parse(args.resources, verb="delete")
    if sel.named:
        if args.all or args.selector or args.field_selector:
            raise CtlError("selectors and the --all flag cannot be used when passing "
                           "resource/name arguments")
        return [Target(g.kind, ctx.namespace if g.kind.namespaced else "", n)
                for g in sel.groups for n in g.names], sel.kinds
    if not (args.all or args.selector or args.field_selector):
        raise CtlError(f'resource(s) were provided, but no name was specified; use --all or '
                       f'-l to delete every {sel.kinds[0].singular} or those matching labels')
    namespace = "" if args.all_namespaces else ctx.namespace
    found = []
    for kind in sel.kinds:
        listed = ctx.client.list(kind.plural, namespace if kind.namespaced else "",
                                 label_selector=args.selector, field_selector=args.field_selector)
        for obj in listed.items:
            meta = objects.meta(obj)
            found.append(Target(kind, meta.namespace, meta.name))
    return found, sel.kinds


def cascade_policy(args: Any) -> int:
    """The propagation policy of --cascade. A bare `--cascade` followed by the resource
    (`delete --cascade pod web`) is kubectl's bare flag, not the value `pod`: argparse
    took the next word, so it goes back to the resources."""
    value = args.cascade
    policy = CASCADE.get(value.lower())
    if policy is not None:
        return policy
    if "/" in value or _is_resource(value):
        args.resources.insert(0, value)
        args.cascade = "background"
        return api_pb2.BACKGROUND
    raise CtlError(f'invalid cascade value ({value}). Must be "background", '
                   '"foreground", or "orphan"')


def _is_resource(word: str) -> bool:
    try:
        kinds.resolve(word.partition(",")[0])
    except kinds.UnknownResourceError:
        return False
    return True


def run(ctx: Ctx, args: Any) -> int:
    policy = cascade_policy(args)
    grace = grace_period(args)
    found, kinds = targets(ctx, args)
    if not found:
        ctx.error(nothing_found(ctx, kinds, args.all_namespaces))
        return 0
    if grace == 0:
        ctx.error("Warning: Immediate deletion does not wait for confirmation that the running "
                  "resource has been terminated. The resource may continue to run on the "
                  "cluster indefinitely.")
    errors: list[str] = []
    pending: list[Target] = []
    for t in found:
        try:
            resp = ctx.client.delete(t.kind.plural, t.name, t.namespace,
                                     propagation_policy=policy, grace_period_seconds=grace)
        except NotFound as e:
            if not args.ignore_not_found:
                errors.append(server_error(e, action="deleting", source=t.source))
            continue
        except Unavailable:
            raise
        except ClientError as e:
            errors.append(server_error(e, action="deleting", source=t.source))
            continue
        if args.output == "name":
            ctx.line(f"{kind_prefix(t.kind)}/{t.name}")
        else:
            word = "force deleted" if grace == 0 and args.force else "deleted"
            ctx.line(f'{kind_prefix(t.kind)} "{t.name}" {word}')
        if not resp.deleted:
            pending.append(t)
    if args.wait == "true" and pending:
        wait_gone(ctx, pending, cli.parse_duration(args.timeout))
    for line in errors:
        ctx.error(line)
    if errors:
        raise Reported()
    return 0


def wait_gone(ctx: Ctx, pending: list[Target], timeout: float) -> None:
    """Wait until every target is gone; on a terminal, a status line says which one is
    being waited for and for how long (pods take their grace period to stop)."""
    started = time.monotonic()
    deadline = started + timeout
    status = StatusLine(ctx.err)
    try:
        for i, t in enumerate(pending):
            while True:
                try:
                    ctx.client.get(t.kind.plural, t.name, t.namespace)
                except NotFound:
                    break
                now = time.monotonic()
                if now >= deadline:
                    raise CtlError(f"timed out waiting for the condition on "
                                   f"{t.kind.plural}/{t.name}")
                status.show(f"waiting for {kind_prefix(t.kind)}/{t.name} to be gone "
                            f"({len(pending) - i} left, {now - started:.0f}s)")
                time.sleep(0.2)
    finally:
        status.clear()
