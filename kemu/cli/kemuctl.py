"""`kemuctl`: kubectl's verbs, flags, columns and wording against a kemu apiserver.

A user coming from kubectl should feel at home, so the contract is kubectl's: the same
verbs and flags, the same tables, `Error from server (NotFound): ...` on stderr with a
non-zero exit, and never a traceback. This module only finds the verb, parses its flags
and turns every error into one line; each verb lives in `kemu.cli.ctl.cmd_*`.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any, Protocol, TextIO

from kemu.cli.ctl import parser as cli
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import KNOWN, CtlError, Reported, one_line


class VerbModule(Protocol):
    def add_arguments(self, p: cli.Parser, verb: str) -> None: ...
    def run(self, ctx: Ctx, args: Any) -> int: ...


# verb -> (module, one-line summary); modules are imported only when their verb runs.
VERBS: dict[str, tuple[str, str]] = {
    "create": ("cmd_create", "Create a resource from a file or from stdin"),
    "run": ("cmd_run", "Run a particular image on the cluster"),
    "expose": ("cmd_expose", "Take a replication controller, service, deployment or pod and "
                             "expose it as a new Kubernetes service"),
    "get": ("cmd_get", "Display one or many resources"),
    "edit": ("cmd_edit", "Edit a resource on the server"),
    "delete": ("cmd_delete", "Delete resources by file names, stdin, resources and names, "
                             "or by resources and label selector"),
    "apply": ("cmd_apply", "Apply a configuration to a resource by file name or stdin"),
    "replace": ("cmd_replace", "Replace a resource by file name or stdin"),
    "describe": ("cmd_describe", "Show details of a specific resource or group of resources"),
    "logs": ("cmd_logs", "Print the logs for a container in a pod"),
    "exec": ("cmd_exec", "Execute a command in a container"),
    "auth": ("cmd_auth", "Inspect authorization"),
    "scale": ("cmd_scale", "Set a new size for a deployment, replica set, replication "
                           "controller or stateful set"),
    "rollout": ("cmd_rollout", "Manage the rollout of a resource"),
    "autoscale": ("cmd_autoscale", "Auto-scale a deployment, replica set, stateful set, or "
                                   "replication controller"),
    "top": ("cmd_top", "Display resource (CPU/memory) usage"),
    "set": ("cmd_set", "Set specific features on objects"),
    "label": ("cmd_label", "Update the labels on a resource"),
    "annotate": ("cmd_label", "Update the annotations on a resource"),
    "cordon": ("cmd_cordon", "Mark node as unschedulable"),
    "uncordon": ("cmd_cordon", "Mark node as schedulable"),
    "drain": ("cmd_drain", "Drain node in preparation for maintenance"),
    "api-resources": ("cmd_info", "Print the supported API resources on the server"),
    "cluster-info": ("cmd_info", "Display cluster information"),
    "version": ("cmd_info", "Print the client and server version information"),
}
SECTIONS = (
    ("Basic Commands", ("create", "expose", "run", "set", "get", "edit", "delete")),
    ("Deploy Commands", ("rollout", "scale", "autoscale")),
    ("Cluster Management Commands", ("top", "cordon", "uncordon", "drain")),
    ("Troubleshooting and Debugging Commands", ("describe", "logs", "exec", "auth")),
    ("Advanced Commands", ("apply", "replace")),
    ("Settings Commands", ("label", "annotate")),
    ("Other Commands", ("api-resources", "cluster-info", "version")),
)


def usage() -> str:
    lines = ["kemuctl controls a kemu cluster, as kubectl controls a Kubernetes cluster.", ""]
    for title, verbs in SECTIONS:
        lines.append(f"{title}:")
        lines += [f"  {v:<15}{VERBS[v][1]}" for v in verbs]
        lines.append("")
    lines += ["Global flags (anywhere on the line):",
              "  -s, --server HOST:PORT   apiserver address (default: $KEMU_SERVER, then "
              "~/.kemu/config, then 127.0.0.1:6443)",
              "  -n, --namespace NAME     namespace of the request (default: default)",
              "      --request-timeout D  time limit of one server call, e.g. 30s; 0: none",
              "      --token TOKEN        bearer token (default: $KEMU_TOKEN, then ~/.kemu/config)",
              "      --certificate-authority FILE  CA of the apiserver: dial TLS (default: "
              "$KEMU_CERTIFICATE_AUTHORITY, then ~/.kemu/config)",
              "      --client-certificate FILE, --client-key FILE  authenticate with a "
              "client certificate",
              "",
              "Usage:",
              "  kemuctl [flags] [command]",
              "",
              'Use "kemuctl <command> --help" for more information about a given command.']
    return "\n".join(lines) + "\n"


def _module(verb: str) -> VerbModule:
    mod: VerbModule = importlib.import_module(f"kemu.cli.ctl.{VERBS[verb][0]}")  # type: ignore[assignment]
    return mod


def build_parser(verb: str) -> cli.Parser:
    p = cli.Parser(prog=f"kemuctl {verb}", description=VERBS[verb][1])
    _module(verb).add_arguments(p, verb)
    cli.add_global_flags(p)
    return p


def make_context(args: Any, out: TextIO, err: TextIO, stdin: TextIO) -> Ctx:
    from kemu.client.config import resolve_server, resolve_tls

    if args.as_group and not args.as_user:
        raise CtlError("requesting groups for the request without impersonating a user: "
                       "give --as too")
    timeout = 30.0
    if args.request_timeout is not None:
        timeout = cli.parse_duration(args.request_timeout) or 365 * 24 * 3600.0
    return Ctx(server=resolve_server(args.server), namespace=args.namespace or "default",
               namespace_explicit=args.namespace is not None, timeout=timeout,
               out=out, err=err, stdin=stdin, token=args.token,
               as_user=args.as_user, as_groups=tuple(args.as_group),
               tls=resolve_tls(args.certificate_authority, args.client_certificate,
                               args.client_key))


def run(argv: Sequence[str], out: TextIO, err: TextIO, stdin: TextIO) -> int:
    verb, rest = cli.split_verb(argv)
    if verb is None:
        if any(a in ("-h", "--help") for a in rest) or not rest:
            out.write(usage())
            return 0
        raise cli.UsageError(f"unknown flag: {rest[0]}")
    if verb not in VERBS:
        raise cli.UsageError(f'unknown command "{verb}" for "kemuctl"')
    before, after = cli.split_dashes(rest)
    parser = build_parser(verb)
    args = parser.parse_intermixed_args(before)
    args.verb = verb
    args.command = after
    ctx = make_context(args, out, err, stdin)
    try:
        return _module(verb).run(ctx, args)
    finally:
        ctx.close()


def main(argv: Sequence[str] | None = None) -> int:
    out, err = sys.stdout, sys.stderr
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return run(args, out, err, sys.stdin)
    except cli.HelpShown:
        return 0
    except Reported as r:
        return r.code
    except cli.UsageError as e:
        err.write(f"error: {e}\nSee '{e.prog} --help' for usage.\n")
        return 1
    except BrokenPipeError:
        # The reader went away (`kemuctl get pods | head -1`): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KNOWN as e:
        err.write(one_line(e) + "\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # the last line of defence: one line, never a traceback
        err.write(one_line(e) + "\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
