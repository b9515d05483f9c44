"""`kemuctl auth can-i VERB TYPE[/NAME] [NAME]`, as kubectl's: asks the apiserver's
authorizer (the AccessReview RPC, Kubernetes' SelfSubjectAccessReview) and prints `yes`
(exit 0) or `no` (exit 1); `--list` prints the rules that apply in the namespace as kubectl's
table. kemuctl's global `--as USER [--as-group GROUP ...]` asks about another user, which
needs the impersonate verb on that user and groups (system:masters has it), as Kubernetes'.

kubectl takes the name only as TYPE/NAME; kemuctl also accepts it as a third argument.
A type the server does not serve draws kubectl's warning and is asked about as given
(`widgets.example.com` being resource widgets in group example.com).
"""

from __future__ import annotations

import argparse
from typing import Any

import grpc

from kemu.api import kinds
from kemu.api.v1 import api_pb2
from kemu.cli.ctl import rbacrules, tabwriter
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError
from kemu.client.errors import from_rpc_error

KNOWN_VERBS = frozenset({"get", "list", "watch", "create", "update", "patch", "delete",
                         "deletecollection", "use", "bind", "impersonate", "*", "escalate",
                         "approve", "sign"})
HEADERS = ("Resources", "Non-Resource URLs", "Resource Names", "Verbs")


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("action", choices=("can-i",), metavar="SUBCOMMAND", help="can-i")
    p.add_argument("words", nargs="*", metavar="VERB TYPE[/NAME] [NAME]")
    p.add_argument("-A", "--all-namespaces", action="store_true",
                   help="ask about every namespace (the cluster scope)")
    p.add_argument("--subresource", default="", help="the subresource, e.g. log, exec, scale")
    p.add_argument("--list", action="store_true",
                   help="list every rule that applies in the namespace")
    p.add_argument("--no-headers", action="store_true", help="--list without the header")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print nothing; the exit status tells the answer")


def _review(ctx: Ctx, request: api_pb2.AccessReviewRequest) -> api_pb2.AccessReviewResponse:
    client = ctx.client
    try:
        resp: api_pb2.AccessReviewResponse = client.resources.AccessReview(
            request, timeout=client.timeout, metadata=client.metadata)
        return resp
    except grpc.RpcError as e:
        raise from_rpc_error(e, client.server) from None


def _resource(ctx: Ctx, text: str) -> tuple[str, str, kinds.Kind | None]:
    """(resource, group, kind): from the served kinds, else as given with kubectl's warning."""
    try:
        kind = kinds.resolve(text)
        return kind.plural, kind.group, kind
    except kinds.UnknownResourceError:
        ctx.err.write(f"Warning: the server doesn't have a resource type '{text}'\n\n")
        resource, _, group = text.partition(".")
        return resource, group, None


def run(ctx: Ctx, args: Any) -> int:
    namespace = "" if args.all_namespaces else ctx.namespace
    if args.list:
        if args.words:
            raise CtlError("--list does not take arguments: list the rules in a namespace "
                           "with -n")
        resp = _review(ctx, api_pb2.AccessReviewRequest(list_rules=True, namespace=namespace))
        if resp.incomplete:
            ctx.err.write("warning: the list may be incomplete: rules that the node "
                          "authorizer grants through pods are not listed\n")
        rows = rbacrules.table_rows(rbacrules.Rule.of(r) for r in resp.resource_rules)
        ctx.write(tabwriter.table(rows if args.no_headers else [list(HEADERS), *rows]))
        return 0
    if len(args.words) not in (2, 3):
        raise CtlError("you must specify two arguments: verb resource or verb "
                       "resource/resourceName.\nSee 'kemuctl auth can-i -h' for help and "
                       "examples.")
    verb, target = args.words[0], args.words[1]
    type_text, _, name = target.partition("/")
    if len(args.words) == 3:
        name = args.words[2]
    if verb not in KNOWN_VERBS:
        ctx.err.write(f"Warning: verb '{verb}' is not a known verb\n\n")
    resource, group, kind = _resource(ctx, type_text)
    if kind is not None and not kind.namespaced:
        if ctx.namespace_explicit and not args.all_namespaces:
            ctx.err.write(f"Warning: resource '{resource}' is not namespace scoped"
                          + (f" in group '{group}'" if group else "") + "\n\n")
        namespace = ""
    resp = _review(ctx, api_pb2.AccessReviewRequest(
        verb=verb, group=group, resource=resource, subresource=args.subresource,
        namespace=namespace, name=name))
    if not args.quiet:
        ctx.line("yes" if resp.allowed else "no" + (f" - {resp.reason}" if resp.reason else ""))
    return 0 if resp.allowed else 1
