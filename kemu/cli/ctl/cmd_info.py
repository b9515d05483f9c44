"""`kemuctl api-resources`, `cluster-info` and `version`: what the server serves, where
it runs and which build it is."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import kemu
from kemu.api.v1 import api_pb2
from kemu.cli.ctl import output, tabwriter
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError, Reported, one_line
from kemu.client.errors import ClientError


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    if verb == "api-resources":
        p.add_argument("-o", "--output", default="", help="wide|name")
        p.add_argument("--namespaced", choices=("true", "false"), default=None,
                       help="only namespaced (true) or cluster-scoped (false) resources")
        p.add_argument("--api-group", default=None, help="only resources of this API group")
        p.add_argument("--no-headers", action="store_true")
    elif verb == "version":
        p.add_argument("--client", action="store_true", help="the client version only")
        p.add_argument("-o", "--output", default="", help="yaml|json")
    elif verb == "cluster-info":
        p.add_argument("args", nargs="*", help=argparse.SUPPRESS)


def _group(resource: api_pb2.APIResource) -> str:
    return resource.api_version.rpartition("/")[0]


def api_resources(ctx: Ctx, args: Any) -> int:
    resources = ctx.client.api_resources()
    if args.namespaced is not None:
        want = args.namespaced == "true"
        resources = [r for r in resources if r.namespaced == want]
    if args.api_group is not None:
        resources = [r for r in resources if _group(r) == args.api_group]
    resources.sort(key=lambda r: (_group(r) != "", _group(r), r.name))
    if args.output == "name":
        for r in resources:
            ctx.line(f"{r.name}.{_group(r)}" if _group(r) else r.name)
        return 0
    if args.output not in ("", "wide"):
        raise CtlError(f"--output {args.output} is not available")
    rows = [] if args.no_headers else [
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
        + (["VERBS"] if args.output == "wide" else [])]
    for r in resources:
        rows.append([r.name, ",".join(r.short_names), r.api_version,
                     "true" if r.namespaced else "false", r.kind]
                    + ([",".join(r.verbs)] if args.output == "wide" else []))
    ctx.write(tabwriter.table(rows))
    return 0


def cluster_info(ctx: Ctx, args: Any) -> int:
    if args.args and args.args[0] == "dump":
        raise CtlError("cluster-info dump is not available in kemu; use `kemuctl get all -A "
                       "-o yaml` and `kemuctl get events -A`")
    ctx.client.version()  # fails with the connection error when the server is not there
    ctx.line(f"kemu control plane is running at {ctx.server}")
    services = ctx.client.list("services", "kube-system").items
    for obj in services:
        svc = obj.service
        labels = svc.metadata.labels
        if svc.metadata.name != "kube-dns" and \
                labels.get("kubernetes.io/cluster-service") != "true":
            continue
        title = labels.get("kubernetes.io/name") or svc.metadata.name
        ports = ",".join(f"{p.port}/{p.protocol or 'TCP'}" for p in svc.spec.ports)
        where = f"{svc.spec.cluster_ip}:{ports}" if ports else svc.spec.cluster_ip
        ctx.line(f"{title} is running at {where}")
    return 0


def _client_version() -> dict[str, str]:
    return {"gitVersion": f"v{kemu.__version__}", "apiVersion": "kemu.v1",
            "pythonVersion": sys.version.split()[0], "platform": sys.platform}


def _server_version(info: api_pb2.VersionInfo) -> dict[str, str]:
    return {"gitVersion": info.git_version, "apiVersion": info.api_version,
            "pythonVersion": info.python_version, "platform": info.platform,
            "store": info.store}


def version(ctx: Ctx, args: Any) -> int:
    client = _client_version()
    server: dict[str, str] | None = None
    failure: ClientError | None = None
    if not args.client:
        try:
            server = _server_version(ctx.client.version())
        except ClientError as e:
            failure = e
    if args.output in ("json", "yaml"):
        doc: dict[str, Any] = {"clientVersion": client}
        if server is not None:
            doc["serverVersion"] = server
        ctx.write(output.to_json(doc) if args.output == "json" else output.to_yaml(doc))
    elif args.output:
        raise CtlError("--output must be 'yaml' or 'json'")
    else:
        ctx.line(f"Client Version: {client['gitVersion']}")
        if server is not None:
            ctx.line(f"Server Version: {server['gitVersion']}")
    if failure is not None:
        ctx.error(one_line(failure))
        raise Reported()
    return 0


def run(ctx: Ctx, args: Any) -> int:
    return {"api-resources": api_resources, "cluster-info": cluster_info,
            "version": version}[args.verb](ctx, args)
