"""`kemuctl rollout status|history|undo|restart|pause|resume TYPE/NAME`, as kubectl's.

- status watches the object and prints kubectl's progress lines until it is rolled out
  (exit 1 when the progress deadline is exceeded or --timeout passes);
- history lists a Deployment's revisions from its ReplicaSets (`--revision N` shows that
  revision's pod template);
- undo goes back to the previous revision or `--to-revision N` through the rollback
  subresource;
- restart stamps `kubectl.kubernetes.io/restartedAt` on the pod template, which makes the
  controller roll every pod, as kubectl does;
- pause and resume set `spec.paused`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kemu.api import objects
from kemu.api.v1 import api_pb2
from kemu.cli.ctl import parser as cli
from kemu.cli.ctl import resargs
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.describe_base import Writer
from kemu.cli.ctl.describe_pods import pod_template
from kemu.cli.ctl.errors import CtlError, Reported, server_error
from kemu.cli.ctl.output import name_of
from kemu.cli.ctl.retry import update_with
from kemu.cli.ctl.rollout_status import NotSupported, RolloutFailed, status_of
from kemu.client.errors import ClientError, NotFound, Unavailable

ACTIONS = ("status", "history", "undo", "restart", "pause", "resume")
ROLLABLE = {"Deployment", "DaemonSet", "StatefulSet"}
REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("action", choices=ACTIONS, metavar="SUBCOMMAND",
                   help="status, history, undo, restart, pause or resume")
    p.add_argument("resources", nargs="*", metavar="TYPE NAME | TYPE/NAME")
    p.add_argument("--revision", type=int, default=0,
                   help="status: pin to this revision; history: show its details")
    p.add_argument("--to-revision", type=int, default=0,
                   help="undo: the revision to go back to (default: the previous one)")
    p.add_argument("-w", "--watch", type=_bool, default=True, nargs="?", const=True,
                   help="status: watch until the rollout finishes (default true)")
    p.add_argument("--timeout", type=cli.parse_duration, default=0.0,
                   help="status: give up after this long, e.g. 2m (default 0: never)")


SUPPORTED = {"status": ROLLABLE, "restart": ROLLABLE, "history": {"Deployment"},
             "undo": {"Deployment"}, "pause": {"Deployment"}, "resume": {"Deployment"}}


def _not_supported(action: str, kind: Any, name: str) -> str:
    """kubectl's words for a rollout action on a kind that has none."""
    if action in ("status", "history"):
        return f"no {'status' if action == 'status' else 'history'} viewer has been " \
               f"implemented for {kind.kind}"
    if action == "undo":
        return f'no rollbacker has been implemented for "{kind.kind}"'
    verb = {"restart": "restarting", "pause": "pausing", "resume": "resuming"}[action]
    return f'{kind.plural}.{kind.group or "core"} "{name}" {verb} is not supported'


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise CtlError(f"invalid boolean {text!r}")


def _targets(ctx: Ctx, args: Any) -> list[tuple[str, api_pb2.Object]]:
    sel = resargs.parse(args.resources, verb=f"rollout {args.action}")
    if not sel.named:
        raise CtlError("required resource not specified")
    out: list[tuple[str, api_pb2.Object]] = []
    for group in sel.groups:
        for name in group.names:
            if group.kind.kind not in SUPPORTED[args.action]:
                raise CtlError(_not_supported(args.action, group.kind, name))
            try:
                obj = ctx.client.get(group.kind.plural, name, ctx.namespace)
            except NotFound:
                raise CtlError(f'{group.kind.plural}.{group.kind.group or "core"} "{name}" '
                               "not found") from None
            out.append((group.kind.kind, obj))
    return out


def run(ctx: Ctx, args: Any) -> int:
    try:
        targets = _targets(ctx, args)
    except Unavailable:
        raise
    except ClientError as e:
        raise CtlError(server_error(e)) from None
    action: Callable[[Ctx, Any, str, api_pb2.Object], None] = {
        "status": _status, "history": _history, "undo": _undo, "restart": _restart,
        "pause": _pause, "resume": _resume}[args.action]
    failed = False
    for kind, obj in targets:
        try:
            action(ctx, args, kind, obj)
        except Unavailable:
            raise
        except ClientError as e:
            ctx.error(server_error(e))
            failed = True
        except CtlError as e:
            ctx.error(f"error: {e}")
            failed = True
    if failed:
        raise Reported()
    return 0


# --- status -------------------------------------------------------------------------------


def _status(ctx: Ctx, args: Any, kind: str, obj: api_pb2.Object) -> None:
    plural = objects.kind_of(obj).plural
    meta = objects.meta(obj)
    deadline = time.monotonic() + args.timeout if args.timeout > 0 else None
    last = ""
    while True:
        try:
            message, done = status_of(kind, objects.unwrap(obj), args.revision)
        except (RolloutFailed, NotSupported) as e:
            raise CtlError(str(e)) from None
        if message != last:
            ctx.write(message)
            last = message
        if done or not args.watch:
            return
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise CtlError("timed out waiting for the condition")
        obj = _next_version(ctx, plural, meta.namespace, meta.name, obj,
                            min(remaining, 5.0) if remaining is not None else 5.0)


def _next_version(ctx: Ctx, plural: str, namespace: str, name: str, obj: api_pb2.Object,
                  wait: float) -> api_pb2.Object:
    """The object after its next change, or as it is after `wait` seconds."""
    rv = objects.meta(obj).resource_version
    for ev in ctx.client.watch(plural, namespace, field_selector=f"metadata.name={name}",
                               resource_version=rv, timeout=wait):
        if ev.type == api_pb2.WatchEvent.DELETED:
            raise CtlError("object has been deleted")
        if ev.type in (api_pb2.WatchEvent.ADDED, api_pb2.WatchEvent.MODIFIED):
            return ev.object
    try:
        return ctx.client.get(plural, name, namespace)
    except NotFound:
        raise CtlError("object has been deleted") from None


# --- history ------------------------------------------------------------------------------


def _owned_replica_sets(ctx: Ctx, d: Any) -> list[Any]:
    items = ctx.client.list("replicasets", d.metadata.namespace).items
    return [o.replica_set for o in items
            if any(r.uid == d.metadata.uid and r.controller
                   for r in o.replica_set.metadata.owner_references)]


def _revision(rs: Any) -> int:
    text = rs.metadata.annotations.get(REVISION, "")
    return int(text) if text.isdigit() else 0


def _history(ctx: Ctx, args: Any, kind: str, obj: api_pb2.Object) -> None:
    if kind != "Deployment":
        raise CtlError(f"no history viewer has been implemented for {kind} (it keeps no "
                       "revisions in kemu yet)")
    d = obj.deployment
    sets = sorted((rs for rs in _owned_replica_sets(ctx, d) if _revision(rs) > 0),
                  key=_revision)
    if args.revision:
        rs = next((r for r in sets if _revision(r) == args.revision), None)
        if rs is None:
            raise CtlError(f"unable to find the specified revision {args.revision}")
        w = Writer()
        pod_template(w, rs.spec.template)
        ctx.write(f"{name_of(obj)} with revision #{args.revision}\n{w.text()}")
        return
    w = Writer()
    w.line(0, "REVISION", "CHANGE-CAUSE")
    for rs in sets:
        w.line(0, _revision(rs), rs.metadata.annotations.get(CHANGE_CAUSE) or "<none>")
    ctx.write(f"{name_of(obj)} \n{w.text()}\n")


# --- undo, restart, pause, resume ---------------------------------------------------------


def _undo(ctx: Ctx, args: Any, kind: str, obj: api_pb2.Object) -> None:
    meta = objects.meta(obj)
    try:
        ctx.client.rollback(meta.name, meta.namespace, to_revision=args.to_revision)
    except ClientError as e:
        raise CtlError(e.message) from None
    ctx.line(f"{name_of(obj)} rolled back")


def _restart(ctx: Ctx, args: Any, kind: str, obj: api_pb2.Object) -> None:
    if kind == "Deployment" and obj.deployment.spec.paused:
        raise CtlError("can't restart paused deployment (run rollout resume first)")
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def change(typed: Any) -> bool:
        typed.spec.template.metadata.annotations[RESTARTED_AT] = stamp
        return True
    update_with(ctx, obj, change)
    ctx.line(f"{name_of(obj)} restarted")


def _set_paused(ctx: Ctx, obj: api_pb2.Object, paused: bool) -> None:
    def change(typed: Any) -> bool:
        if bool(typed.spec.paused) == paused:
            return False
        typed.spec.paused = paused
        return True
    kind = objects.kind_of(obj)
    word = "paused" if paused else "resumed"
    if not update_with(ctx, obj, change):
        state = "already paused" if paused else "not paused"
        raise CtlError(f'{kind.plural}.{kind.group} "{objects.meta(obj).name}" is {state}')
    ctx.line(f"{name_of(obj)} {word}")


def _pause(ctx: Ctx, args: Any, kind: str, obj: api_pb2.Object) -> None:
    _set_paused(ctx, obj, True)


def _resume(ctx: Ctx, args: Any, kind: str, obj: api_pb2.Object) -> None:
    _set_paused(ctx, obj, False)
