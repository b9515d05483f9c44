"""`kemuctl cordon NODE...` and `kemuctl uncordon NODE...` (or `-l SELECTOR`): set or clear
spec.unschedulable, which the scheduler honours, printing kubectl's `node/NAME cordoned`,
`node/NAME already cordoned`, `node/NAME uncordoned`. `drain` cordons through the same
functions before it deletes anything.

The node is read, changed and written back with its resourceVersion, retrying on
Conflict, because node agents write their nodes all the time.
"""

from __future__ import annotations

import argparse
from typing import Any

from kemu.api import kinds, objects
from kemu.api.v1 import api_pb2
from kemu.cli.ctl import parser as cli
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError, Reported, server_error
from kemu.client.errors import ClientError, Conflict, Unavailable

RETRIES = 5
DRY_RUN_SUFFIX = {"client": " (dry run)", "server": " (server dry run)", "none": ""}


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("nodes", nargs="*", metavar="NODE")
    p.add_argument("-l", "--selector", default="", help="the nodes with these labels")
    cli.add_dry_run(p)


def node_names(args_nodes: list[str]) -> list[str]:
    """NODE or node/NODE; another type is kubectl's error."""
    names = []
    for arg in args_nodes:
        type_text, slash, name = arg.partition("/")
        if not slash:
            names.append(arg)
            continue
        kind = kinds.resolve(type_text)
        if kind.plural != "nodes":
            raise CtlError(f'expected resource of type node, got "{kind.plural}"')
        names.append(name)
    return names


def select_nodes(ctx: Ctx, verb: str, names: list[str], selector: str) -> list[api_pb2.Object]:
    if not names and not selector:
        raise cli.UsageError(f"USAGE: {verb} NODE [flags]", f"kemuctl {verb}")
    if names and selector:
        raise cli.UsageError("cannot specify both a node name and a --selector option",
                             f"kemuctl {verb}")
    if selector:
        return list(ctx.client.list("nodes", label_selector=selector).items)
    return [ctx.client.get("nodes", name) for name in node_names(names)]


def set_unschedulable(ctx: Ctx, node: api_pb2.Object, desired: bool, dry_run: str) -> str:
    """Make the node (un)schedulable; the word kubectl prints for what happened."""
    verb = "cordon" if desired else "uncordon"
    for _ in range(RETRIES):
        if node.node.spec.unschedulable == desired:
            return f"already {verb}ed"
        if dry_run == "client":
            return f"{verb}ed"
        changed = api_pb2.Object()
        changed.CopyFrom(node)
        changed.node.spec.unschedulable = desired
        try:
            ctx.client.update(changed, dry_run=dry_run == "server")
            return f"{verb}ed"
        except Conflict:
            node = ctx.client.get("nodes", objects.meta(node).name)
    raise CtlError(f'unable to {verb} node "{objects.meta(node).name}": too many concurrent '
                   "writers; try again")


def cordon_all(ctx: Ctx, nodes: list[api_pb2.Object], desired: bool, dry_run: str) -> list[str]:
    """(Un)cordon each node, printing one line each; kubectl's error lines for failures."""
    errors = []
    verb = "cordon" if desired else "uncordon"
    for node in nodes:
        name = objects.meta(node).name
        try:
            word = set_unschedulable(ctx, node, desired, dry_run)
        except Unavailable:
            raise
        except ClientError as e:
            errors.append(f'error: unable to {verb} node "{name}": {server_error(e)}')
            continue
        ctx.line(f"node/{name} {word}{DRY_RUN_SUFFIX[dry_run]}")
    return errors


def run(ctx: Ctx, args: Any) -> int:
    nodes = select_nodes(ctx, args.verb, args.nodes, args.selector)
    errors = cordon_all(ctx, nodes, args.verb == "cordon", args.dry_run)
    for line in errors:
        ctx.error(line)
    if errors:
        raise Reported()
    return 0
