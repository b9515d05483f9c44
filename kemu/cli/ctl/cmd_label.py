"""`kemuctl label` and `kemuctl annotate`: `k=v` sets, `k-` removes, changing an existing
value needs --overwrite (kubectl's error otherwise). Each object is read, changed and
written back with its resourceVersion, retrying a few times on Conflict, so a concurrent
writer's change is never lost."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from kemu.api import names, objects
from kemu.api.v1 import api_pb2
from kemu.cli.ctl import parser as cli
from kemu.cli.ctl import resargs
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError, Reported, server_error
from kemu.cli.ctl.fetch import fetch, nothing_found
from kemu.cli.ctl.output import name_of
from kemu.client.errors import Conflict

RETRIES = 5


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("args", nargs="*", metavar="TYPE NAME KEY=VAL... | TYPE/NAME KEY- ...")
    p.add_argument("--overwrite", action="store_true",
                   help="allow changing a value that is already set")
    cli.add_selectors(p)
    cli.add_all_namespaces(p)
    p.add_argument("--all", action="store_true", help="every object of the type")
    p.add_argument("--resource-version", default="",
                   help="only change the object if it is still at this resourceVersion")
    p.add_argument("--list", action="store_true", help="print the current values")
    cli.add_output(p, "name")


@dataclass(frozen=True)
class Changes:
    set: dict[str, str]
    remove: list[str]


def split_args(args: list[str]) -> tuple[list[str], list[str]]:
    """Resource arguments first, then KEY=VAL / KEY- changes."""
    for i, arg in enumerate(args):
        if "=" in arg or (arg.endswith("-") and i > 0):
            return args[:i], args[i:]
    return args, []


def parse_changes(tokens: list[str], verb: str) -> Changes:
    sets: dict[str, str] = {}
    removes: list[str] = []
    for token in tokens:
        if "=" in token:
            key, _, value = token.partition("=")
            problems = names.qualified_name(key)
            if verb == "label":
                problems += names.label_value(value)
            if problems:
                raise CtlError(f"invalid {verb} spec: {token}: {'; '.join(problems)}")
            sets[key] = value
        elif token.endswith("-"):
            removes.append(token[:-1])
        else:
            raise CtlError(f"invalid {verb} format: {token}")
    for key in removes:
        if key in sets:
            raise CtlError(f"can not both modify and remove the {verb} {key!r} "
                           "in the same command")
    return Changes(sets, removes)


def apply_changes(current: Any, changes: Changes, overwrite: bool) -> bool:
    """Change a labels/annotations map in place; True when anything changed."""
    for key, value in changes.set.items():
        if not overwrite and key in current and current[key] != value:
            raise CtlError(f"'{key}' already has a value ({current[key]}), and --overwrite "
                           "is false")
    changed = False
    for key, value in changes.set.items():
        if current.get(key) != value:
            current[key] = value
            changed = True
    for key in changes.remove:
        if key in current:
            del current[key]
            changed = True
    return changed


def change_one(ctx: Ctx, obj: api_pb2.Object, changes: Changes, verb: str,
               overwrite: bool, resource_version: str) -> tuple[api_pb2.Object, bool]:
    kind = objects.kind_of(obj)
    for attempt in range(RETRIES):
        meta = objects.meta(obj)
        target = meta.labels if verb == "label" else meta.annotations
        if not apply_changes(target, changes, overwrite):
            return obj, False
        if resource_version:
            meta.resource_version = resource_version
        try:
            return ctx.client.update(obj), True
        except Conflict:
            if resource_version or attempt == RETRIES - 1:
                raise
            obj = ctx.client.get(kind.plural, meta.name, meta.namespace)
    raise AssertionError("unreachable")


def run(ctx: Ctx, args: Any) -> int:
    verb = args.verb
    resource_args, change_tokens = split_args(list(args.args))
    if not resource_args:
        raise CtlError("one or more resources must be specified as <resource> <name> or "
                       "<resource>/<name>")
    if not change_tokens and not args.list:
        raise CtlError(f"at least one {verb} update is required")
    changes = parse_changes(change_tokens, verb)
    sel = resargs.parse(resource_args, verb=verb)
    if not sel.named and not (args.all or args.selector or args.field_selector):
        raise CtlError("resource(s) were provided, but no name was specified")
    found = fetch(ctx, sel, all_namespaces=args.all_namespaces, label_selector=args.selector,
                  field_selector=args.field_selector)
    errors = list(found.errors)
    if not found.items and not errors:
        ctx.error(nothing_found(ctx, sel.kinds, args.all_namespaces))
    past = {"label": "labeled", "annotate": "annotated"}[verb]
    for obj in found.items:
        if args.list:
            meta = objects.meta(obj)
            values = meta.labels if verb == "label" else meta.annotations
            for key in sorted(values):
                ctx.line(f"{key}={values[key]}")
            continue
        try:
            written, changed = change_one(ctx, obj, changes, verb, args.overwrite,
                                          args.resource_version)
        except Conflict as e:
            errors.append(server_error(e))
            continue
        if args.output == "name":
            ctx.line(name_of(written))
        else:
            ctx.line(f"{name_of(written)} {past if changed else 'not ' + past}")
    for line in errors:
        ctx.error(line)
    if errors:
        raise Reported()
    return 0
