"""`kemu dns` and `python -m kemu.dns`: flags -> serve.

Kept free of heavy imports (grpc, dnslib) so that `kemu` can import it at start-up to
register the subcommand; `run` imports the server only when it is chosen.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from kemu.util import logsetup
from kemu.util.argtypes import run_standalone
from kemu.util.metricsflag import add_metrics_flag

PROG = "kemu dns"


def split_listen(text: str) -> tuple[str, int]:
    """`ADDR:PORT` (IPv6 as `[::1]:53`) -> (addr, port); ValueError when malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen: expected ADDR:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def in_cluster_apiserver() -> str | None:
    """HOST:PORT of the apiserver as a pod sees it (the variables every pod gets for the
    `kubernetes` Service), as client-go's InClusterConfig finds it; None outside a pod."""
    import os

    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get(
        "KUBERNETES_SERVICE_PORT")
    if not host or not port:
        return None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--apiserver", default=None, metavar="HOST:PORT",
                   help="the API server whose Services, Endpoints and Pods are served "
                        "(default: in a pod, the `kubernetes` Service from "
                        "KUBERNETES_SERVICE_HOST/PORT; elsewhere 127.0.0.1:6443)")
    p.add_argument("--listen", default="0.0.0.0:53", metavar="ADDR:PORT",
                   help="answer on this address over UDP and TCP")
    p.add_argument("--upstream", default=None, metavar="ADDR[:PORT]",
                   help="forward names outside the domain here (none: SERVFAIL)")
    p.add_argument("--domain", default="cluster.local", help="the cluster domain")
    p.add_argument("--ttl", type=int, default=5,
                   help="TTL of answers, seconds (CoreDNS's default is 5)")
    add_metrics_flag(p)
    logsetup.add_flags(p)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `dns` on kemu's subcommands (an argparse _SubParsersAction)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "dns", help="run the cluster DNS server (*.cluster.local)",
        description="Answer *.<domain> from Services, Endpoints and Pods watched through "
                    "the API server, as the Kubernetes DNS specification says, and forward "
                    "other names upstream.")
    add_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the DNS server from parsed flags; the exit status."""
    from kemu.dns.forward import parse_upstream

    try:
        host, port = split_listen(args.listen)
        upstream = parse_upstream(args.upstream) if args.upstream else None
        if args.ttl < 0:
            raise ValueError(f"--ttl: must be >= 0, got {args.ttl}")
    except ValueError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    from kemu.dns.server import serve

    apiserver = args.apiserver or in_cluster_apiserver() or "127.0.0.1:6443"

    try:
        asyncio.run(serve(apiserver, host, port, domain=args.domain, ttl=args.ttl,
                          upstream=upstream, metrics_listen=args.metrics_listen))
    except KeyboardInterrupt:
        return 130
    except (OSError, TimeoutError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_standalone(PROG, "Run the kemu cluster DNS server.", add_arguments, run, argv)
