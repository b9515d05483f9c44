"""`kemuctl create -f FILE` (every document, reporting each; AlreadyExists is worded as
kubectl words it and the other documents are still created) and the generators:
`create namespace|deployment|configmap|secret generic|service <type>`, with
`--dry-run=client|server` and `-o`."""

from __future__ import annotations

import argparse
from typing import Any

from kemu.api import objects
from kemu.api.v1 import api_pb2
from kemu.cli.ctl import batch, generators, output, sources
from kemu.cli.ctl import parser as cli
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError

KINDS = ("namespace", "deployment", "configmap", "secret", "service")
ALIASES = {"ns": "namespace", "deploy": "deployment", "cm": "configmap", "svc": "service"}


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("args", nargs="*", metavar="TYPE NAME",
                   help="namespace NAME | deployment NAME --image=IMG | configmap NAME | "
                        "secret generic NAME | service clusterip|nodeport|loadbalancer NAME")
    cli.add_filenames(p, "create")
    cli.add_output(p, "yaml|json|name")
    cli.add_dry_run(p)
    p.add_argument("--image", action="append", default=[], help="container image (deployment)")
    p.add_argument("--replicas", type=int, default=1, help="replicas (deployment)")
    p.add_argument("--port", type=int, default=0, help="container port (deployment)")
    p.add_argument("--from-literal", action="append", default=[], metavar="KEY=VALUE",
                   help="a key and value (configmap, secret)")
    p.add_argument("--from-file", action="append", default=[], metavar="[KEY=]PATH",
                   help="a file, or every file of a directory (configmap, secret)")
    p.add_argument("--from-env-file", action="append", default=[], metavar="PATH",
                   help="KEY=VALUE lines (configmap, secret)")
    p.add_argument("--type", default="", help="secret type (secret generic)")
    p.add_argument("--tcp", action="append", default=[], metavar="PORT[:TARGET]",
                   help="service port (service)")
    p.add_argument("--node-port", type=int, default=0, help="node port (service nodeport)")
    p.add_argument("--clusterip", default="", help="cluster IP, or None for headless (service)")
    p.add_argument("--external-name", default="", help="DNS name (service externalname)")


def generate(args: Any) -> api_pb2.Object:
    words = list(args.args)
    what = ALIASES.get(words[0], words[0])
    rest = words[1:]
    if what == "secret":
        if not rest or rest[0] != "generic":
            raise CtlError("only `create secret generic NAME` is available")
        rest = rest[1:]
    if what == "service":
        if len(rest) != 2:
            raise CtlError("expected `create service clusterip|nodeport|loadbalancer|"
                           "externalname NAME`")
        return generators.service(rest[0], rest[1], args.tcp, node_port=args.node_port,
                                  cluster_ip=args.clusterip, external_name=args.external_name)
    if len(rest) != 1:
        raise CtlError(f"exactly one NAME is required: kemuctl create {' '.join(words[:1])} NAME")
    name = rest[0]
    if what == "namespace":
        return generators.namespace(name)
    if what == "deployment":
        return generators.deployment(name, args.image, replicas=args.replicas, port=args.port,
                                     command=args.command)
    data = generators.data_from(args.from_literal, args.from_file, args.from_env_file)
    if what == "configmap":
        return generators.configmap(name, data)
    return generators.secret(name, data, args.type)


def create_generated(ctx: Ctx, args: Any, fmt: str, template: str) -> int:
    if args.args[0] not in KINDS and args.args[0] not in ALIASES:
        raise CtlError(f'unknown create type "{args.args[0]}": use -f FILE, or one of '
                       + ", ".join(KINDS))
    obj = generate(args)
    sources.place(obj, ctx.namespace, ctx.namespace_explicit)
    if args.dry_run == "client":
        batch.report(ctx, objects.fill_type_meta(obj), "created (dry run)", fmt, template)
        return 0
    created = ctx.client.create(obj, dry_run=args.dry_run == "server")
    suffix = " (server dry run)" if args.dry_run == "server" else ""
    batch.report(ctx, created, "created" + suffix, fmt, template)
    return 0


def run(ctx: Ctx, args: Any) -> int:
    fmt, template = output.parse_format(args.output)
    if not args.filename:
        if not args.args:
            raise CtlError("must specify one of -f and -k, or a type to create: "
                           + ", ".join(KINDS))
        return create_generated(ctx, args, fmt, template)
    if args.args:
        raise CtlError("when -f is given, no other arguments may be given")
    docs = sources.load(args.filename, recursive=args.recursive, stdin=ctx.stdin,
                        verb="create")
    for doc in docs:
        sources.place(doc.obj, ctx.namespace, ctx.namespace_explicit)
    dry = args.dry_run != "none"
    suffix = {"client": " (dry run)", "server": " (server dry run)"}.get(args.dry_run, "")

    def create(obj: api_pb2.Object) -> tuple[api_pb2.Object, str]:
        if args.dry_run == "client":
            return objects.fill_type_meta(obj), "created" + suffix
        return ctx.client.create(obj, dry_run=dry), "created" + suffix

    batch.write_each(ctx, batch.namespaces_first(docs), "creating", create, fmt,
                     template)
    return 0
