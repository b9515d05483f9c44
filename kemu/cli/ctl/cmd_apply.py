"""`kemuctl apply -f`: create or update objects to match manifests, printing
created/configured/unchanged per object as kubectl does.

A batch is all or nothing at validation time: every document is parsed strictly on the
client, then checked by the server with a dry-run apply, and only when all of them pass
is anything written. Namespaces in the batch are applied first; a document whose dry run
fails only because its namespace is created by the same batch is let through.
"""

from __future__ import annotations

import argparse
from typing import Any

from kemu.api.v1 import api_pb2
from kemu.cli.ctl import batch, output, sources
from kemu.cli.ctl import parser as cli
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError, Reported, server_error
from kemu.client.errors import ClientError, Unavailable

RESULTS = {api_pb2.ApplyResponse.CREATED: "created",
           api_pb2.ApplyResponse.CONFIGURED: "configured",
           api_pb2.ApplyResponse.UNCHANGED: "unchanged"}


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    cli.add_filenames(p, "apply")
    cli.add_output(p, "yaml|json|name")
    cli.add_dry_run(p)


def validate(ctx: Ctx, docs: list[sources.Document]) -> dict[int, str]:
    """Dry-run every document on the server; raise Reported after printing every problem.
    Returns what each document would do (by position), for --dry-run."""
    created_here = batch.batch_namespaces(docs)
    errors: list[str] = []
    outcomes: dict[int, str] = {}
    for i, doc in enumerate(docs):
        try:
            resp = ctx.client.apply(doc.obj, dry_run=True)
            outcomes[i] = RESULTS.get(resp.result, "configured")
        except Unavailable:
            raise
        except ClientError as e:
            if batch.waits_for_batch_namespace(e, doc.obj, created_here):
                outcomes[i] = "created"
                continue
            errors.append(server_error(e, action="applying", source=doc.source))
    if errors:
        for line in errors:
            ctx.error(line)
        raise Reported()
    return outcomes


def run(ctx: Ctx, args: Any) -> int:
    if not args.filename:
        raise CtlError("must specify one of -f and -k")
    fmt, template = output.parse_format(args.output, args.template)
    docs = sources.load(args.filename, recursive=args.recursive, stdin=ctx.stdin)
    for doc in docs:
        sources.place(doc.obj, ctx.namespace, ctx.namespace_explicit)
    docs = batch.namespaces_first(docs)
    outcomes = validate(ctx, docs)
    if args.dry_run != "none":
        suffix = "(server dry run)" if args.dry_run == "server" else "(dry run)"
        for i, doc in enumerate(docs):
            batch.report(ctx, doc.obj, f"{outcomes[i]} {suffix}", fmt, template)
        return 0

    def apply(obj: api_pb2.Object) -> tuple[api_pb2.Object, str]:
        resp = ctx.client.apply(obj)
        return resp.object, RESULTS.get(resp.result, "configured")

    batch.write_each(ctx, docs, "applying", apply, fmt, template)
    return 0
