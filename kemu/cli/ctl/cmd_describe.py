"""`kemuctl describe TYPE [NAME_PREFIX...]`: kubectl's readable description of objects.
As kubectl, a name that matches no object exactly describes every object whose name
starts with it; no name (or -l) describes every matching object."""

from __future__ import annotations

import argparse
from typing import Any

from kemu.api import objects
from kemu.api.v1 import api_pb2
from kemu.cli.ctl import parser as cli
from kemu.cli.ctl import resargs
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.describe import describe
from kemu.cli.ctl.errors import Reported, server_error
from kemu.cli.ctl.fetch import check_flags, nothing_found
from kemu.client.errors import NotFound


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("resources", nargs="*", metavar="TYPE [NAME_PREFIX...] | TYPE/NAME...")
    cli.add_selectors(p)
    cli.add_all_namespaces(p)
    p.add_argument("--show-events", default="true", choices=("true", "false"),
                   help="print the events about each object (default true)")


def _by_prefix(ctx: Ctx, group: resargs.Group, name: str,
               namespace: str) -> tuple[list[api_pb2.Object], str]:
    try:
        return [ctx.client.get(group.kind.plural, name, namespace)], ""
    except NotFound as e:
        listed = ctx.client.list(group.kind.plural, namespace).items
        matches = [o for o in listed if objects.meta(o).name.startswith(name)]
        return matches, "" if matches else server_error(e)


def run(ctx: Ctx, args: Any) -> int:
    sel = resargs.parse(args.resources, verb="describe")
    check_flags(sel, all_namespaces=args.all_namespaces, label_selector=args.selector,
                field_selector=args.field_selector)
    namespace = "" if args.all_namespaces else ctx.namespace
    found: list[api_pb2.Object] = []
    errors: list[str] = []
    for group in sel.groups:
        ns = namespace if group.kind.namespaced else ""
        if not group.names:
            found += ctx.client.list(group.kind.plural, ns, label_selector=args.selector,
                                     field_selector=args.field_selector).items
            continue
        for name in group.names:
            matches, error = _by_prefix(ctx, group, name, ns)
            found += matches
            if error:
                errors.append(error)
    texts = [describe(ctx, obj, show_events=args.show_events == "true") for obj in found]
    ctx.write("\n\n".join(texts))
    if not found and not errors:
        ctx.error(nothing_found(ctx, sel.kinds, args.all_namespaces))
    for line in errors:
        ctx.error(line)
    if errors:
        raise Reported()
    return 0
