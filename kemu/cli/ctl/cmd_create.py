"""`kemuctl create -f FILE` (every document, reporting each; AlreadyExists is worded as
kubectl words it and the other documents are still created) and the generators:
`create namespace|deployment|job|configmap|secret generic|service <type>` and the RBAC ones,
`create role|clusterrole|rolebinding|clusterrolebinding` (generators_rbac.py), with
`--dry-run=client|server` and `-o`.

`create job NAME --from=cronjob/CRONJOB` is kubectl's way to run a CronJob now: the Job
gets the CronJob's jobTemplate, the annotation `cronjob.kubernetes.io/instantiate: manual`
and a controller reference to the CronJob (without blockOwnerDeletion, as kubectl), so
the CronJob controller lists it in `status.active` and counts it in its history.

`create -f FILE --record` (deprecated in kubectl, but still in tutorials: `kubectl create
-f app-service.yaml --record`) writes the command line to each object's
`kubernetes.io/change-cause` annotation, so that `rollout history` shows what created a
Deployment's first revision; like kubectl it warns that the flag is deprecated. The
generators have no --record in kubectl, and none here."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from typing import Any

from kemu.api import kinds, objects
from kemu.api.v1 import api_pb2, batch_pb2, meta_pb2
from kemu.cli.ctl import batch, generators, generators_rbac, output, sources
from kemu.cli.ctl import parser as cli
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError

KINDS = ("namespace", "deployment", "job", "configmap", "secret", "service", "role",
         "clusterrole", "rolebinding", "clusterrolebinding")
INSTANTIATE = "cronjob.kubernetes.io/instantiate"
ALIASES = {"ns": "namespace", "deploy": "deployment", "cm": "configmap", "svc": "service"}
CHANGE_CAUSE = "kubernetes.io/change-cause"
RECORD_DEPRECATED = "Flag --record has been deprecated, --record will be removed in the future"


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("args", nargs="*", metavar="TYPE NAME",
                   help="namespace NAME | deployment NAME --image=IMG | job NAME --image=IMG "
                        "| job NAME --from=cronjob/NAME | configmap NAME | secret generic NAME "
                        "| service clusterip|nodeport|loadbalancer NAME | role NAME "
                        "--verb=V --resource=R | clusterrole NAME | rolebinding NAME "
                        "--clusterrole=R|--role=R | clusterrolebinding NAME --clusterrole=R")
    cli.add_filenames(p, "create")
    cli.add_output(p, "yaml|json|name")
    cli.add_dry_run(p)
    p.add_argument("--record", nargs="?", const="true", default=None,
                   choices=("true", "false"),
                   help="(deprecated) record the command in each object's "
                        "kubernetes.io/change-cause annotation (-f)")
    p.add_argument("--image", action="append", default=[],
                   help="container image (deployment, job)")
    p.add_argument("--from", dest="from_", default="", metavar="cronjob/NAME",
                   help="the CronJob whose jobTemplate the Job copies (job)")
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
    p.add_argument("--verb", dest="verbs", action="append", default=[],
                   help="verbs the rule allows, repeated or comma-separated (role, clusterrole)")
    p.add_argument("--resource", action="append", default=[], metavar="RESOURCE[.GROUP][/SUB]",
                   help="resources the rule applies to (role, clusterrole)")
    p.add_argument("--resource-name", action="append", default=[],
                   help="only these object names (role, clusterrole)")
    p.add_argument("--non-resource-url", action="append", default=[],
                   help="non-resource URLs (clusterrole)")
    p.add_argument("--aggregation-rule", action="append", default=[], metavar="KEY=VALUE",
                   help="aggregate the ClusterRoles with these labels (clusterrole)")
    p.add_argument("--clusterrole", default="", help="the ClusterRole to bind (bindings)")
    p.add_argument("--role", default="", help="the Role to bind (rolebinding)")
    p.add_argument("--user", action="append", default=[], help="a user to bind (bindings)")
    p.add_argument("--group", action="append", default=[], help="a group to bind (bindings)")
    p.add_argument("--serviceaccount", action="append", default=[], metavar="NAMESPACE:NAME",
                   help="a service account to bind (bindings)")


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
    if what in ("role", "clusterrole", "rolebinding", "clusterrolebinding"):
        return _rbac(what, name, args)
    if what == "deployment":
        return generators.deployment(name, args.image, replicas=args.replicas, port=args.port,
                                     command=args.command)
    data = generators.data_from(args.from_literal, args.from_file, args.from_env_file)
    if what == "configmap":
        return generators.configmap(name, data)
    return generators.secret(name, data, args.type)


def _rbac(what: str, name: str, args: Any) -> api_pb2.Object:
    g = generators_rbac
    if what == "role":
        return g.role(name, g.rules(args.verbs, args.resource, args.resource_name))
    if what == "clusterrole":
        rule_list = [] if args.aggregation_rule else g.rules(
            args.verbs, args.resource, args.resource_name, args.non_resource_url, cluster=True)
        return g.cluster_role(name, rule_list, args.aggregation_rule)
    who = {"users": args.user, "groups": args.group, "service_accounts": args.serviceaccount}
    if what == "rolebinding":
        return g.role_binding(name, cluster_role=args.clusterrole, role=args.role, **who)
    return g.cluster_role_binding(name, cluster_role=args.clusterrole, **who)


def job(name: str, image: str, command: list[str]) -> api_pb2.Object:
    """kubectl's createJob: one container named after the Job, restartPolicy Never."""
    j = batch_pb2.Job()
    j.metadata.name = name
    spec = j.spec.template.spec
    spec.containers.add(name=name, image=image, command=command)
    spec.restart_policy = "Never"
    return objects.wrap(j)


def job_from_cronjob(name: str, cronjob: batch_pb2.CronJob) -> api_pb2.Object:
    """kubectl's createJobFromCronJob."""
    j = batch_pb2.Job()
    tmpl = cronjob.spec.job_template
    j.metadata.name = name
    j.metadata.namespace = cronjob.metadata.namespace
    j.metadata.labels.update(tmpl.metadata.labels)
    j.metadata.annotations.update(tmpl.metadata.annotations)
    j.metadata.annotations[INSTANTIATE] = "manual"
    j.metadata.owner_references.append(meta_pb2.OwnerReference(
        api_version="batch/v1", kind="CronJob", name=cronjob.metadata.name,
        uid=cronjob.metadata.uid, controller=True))
    j.spec.CopyFrom(tmpl.spec)
    return objects.wrap(j)


def _cronjob_name(source: str) -> str:
    kind, sep, name = source.partition("/")
    if not sep or not name:
        raise CtlError(f"from must be of the form TYPE/NAME, got {source!r}")
    try:
        resolved = kinds.resolve(kind)
    except kinds.UnknownResourceError as e:
        raise CtlError(str(e)) from None
    if resolved.kind != "CronJob":
        raise CtlError(f"unknown object type {resolved.kind}: --from must name a cronjob")
    return name


def generate_job(ctx: Ctx, args: Any) -> api_pb2.Object:
    rest = list(args.args[1:])
    if len(rest) != 1:
        raise CtlError("exactly one NAME is required: kemuctl create job NAME")
    if bool(args.image) == bool(args.from_):
        raise CtlError("either --image or --from must be specified")
    if args.from_ and args.command:
        raise CtlError("cannot specify --from and command")
    if args.image:
        return job(rest[0], args.image[-1], list(args.command))
    source = ctx.client.get("cronjobs", _cronjob_name(args.from_), ctx.namespace)
    return job_from_cronjob(rest[0], source.cron_job)


def create_generated(ctx: Ctx, args: Any, fmt: str, template: str) -> int:
    if args.args[0] not in KINDS and args.args[0] not in ALIASES:
        raise CtlError(f'unknown create type "{args.args[0]}": use -f FILE, or one of '
                       + ", ".join(KINDS))
    obj = generate_job(ctx, args) if args.args[0] == "job" else generate(args)
    sources.place(obj, ctx.namespace, ctx.namespace_explicit)
    if args.dry_run == "client":
        batch.report(ctx, objects.fill_type_meta(obj), "created (dry run)", fmt, template)
        return 0
    created = ctx.client.create(obj, dry_run=args.dry_run == "server")
    suffix = " (server dry run)" if args.dry_run == "server" else ""
    batch.report(ctx, created, "created" + suffix, fmt, template)
    return 0


def change_cause(argv: Sequence[str]) -> str:
    """The command line as `set image --record` records it: `kemuctl create -f ...`."""
    return "kemuctl " + shlex.join(argv)


def record(obj: api_pb2.Object, cause: str) -> None:
    """kubectl's ChangeCauseRecorder: the annotation is (over)written on every object."""
    objects.meta(obj).annotations[CHANGE_CAUSE] = cause


def run(ctx: Ctx, args: Any) -> int:
    fmt, template = output.parse_format(args.output, args.template)
    recording = args.record == "true"
    if not args.filename:
        if not args.args:
            raise CtlError("must specify one of -f and -k, or a type to create: "
                           + ", ".join(KINDS))
        if args.record is not None:
            raise cli.UsageError("unknown flag: --record", "kemuctl create")
        return create_generated(ctx, args, fmt, template)
    if args.args:
        raise CtlError("when -f is given, no other arguments may be given")
    if args.record is not None:  # cobra warns whenever a deprecated flag is set
        ctx.error(RECORD_DEPRECATED)
    docs = sources.load(args.filename, recursive=args.recursive, stdin=ctx.stdin,
                        verb="create")
    for doc in docs:
        sources.place(doc.obj, ctx.namespace, ctx.namespace_explicit)
        if recording:
            record(doc.obj, change_cause(sys.argv[1:]))
    dry = args.dry_run != "none"
    suffix = {"client": " (dry run)", "server": " (server dry run)"}.get(args.dry_run, "")

    def create(obj: api_pb2.Object) -> tuple[api_pb2.Object, str]:
        if args.dry_run == "client":
            return objects.fill_type_meta(obj), "created" + suffix
        return ctx.client.create(obj, dry_run=dry), "created" + suffix

    batch.write_each(ctx, batch.namespaces_first(docs), "creating", create, fmt,
                     template)
    return 0
