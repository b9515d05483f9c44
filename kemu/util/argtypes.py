"""argparse types shared by the `kemu` subcommands, so every component reads addresses the
same way and rejects a malformed one with the same one-line message."""

from __future__ import annotations

import argparse


def host_port(text: str) -> str:
    """`HOST:PORT` (port 0-65535; IPv6 hosts in brackets), returned unchanged."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return text
