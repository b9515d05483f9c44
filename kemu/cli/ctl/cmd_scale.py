"""`kemuctl scale TYPE NAME --replicas N`: set replicas through the scale subresource,
optionally only if the current size is --current-replicas."""

from __future__ import annotations

import argparse
from typing import Any

from kemu.api import objects
from kemu.cli.ctl import parser as cli
from kemu.cli.ctl import resargs
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError, Reported, server_error
from kemu.cli.ctl.fetch import fetch, nothing_found
from kemu.cli.ctl.output import name_of
from kemu.client.errors import ClientError, Unavailable


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("resources", nargs="*", metavar="TYPE NAME | TYPE/NAME")
    p.add_argument("--replicas", type=int, required=True, help="the new number of replicas")
    p.add_argument("--current-replicas", type=int, default=-1,
                   help="only scale if the current number of replicas is this")
    cli.add_selectors(p)
    p.add_argument("--all", action="store_true", help="every object of the type")


def current_replicas(obj: Any) -> int:
    spec = objects.unwrap(obj).spec
    return int(spec.replicas) if spec.HasField("replicas") else 1


def run(ctx: Ctx, args: Any) -> int:
    if args.replicas < 0:
        raise CtlError("The --replicas=COUNT flag is required, and COUNT must be greater than "
                       "or equal to 0")
    sel = resargs.parse(args.resources, verb="scale")
    if not sel.named and not (args.all or args.selector or args.field_selector):
        raise CtlError("resource(s) were provided, but no name was specified")
    found = fetch(ctx, sel, label_selector=args.selector, field_selector=args.field_selector)
    errors = list(found.errors)
    if not found.items and not errors:
        ctx.error(nothing_found(ctx, sel.kinds, False))
    for obj in found.items:
        kind, meta = objects.kind_of(obj), objects.meta(obj)
        if args.current_replicas >= 0 and current_replicas(obj) != args.current_replicas:
            errors.append(f"error: Expected replicas to be {args.current_replicas}, was "
                          f"{current_replicas(obj)}")
            continue
        try:
            ctx.client.scale(kind.plural, meta.name, args.replicas, meta.namespace)
        except Unavailable:
            raise
        except ClientError as e:
            errors.append(server_error(e))
            continue
        ctx.line(f"{name_of(obj)} scaled")
    for line in errors:
        ctx.error(line)
    if errors:
        raise Reported()
    return 0
