"""argparse types shared by the `kemu` subcommands, so every component reads addresses the
same way and rejects a malformed one with the same one-line message."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import NoReturn

from kemu.util import logsetup


def host_port(text: str) -> str:
    """`HOST:PORT` (port 0-65535; IPv6 hosts in brackets), returned unchanged."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return text


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")


def seconds(text: str) -> float:
    """Kubernetes-style durations in seconds: `30s`, `5m`, `500ms`, `1h`, or a plain
    number of seconds. ValueError names the text."""
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"invalid duration {text!r}: use a number with a unit, e.g. 30s or 1m")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (no usage dump), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def run_standalone(prog: str, description: str,
                   add_arguments: Callable[[argparse.ArgumentParser], None],
                   run: Callable[[argparse.Namespace], int],
                   argv: list[str] | None = None) -> int:
    """`python -m <component>`: the component's own flags (its logging flags among them,
    from kemu.util.logsetup), logging set up from them, then run."""
    parser = OneLineParser(prog=prog, description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logsetup.configure_from_args(prog.removeprefix("kemu "), args)
    return run(args)
