"""`kemu dashboard [--listen HOST:PORT] [--name CLUSTER | -s SERVER] [TLS flags]`.

The apiserver, token and TLS resolve as kemuctl's (flags, then $KEMU_*, then the current
cluster of ~/.kemu/config); `--name` picks another cluster of that file instead of the
current one, as `kemu up --name` wrote it. The page binds to loopback by default: it shows
the cluster with this user's credentials to whoever can reach it, as `kubectl proxy` would.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import sys
from pathlib import Path
from typing import Any, TextIO

from kemu.cli.dashboard.server import DashboardConfig, DashboardError, serve
from kemu.client import config
from kemu.util.argtypes import host_port
from kemu.util.tls import ClientTLS, TLSConfigError

DEFAULT_LISTEN = "127.0.0.1:8001"


def add_parser(sub: Any) -> None:
    """The `dashboard` subcommand of `kemu`."""
    d = sub.add_parser("dashboard", help="serve a live, read-only web dashboard of a cluster "
                                         "on localhost")
    d.add_argument("--listen", type=host_port, default=DEFAULT_LISTEN, metavar="HOST:PORT",
                   help=f"where to serve the page (default {DEFAULT_LISTEN}: this machine "
                        "only; any other address shows the cluster to whoever reaches it)")
    d.add_argument("--name", default=None, metavar="CLUSTER",
                   help="a cluster of ~/.kemu/config other than the current one (as "
                        "`kemu up --name` wrote it)")
    d.add_argument("-s", "--server", default=None, metavar="HOST:PORT",
                   help="apiserver address (default: $KEMU_SERVER, then ~/.kemu/config, "
                        "then 127.0.0.1:6443)")
    d.add_argument("--token", default=None,
                   help="bearer token (default: $KEMU_TOKEN, then the cluster's token:)")
    g = d.add_argument_group("TLS to the apiserver (default: $KEMU_*, then ~/.kemu/config)")
    g.add_argument("--certificate-authority", default=None, metavar="FILE")
    g.add_argument("--client-certificate", default=None, metavar="FILE")
    g.add_argument("--client-key", default=None, metavar="FILE")


def named_cluster(name: str) -> config.ClusterEntry:
    """The entry `name` of the config file, its paths relative to the file as kubectl's."""
    path = config.config_path()
    clusters = config.load(path).get("clusters") or {}
    entry = clusters.get(name) if isinstance(clusters, dict) else None
    if not isinstance(entry, dict) or not entry.get("server"):
        raise DashboardError(f'cluster "{name}" not found in {path}')

    def file(field: str) -> str:
        value = str(entry.get(field) or "")
        return str(path.parent / value) if value else ""

    return config.ClusterEntry(name, str(entry["server"]), token=str(entry.get("token") or ""),
                               certificate_authority=file("certificate-authority"),
                               client_certificate=file("client-certificate"),
                               client_key=file("client-key"))


def resolve(args: argparse.Namespace) -> DashboardConfig:
    """Where to serve, and the apiserver with its credentials, from the flags."""
    host, _, port = args.listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if args.name:
        entry = named_cluster(args.name)
        server = args.server or entry.server
        token = args.token or entry.token
        tls = ClientTLS.of(args.certificate_authority or entry.certificate_authority,
                           args.client_certificate or entry.client_certificate,
                           args.client_key or entry.client_key)
    else:
        server = config.resolve_server(args.server)
        token = config.resolve_token(args.token)
        tls = config.resolve_tls(args.certificate_authority, args.client_certificate,
                                 args.client_key)
    for f in (tls.ca_file, tls.cert_file, tls.key_file) if tls else ():
        if f is not None and not Path(f).is_file():
            raise DashboardError(f"{f}: no such file")
    return DashboardConfig(host=host, port=int(port), server=server, token=token, tls=tls)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace, err: TextIO | None = None) -> int:
    err = err or sys.stderr
    if not getattr(args, "verbose", 0):
        # Eleven informers would each log every retry while the apiserver is away; the
        # dashboard says it once, when it goes and when it comes back.
        logging.getLogger("kemu.client.informer").setLevel(logging.WARNING)
    try:
        cfg = resolve(args)
        if not is_loopback(cfg.host):
            err.write(f"warning: serving on {cfg.host}: anyone who reaches it reads the "
                      "cluster with your credentials\n")
        asyncio.run(serve(cfg, announce=lambda line: print(line, flush=True)))
    except (DashboardError, config.ConfigError, TLSConfigError) as e:
        err.write(f"error: {e}\n")
        return 1
    return 0
