"""Command-line parsing with kubectl's conventions: global flags (`--server`, `-n`,
`--request-timeout`) anywhere on the line, flags and positional arguments in any order
(`get pods -n x web`), `--` ending the flags (`exec POD -- ls -l`), and usage errors as
one `error:` line plus a pointer to --help rather than argparse's usage dump.

The verb is found first; then only that verb's parser runs, with the global flags added
to it, through argparse's intermixed parsing.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import NoReturn

from kemu.cli.ctl.errors import CtlError
from kemu.util.argtypes import seconds

GLOBAL_VALUE_FLAGS = frozenset({"-s", "--server", "-n", "--namespace", "--request-timeout",
                                "--token", "--certificate-authority", "--client-certificate",
                                "--client-key", "--as", "--as-group"})


class UsageError(CtlError):
    """A command line that does not parse; printed with a pointer to --help."""

    def __init__(self, message: str, prog: str = "kemuctl") -> None:
        super().__init__(message)
        self.prog = prog


class HelpShown(Exception):
    """--help was printed; exit 0."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of exiting."""

    def error(self, message: str) -> NoReturn:
        message = re.sub(r"^unrecognized arguments: ", "unknown flag or argument: ", message)
        raise UsageError(message, self.prog)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            raise UsageError(message.strip(), self.prog)
        raise HelpShown()


def split_verb(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """The verb (first word that is not a global flag or its value) and the rest."""
    rest = list(argv)
    i = 0
    while i < len(rest):
        token = rest[i]
        if token == "--":
            return None, rest
        if token in GLOBAL_VALUE_FLAGS:
            i += 2
            continue
        if token.startswith("-"):
            i += 1
            continue
        return token, rest[:i] + rest[i + 1:]
    return None, rest


def split_dashes(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Arguments before `--`, and the command after it."""
    args = list(argv)
    if "--" in args:
        i = args.index("--")
        return args[:i], args[i + 1:]
    return args, []


def add_global_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("global flags")
    g.add_argument("-s", "--server", default=None,
                   help="apiserver address HOST:PORT (default: $KEMU_SERVER, then "
                        "~/.kemu/config, then 127.0.0.1:6443)")
    g.add_argument("-n", "--namespace", default=None, help="the namespace of this request")
    g.add_argument("--request-timeout", default=None,
                   help="how long to wait for one server call: 30s, 2m, 0 for no limit")
    g.add_argument("--token", default=None,
                   help="bearer token for an apiserver started with --token-file (default: "
                        "$KEMU_TOKEN, then the cluster's token: in ~/.kemu/config)")
    g.add_argument("--certificate-authority", default=None, metavar="FILE",
                   help="CA of the apiserver's certificate: dial TLS (default: "
                        "$KEMU_CERTIFICATE_AUTHORITY, then certificate-authority: in "
                        "~/.kemu/config, else plaintext)")
    g.add_argument("--client-certificate", default=None, metavar="FILE",
                   help="client certificate to authenticate with (default: "
                        "$KEMU_CLIENT_CERTIFICATE, then client-certificate: in the config)")
    g.add_argument("--client-key", default=None, metavar="FILE",
                   help="its key (default: $KEMU_CLIENT_KEY, then client-key: in the config)")
    g.add_argument("--as", dest="as_user", default="", metavar="USER",
                   help="act as this user (the apiserver checks you may impersonate them)")
    g.add_argument("--as-group", action="append", default=[], metavar="GROUP",
                   help="a group to act in, with --as; may be repeated")


def parse_duration(text: str) -> float:
    """kubectl's durations: `30s`, `1m`, `500ms`, `2h`, or plain seconds."""
    try:
        return seconds(text)
    except ValueError as e:
        raise CtlError(str(e)) from None


# ---- flags several verbs share ----------------------------------------------------------

def add_filenames(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("-f", "--filename", action="append", default=[], metavar="FILE",
                   help=f"file, directory or - (stdin) holding the objects to {what}; "
                        "repeatable")
    p.add_argument("-R", "--recursive", action="store_true",
                   help="process the directory given with -f recursively")


def add_selectors(p: argparse.ArgumentParser) -> None:
    p.add_argument("-l", "--selector", default="",
                   help="label selector, e.g. app=web,tier!=db")
    p.add_argument("--field-selector", default="",
                   help="field selector, e.g. metadata.name=web,status.phase=Running")


def add_all_namespaces(p: argparse.ArgumentParser) -> None:
    p.add_argument("-A", "--all-namespaces", action="store_true",
                   help="across all namespaces")


def add_output(p: argparse.ArgumentParser, formats: str = "yaml|json|name") -> None:
    p.add_argument("-o", "--output", default="", help=f"output format: {formats}")
    p.add_argument("--template", default="",
                   help="the template (or its file) for -o go-template, go-template-file, "
                        "jsonpath or jsonpath-file; alone, it means -o go-template")


def add_dry_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", nargs="?", const="client", default="none",
                   choices=("none", "client", "server"),
                   help="client: only print the object; server: validate on the server, "
                        "persist nothing")
