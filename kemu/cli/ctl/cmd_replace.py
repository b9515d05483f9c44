"""`kemuctl replace -f`: put the objects of the files in place of the live ones. A
resourceVersion in the file makes it conditional, so replacing from a stale copy is a
Conflict, worded as kubectl words it."""

from __future__ import annotations

import argparse
from typing import Any

from kemu.api.v1 import api_pb2
from kemu.cli.ctl import batch, output, sources
from kemu.cli.ctl import parser as cli
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    cli.add_filenames(p, "replace")
    cli.add_output(p, "yaml|json|name")


def run(ctx: Ctx, args: Any) -> int:
    if not args.filename:
        raise CtlError("must specify --filename to replace")
    fmt, template = output.parse_format(args.output, args.template)
    docs = sources.load(args.filename, recursive=args.recursive, stdin=ctx.stdin,
                        verb="replace")
    for doc in docs:
        sources.place(doc.obj, ctx.namespace, ctx.namespace_explicit)

    def replace(obj: api_pb2.Object) -> tuple[api_pb2.Object, str]:
        return ctx.client.update(obj), "replaced"

    batch.write_each(ctx, batch.namespaces_first(docs), "replacing", replace, fmt,
                     template)
    return 0
