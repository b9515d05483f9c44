"""`kemuctl set image TYPE/NAME CONTAINER=IMAGE...`: change container images, as kubectl.

Works on everything with a pod template (deployments, replicasets, replication
controllers, daemonsets, statefulsets, jobs), on cronjobs' job templates and on pods;
`*=IMAGE` sets every container. `--record` writes the command line to the
`kubernetes.io/change-cause` annotation, which the Deployment controller copies to the new
ReplicaSet and `rollout history` shows.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from kemu.api import objects
from kemu.api.v1 import api_pb2
from kemu.cli.ctl import parser as cli
from kemu.cli.ctl import resargs
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError, Reported, server_error
from kemu.cli.ctl.fetch import fetch, nothing_found
from kemu.cli.ctl.output import name_of
from kemu.cli.ctl.retry import update_with
from kemu.client.errors import ClientError, Unavailable

CHANGE_CAUSE = "kubernetes.io/change-cause"


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("what", choices=("image",), metavar="image",
                   help="what to set (kemuctl supports `image`)")
    p.add_argument("args", nargs="*", metavar="TYPE/NAME CONTAINER=IMAGE")
    cli.add_selectors(p)
    p.add_argument("--all", action="store_true", help="every object of the type")
    p.add_argument("--record", nargs="?", const="true", default="false",
                   help="record the command in the kubernetes.io/change-cause annotation")


def pod_spec(typed: Any, kind: str) -> Any:
    """The pod spec inside an object of `kind`, or None when it has none."""
    if kind == "Pod":
        return typed.spec
    if kind == "CronJob":
        return typed.spec.job_template.spec.template.spec
    if hasattr(typed.spec, "template"):
        return typed.spec.template.spec
    return None


def set_images(spec: Any, images: dict[str, str]) -> list[str]:
    """Set the images; the container names asked for that the spec does not have."""
    containers = [*spec.init_containers, *spec.containers]
    for c in containers:
        if "*" in images:
            c.image = images["*"]
        if c.name in images:
            c.image = images[c.name]
    names = {c.name for c in containers}
    return [n for n in images if n != "*" and n not in names]


def _split(args: list[str]) -> tuple[list[str], dict[str, str]]:
    resources = [a for a in args if "=" not in a]
    images: dict[str, str] = {}
    for a in args:
        if "=" in a:
            name, _, image = a.partition("=")
            if not name or not image:
                raise CtlError(f"invalid image argument {a!r}: expected CONTAINER=IMAGE")
            images[name] = image
    if not images:
        raise CtlError("at least one image update is required")
    return resources, images


def run(ctx: Ctx, args: Any) -> int:
    resources, images = _split(args.args)
    sel = resargs.parse(resources, verb="set image")
    if not sel.named and not (args.all or args.selector):
        raise CtlError("resource(s) were provided, but no name was specified")
    found = fetch(ctx, sel, label_selector=args.selector)
    errors = list(found.errors)
    if not found.items and not errors:
        ctx.error(nothing_found(ctx, sel.kinds, False))
    record = args.record.lower() in ("true", "1", "yes")
    cause = "kemuctl " + shlex.join(sys.argv[1:]) if record else ""
    for obj in found.items:
        try:
            _apply(ctx, obj, images, cause)
        except Unavailable:
            raise
        except ClientError as e:
            errors.append(server_error(e))
        except CtlError as e:
            errors.append(f"error: {e}")
    for line in errors:
        ctx.error(line)
    if errors:
        raise Reported()
    return 0


def _apply(ctx: Ctx, obj: api_pb2.Object, images: dict[str, str], cause: str) -> None:
    kind = objects.kind_of(obj)

    def change(typed: Any) -> bool:
        spec = pod_spec(typed, kind.kind)
        if spec is None:
            raise CtlError(f"{name_of(obj)}: {kind.kind} has no containers")
        missing = set_images(spec, images)
        if missing:
            raise CtlError(f'unable to find container named "{missing[0]}"')
        if cause:
            typed.metadata.annotations[CHANGE_CAUSE] = cause
        return True
    update_with(ctx, obj, change)
    ctx.line(f"{name_of(obj)} image updated")
