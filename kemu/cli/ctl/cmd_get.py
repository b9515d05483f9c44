"""`kemuctl get`: tables per kind (or yaml/json/name/jsonpath/go-template), -l/--field-selector,
--show-labels/-L, several types at once (`get deploy,svc`, `get all`) and -w."""

from __future__ import annotations

import argparse
from typing import Any

from kemu.api import objects
from kemu.cli.ctl import output, resargs, sources
from kemu.cli.ctl import parser as cli
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import Reported
from kemu.cli.ctl.fetch import Fetched, fetch, nothing_found
from kemu.cli.ctl.table import TableOptions, render


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("resources", nargs="*", metavar="TYPE[.GROUP][,TYPE...] [NAME...]",
                   help="what to get: TYPE, TYPE NAME..., TYPE/NAME..., or all")
    cli.add_output(p, "wide|yaml|json|name|jsonpath=TEMPLATE|go-template=TEMPLATE")
    cli.add_selectors(p)
    cli.add_all_namespaces(p)
    cli.add_filenames(p, "get")
    p.add_argument("-w", "--watch", action="store_true",
                   help="after listing, watch for changes")
    p.add_argument("--watch-only", action="store_true",
                   help="watch for changes without listing first")
    p.add_argument("--output-watch-events", action="store_true",
                   help="with --watch, add an EVENT column (ADDED, MODIFIED, DELETED)")
    p.add_argument("--show-labels", action="store_true", help="add a LABELS column")
    p.add_argument("-L", "--label-columns", action="append", default=[], metavar="KEY",
                   help="add a column with the value of this label; repeatable, comma-separated")
    p.add_argument("--show-kind", action="store_true", help="prefix names with their type")
    p.add_argument("--no-headers", action="store_true", help="omit the header row")
    p.add_argument("--ignore-not-found", action="store_true",
                   help="say nothing about named objects that do not exist")


def table_options(args: Any, fmt: str, several_kinds: bool) -> TableOptions:
    keys = tuple(k.strip() for spec in args.label_columns for k in spec.split(",") if k.strip())
    return TableOptions(wide=fmt == "wide", namespace_column=args.all_namespaces,
                        with_kind=several_kinds or args.show_kind,
                        show_labels=args.show_labels, label_columns=keys,
                        event_column=args.output_watch_events)


def from_files(ctx: Ctx, args: Any) -> Fetched:
    """`get -f FILE`: the live version of every object the files name."""
    found = Fetched()
    for doc in sources.load(args.filename, recursive=args.recursive, stdin=ctx.stdin,
                            verb="get"):
        sources.place(doc.obj, ctx.namespace, ctx.namespace_explicit)
        kind, meta = objects.kind_of(doc.obj), objects.meta(doc.obj)
        one = fetch(ctx, resargs.Selection([resargs.Group(kind, [meta.name])], named=True),
                    namespace=meta.namespace, ignore_not_found=args.ignore_not_found)
        for k, objs in one.groups:
            found.add(k, objs)
        found.errors += one.errors
    return found


def run(ctx: Ctx, args: Any) -> int:
    fmt, template = output.parse_format(args.output, args.template)
    if args.filename:
        if args.resources:
            raise cli.UsageError("when -f is given, no resource arguments may be given",
                                 "kemuctl get")
        found = from_files(ctx, args)
        single = len(found.items) == 1 and len(args.filename) == 1
        kinds = [k for k, _ in found.groups]
        named = True
    else:
        sel = resargs.parse(args.resources, verb="get")
        if args.watch or args.watch_only:
            from kemu.cli.ctl.watch import watch

            return watch(ctx, args, sel, fmt, template,
                         table_options(args, fmt, len(sel.kinds) > 1))
        found = fetch(ctx, sel, all_namespaces=args.all_namespaces,
                      label_selector=args.selector, field_selector=args.field_selector,
                      ignore_not_found=args.ignore_not_found)
        single = sel.single
        kinds = sel.kinds
        named = sel.named
    print_found(ctx, found, args, fmt, template, single, kinds, named)
    for line in found.errors:
        ctx.error(line)
    if found.errors:
        raise Reported()
    return 0


def print_found(ctx: Ctx, found: Fetched, args: Any, fmt: str, template: str, single: bool,
                kinds: list[Any], named: bool) -> None:
    items = found.items
    if fmt in ("table", "wide"):
        opts = table_options(args, fmt, len(kinds) > 1)
        tables = [render(kind, objs, opts, ctx.now(), no_headers=args.no_headers)
                  for kind, objs in found.groups if objs]
        ctx.write("\n".join(tables))
    elif fmt == "name" or items or not single:
        ctx.write(output.render(items, fmt, template, single=single))
    # Named objects that are missing were reported (or ignored) one by one already.
    if not items and not named and fmt in ("table", "wide", "name"):
        ctx.error(nothing_found(ctx, kinds, args.all_namespaces))
