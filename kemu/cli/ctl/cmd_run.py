"""`kemuctl run NAME --image=IMAGE [--port P] [--env K=V] [-l k=v,...] [--restart=Always|
OnFailure|Never] [--command] [-i] [-t] [--rm] [--expose] [-- COMMAND ARGS...]`: create a
bare Pod, as `kubectl run` does since Kubernetes 1.18.

Attaching (-i, -t or --attach): kemu has no Attach RPC, so kemuctl does what kubectl
itself falls back to when it cannot attach: it waits (by watching, up to
--pod-running-timeout) until the pod runs or has finished, then streams the container's
log, following it while the container runs. stdin is not forwarded (the container's
stdin and tty fields are still set, as kubectl sets them). For --restart=Never it then
waits for the pod to finish and exits with the container's exit code (kubectl's
`pod NS/NAME terminated (Reason)` on stderr); OnFailure waits for success. --rm deletes
what run created when the session ends, however it ends (`pod "NAME" deleted`).

As kubectl, -t whose input is not a terminal (a script, a pipe, CI) warns `Unable to use
a TTY - input is not a terminal or the right kind of file` and goes on without one, so
the tutorials' `run -i --tty busybox ... -- nslookup NAME` still prints its answer there.
"""

from __future__ import annotations

import argparse
import threading
from typing import Any

from kemu.api import objects
from kemu.api.v1 import api_pb2
from kemu.cli.ctl import batch, generators, output, sources, term
from kemu.cli.ctl import parser as cli
from kemu.cli.ctl.cmd_logs import LineWriter, byte_writer, copy
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError, Reported
from kemu.cli.ctl.podwait import wait_for_pod
from kemu.cli.ctl.table import kind_prefix
from kemu.client.errors import NotFound

PROMPT_HINT = "If you don't see a command prompt, try pressing enter."
NO_TTY = "Unable to use a TTY - input is not a terminal or the right kind of file"


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("name", nargs="*", metavar="NAME --image=IMAGE [-- COMMAND ARGS...]")
    p.add_argument("--image", default="", help="the container image")
    p.add_argument("--port", default="", help="the port the container exposes")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="an environment variable of the container; repeatable")
    p.add_argument("-l", "--labels", action="append", default=[], metavar="K=V,...",
                   help="labels of the pod (default: run=NAME)")
    p.add_argument("--annotations", action="append", default=[], metavar="K=V",
                   help="an annotation of the pod; repeatable")
    p.add_argument("--restart", default="Always",
                   help="the pod's restart policy: Always (default), OnFailure or Never")
    p.add_argument("--command", dest="use_command", action="store_true",
                   help="the words after -- are the command, not the image's arguments")
    p.add_argument("--image-pull-policy", default="",
                   help="Always, IfNotPresent or Never (default: the server's)")
    p.add_argument("-i", "--stdin", action="store_true",
                   help="allocate stdin for the container and stream its output")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a TTY (needs -i)")
    p.add_argument("--attach", nargs="?", const="true", default=None, choices=("true", "false"),
                   help="wait for the pod to start and stream its output (default with -i)")
    p.add_argument("--rm", action="store_true",
                   help="delete what run created when the attached session ends")
    p.add_argument("--leave-stdin-open", action="store_true",
                   help="keep the container's stdin open after the session (stdinOnce=false)")
    p.add_argument("--privileged", action="store_true", help="run the container privileged")
    p.add_argument("--expose", action="store_true",
                   help="also create a ClusterIP Service for --port, selecting the pod")
    p.add_argument("--pod-running-timeout", default="1m",
                   help="how long an attached run waits for the pod to run, e.g. 30s")
    p.add_argument("-q", "--quiet", action="store_true", help="only print the container's output")
    cli.add_output(p, "yaml|json|name")
    cli.add_dry_run(p)


def parse_port(text: str) -> int:
    if not text:
        return 0
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise CtlError(f"invalid --port {text!r}: expected a number from 1 to 65535")
    return int(text)


def spec_from(args: Any) -> generators.RunSpec:
    if not args.name:
        raise cli.UsageError("NAME is required for run", "kemuctl run")
    return generators.RunSpec(
        name=args.name[0], image=args.image, port=parse_port(args.port),
        env=generators.pairs(args.env, "env"),
        labels=generators.pairs(args.labels, "labels", split_commas=True),
        annotations=generators.pairs(args.annotations, "annotations"),
        restart=args.restart, image_pull_policy=args.image_pull_policy,
        words=tuple(args.name[1:]) + tuple(args.command), command=args.use_command,
        stdin=args.stdin, tty=args.tty, leave_stdin_open=args.leave_stdin_open,
        privileged=args.privileged)


def attaching(args: Any) -> bool:
    """kubectl: --attach when given, else attach exactly when -i is."""
    return args.attach == "true" if args.attach is not None else bool(args.stdin)


def run(ctx: Ctx, args: Any) -> int:
    fmt, template = output.parse_format(args.output, args.template)
    spec = spec_from(args)
    attach = attaching(args)
    if args.rm and not attach:
        raise cli.UsageError("--rm should only be used for attached containers", "kemuctl run")
    if attach and args.dry_run != "none":
        raise CtlError("--dry-run can't be used with attached containers options (--attach, "
                       "--stdin, or --tty)")
    if args.expose and not spec.port:
        raise CtlError("--port must be set when exposing a service")
    pod = generators.run_pod(spec)
    sources.place(pod, ctx.namespace, ctx.namespace_explicit)
    service = None
    if args.expose:
        service = generators.run_service(spec.name, spec.port,
                                         sorted(objects.meta(pod).labels.items()))
        sources.place(service, ctx.namespace, ctx.namespace_explicit)
    if args.dry_run == "client":
        report(ctx, [objects.fill_type_meta(o) for o in (service, pod) if o is not None],
               "created (dry run)", fmt, template)
        return 0
    server_dry = args.dry_run == "server"
    suffix = " (server dry run)" if server_dry else ""
    created_pod = ctx.client.create(pod, dry_run=server_dry)
    created: list[api_pb2.Object] = [created_pod]
    if service is not None:
        created.insert(0, ctx.client.create(service, dry_run=server_dry))
    if not attach:
        report(ctx, created, "created" + suffix, fmt, template)
        return 0
    report(ctx, created[:-1], "created" + suffix, fmt, template)
    return attach_session(ctx, args, created_pod.pod, created)


def report(ctx: Ctx, objs: list[api_pb2.Object], outcome: str, fmt: str,
           template: str) -> None:
    """One line (or document) per object; YAML documents separated as kubectl does."""
    for i, obj in enumerate(objs):
        if i and fmt == "yaml":
            ctx.write("---\n")
        batch.report(ctx, obj, outcome, fmt, template)


def attach_session(ctx: Ctx, args: Any, pod: Any, created: list[api_pb2.Object]) -> int:
    """Stream the pod's output to its end; remove what was created with --rm; then report
    the outcome, in kubectl's order (the deletion line comes first)."""
    outcome: tuple[int, list[str]] = (0, [])
    try:
        outcome = follow_pod(ctx, args, pod.metadata.namespace, pod.metadata.name,
                             cli.parse_duration(args.pod_running_timeout))
    finally:
        if args.rm:
            remove(ctx, created)
    code, lines = outcome
    for text in lines:
        ctx.err.write(text + "\n")
    ctx.err.flush()
    if code:
        raise Reported(code)
    return 0


def started(pod: Any) -> bool:
    return pod.status.phase in ("Running", "Succeeded", "Failed")


def finished(pod: Any) -> bool:
    return pod.status.phase in ("Succeeded", "Failed")


def succeeded(pod: Any) -> bool:
    return bool(pod.status.phase == "Succeeded")


def follow_pod(ctx: Ctx, args: Any, namespace: str, name: str,
               timeout: float) -> tuple[int, list[str]]:
    """The session: wait, stream the log, wait for the end (Never/OnFailure). Returns the
    exit code and the lines to print on stderr."""
    pod = wait_for_pod(ctx, namespace, name, started, timeout)
    running = pod.status.phase == "Running"
    for notice in attach_notices(ctx.stdin, tty=args.tty, quiet=args.quiet, running=running):
        ctx.error(notice)
    request = api_pb2.LogsRequest(namespace=namespace, name=name,
                                  container=pod.spec.containers[0].name, follow=running)
    copy(ctx.client.logs(request), LineWriter(byte_writer(ctx), threading.Lock()))
    restart = pod.spec.restart_policy
    if restart not in ("Never", "OnFailure") or args.leave_stdin_open:
        return 0, []
    pod = wait_for_pod(ctx, namespace, name, finished if restart == "Never" else succeeded,
                       timeout)
    return exit_outcome(pod)


def attach_notices(stdin: Any, *, tty: bool, quiet: bool, running: bool) -> list[str]:
    """What kubectl prints on stderr as it attaches to a running pod with -t: the warning
    when its input is not a terminal (it then goes on without one, as kubectl's
    SetupTTY does), then the prompt hint, which kubectl prints either way. A pod that has
    already finished is not attached to (its log is read), so nothing is printed."""
    if not running or not tty or quiet:
        return []
    notices = [] if term.is_terminal(stdin) else [NO_TTY]
    return [*notices, PROMPT_HINT]


def exit_outcome(pod: Any) -> tuple[int, list[str]]:
    """kubectl run's verdict on a finished pod: 0 for Succeeded, the container's exit code
    and `pod NS/NAME terminated (Reason)` for Failed."""
    ns, name, phase = pod.metadata.namespace, pod.metadata.name, pod.status.phase
    if phase == "Succeeded":
        return 0, []
    if phase != "Failed":
        return 1, [f"error: pod {ns}/{name} left in phase {phase}"]
    unknown = (1, [f"error: pod {ns}/{name} failed with unknown exit code"])
    statuses = pod.status.container_statuses
    if not statuses or not statuses[0].state.HasField("terminated"):
        return unknown
    term = statuses[0].state.terminated
    if term.exit_code == 0:
        return unknown
    lines = [f"pod {ns}/{name} terminated ({term.reason})"]
    if term.message:
        lines.append(term.message)
    return int(term.exit_code), lines


def remove(ctx: Ctx, created: list[api_pb2.Object]) -> None:
    """--rm: delete each created object (it may be gone already), as `kubectl delete`
    reports it."""
    for obj in created:
        kind, meta = objects.kind_of(obj), objects.meta(obj)
        try:
            ctx.client.delete(kind.plural, meta.name, meta.namespace)
        except NotFound:
            continue
        ctx.line(f'{kind_prefix(kind)} "{meta.name}" deleted')
