"""`kemu`: run a component (store, apiserver) or a whole cluster (up, down, status).

One entry point, many roles: each subcommand builds a frozen config and calls that
component's `run(config)`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from kemu.cli import addons_cli, certs_cli, imagepush, lifecycle, logs_cli, service_url, simulate
from kemu.cli.dashboard import cli as dashboard_cli
from kemu.dns import cli as dns_cli
from kemu.images import cli as images_cli
from kemu.nodeagent import cli as agent_cli
from kemu.services.controllers import cli as controllers_cli
from kemu.services.scheduler import cli as scheduler_cli
from kemu.util import logsetup, mallocarenas, tls
from kemu.util.argtypes import host_port
from kemu.util.metricsflag import add_metrics_flag


def _endpoints(text: str) -> tuple[str, ...]:
    parts = tuple(p.strip().removeprefix("http://").removeprefix("https://")
                  for p in text.split(",") if p.strip())
    if not parts:
        raise argparse.ArgumentTypeError("expected HOST:PORT[,HOST:PORT...]")
    for p in parts:
        host_port(p)
    return parts


def _port_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    if not sep or not low.isdigit() or not high.isdigit() or int(low) > int(high):
        raise argparse.ArgumentTypeError(f"expected LOW-HIGH, got {text!r}")
    return int(low), int(high)


def _ipv4(text: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not an IPv4 address: {text!r}") from e


def _node_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 32:
        raise argparse.ArgumentTypeError(f"expected a number of nodes from 1 to 32, got {text!r}")
    return int(text)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number above 0, got {text!r}")
    return int(text)


def _non_negative(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = -1
        if value < 0:
            raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
        return value
    return parse


def _authorization_modes(text: str) -> tuple[str, ...]:
    from kemu.services.apiserver.authorizer import ModeError, parse_modes

    try:
        return parse_modes(text)
    except ModeError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--authorization-mode: ")) from e


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kemu", description="kemu: a Kubernetes-style cluster "
                                "emulator with real networking.")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("store", help="run the etcd-compatible store")
    s.add_argument("--listen", type=host_port, default="127.0.0.1:2379")
    s.add_argument("--data-dir", type=Path, default=Path("kemu-store.data"))
    s.add_argument("--no-fsync", action="store_true",
                   help="do not fsync each commit (survives kill -9, not power loss)")
    tls.add_etcd_server_flags(s)
    add_metrics_flag(s)
    logsetup.add_flags(s)

    a = sub.add_parser("apiserver", help="run the API server")
    a.add_argument("--listen", type=host_port, action="append", default=None,
                   help="HOST:PORT to serve on (default 127.0.0.1:6443); repeat it to serve "
                        "on several, e.g. loopback and the address pods reach")
    a.add_argument("--store", type=_endpoints, default=("127.0.0.1:2379",),
                   help="etcd v3 API endpoints, HOST:PORT[,...] (kemu store or real etcd)")
    a.add_argument("--service-cluster-ip-range", default="10.96.0.0/12")
    a.add_argument("--advertise-address", type=_ipv4, default=None,
                   help="the IP where pods reach this apiserver: written as the Endpoints "
                        "of the `kubernetes` Service (default: none)")
    a.add_argument("--service-node-port-range", type=_port_range, default=(30000, 32767))
    a.add_argument("--watch-cache-size", type=int, default=5000,
                   help="at most this many recent changes kept per resource for watches "
                   "that resume (those of the last 75 s, at least 100; Events are not "
                   "cached, as in kube-apiserver)")
    a.add_argument("--watch-bookmark-interval", type=float, default=10.0,
                   help="seconds between BOOKMARK events on watches that ask for them")
    a.add_argument("--authorization-mode", type=_authorization_modes, default=("AlwaysAllow",),
                   metavar="MODES",
                   help="authorizers in order, comma-separated as kube-apiserver's: "
                        "AlwaysAllow (default: every caller may do everything), RBAC "
                        "(roles and bindings; creates the default roles), Node (node "
                        "agents, system:node:NAME); system:masters is always allowed")
    a.add_argument("--encryption-provider-config", type=Path, default=None,
                   help="an EncryptionConfiguration file (as kube-apiserver's): which "
                        "resources are encrypted in the store, with aesgcm keys; the first "
                        "key encrypts, every listed key decrypts (default: none)")
    a.add_argument("--token-file", type=Path, default=None,
                   help="static bearer tokens, kube-apiserver's format: token,user,uid,"
                        "\"group1,group2\" a line (a bare token is user admin in "
                        "system:masters); every call but health and reflection must then "
                        "authenticate (default: no authentication)")
    a.add_argument("--tls-cert-file", type=Path, default=None, metavar="FILE",
                   help="serve TLS with this certificate (kemu certs init makes one)")
    a.add_argument("--tls-private-key-file", type=Path, default=None, metavar="FILE",
                   help="the key of --tls-cert-file")
    a.add_argument("--client-ca-file", type=Path, default=None, metavar="FILE",
                   help="authenticate callers by client certificates from this CA (CN the "
                        "user, O the groups); required of every caller unless --token-file "
                        "is given too, which then wins (gRPC cannot make them optional)")
    a.add_argument("--insecure", action="store_true", help=tls.INSECURE_HELP)
    a.add_argument("--etcd-cafile", type=Path, default=None, metavar="FILE",
                   help="dial the store over TLS, verifying it with this CA")
    a.add_argument("--etcd-certfile", type=Path, default=None, metavar="FILE",
                   help="client certificate for a store with --client-cert-auth")
    a.add_argument("--etcd-keyfile", type=Path, default=None, metavar="FILE",
                   help="the key of --etcd-certfile")
    a.add_argument("--kubelet-certificate-authority", type=Path, default=None, metavar="FILE",
                   help="dial node agents over TLS, verifying them with this CA")
    a.add_argument("--kubelet-client-certificate", type=Path, default=None, metavar="FILE",
                   help="client certificate for agents started with --client-ca-file")
    a.add_argument("--kubelet-client-key", type=Path, default=None, metavar="FILE",
                   help="the key of --kubelet-client-certificate")
    a.add_argument("--max-request-bytes", type=_positive_int, default=3 * 1024 * 1024,
                   help="largest request message accepted, in bytes; larger ones fail "
                        "with RESOURCE_EXHAUSTED (default 3 MiB, as Kubernetes' 3 MB)")
    a.add_argument("--max-requests-per-second", type=_non_negative(float), default=1000.0,
                   help="requests a second per client (its bearer token, else its IP), "
                        "a token bucket refilled at this rate; 0: no limit (default 1000: "
                        "every component on one machine shares its IP without tokens)")
    a.add_argument("--burst", type=_positive_int, default=2000,
                   help="requests a client may send at once before the rate applies "
                        "(default 2000)")
    a.add_argument("--max-watches-per-client", type=_non_negative(int), default=500,
                   help="open watches per client; 0: no limit (default 500)")
    a.add_argument("--shutdown-grace", type=_non_negative(float), default=5.0,
                   help="seconds SIGTERM gives calls to finish; watches end at once "
                        "with UNAVAILABLE (default 5)")
    add_metrics_flag(a)
    logsetup.add_flags(a)

    scheduler_cli.add_parser(sub)
    controllers_cli.add_parser(sub)
    agent_cli.add_parser(sub)
    images_cli.add_parser(sub)
    dns_cli.add_parser(sub)
    for component in ("scheduler", "controller-manager", "dns"):
        tls.add_client_flags(sub.choices[component])

    u = sub.add_parser("up", help="start a cluster on this machine (store + apiserver)")
    u.add_argument("--name", default="kemu")
    u.add_argument("--store-port", type=int, default=2379)
    u.add_argument("--apiserver-port", type=int, default=6443)
    u.add_argument("--scheduler-port", type=int, default=10259,
                   help="the scheduler's health port")
    u.add_argument("--agent-port", type=int, default=10250, help="the node agent's port")
    u.add_argument("--controller-manager-port", type=int, default=10257,
                   help="the controller manager's health port")
    u.add_argument("--foreground", action="store_true", help="stay attached; Ctrl-C stops")
    u.add_argument("--nodes", type=_node_count, default=1,
                   help="number of nodes; more than 1 makes each a network namespace with "
                        "its own dockerd on a lab bridge (default 1: this machine's dockerd)")
    u.add_argument("--control-plane", choices=("containers", "processes"),
                   default="containers",
                   help="run store, apiserver, scheduler and controller manager as containers "
                        "of the kemu image (default) or as processes")
    u.add_argument("-q", "--quiet", action="store_true",
                   help="print nothing but errors (for scripts)")
    u.add_argument("-o", "--output", choices=("json",), default=None,
                   help="json: no progress, then the cluster's addresses as JSON")

    d = sub.add_parser("down", help="stop a cluster and remove what it made")
    d.add_argument("--name", default="kemu")
    d.add_argument("--keep-data", action="store_true", help="keep the store's data directory")

    st = sub.add_parser("status", help="show a cluster's components and their health")
    st.add_argument("--name", default="kemu")
    st.add_argument("-o", "--output", choices=("json",), default=None,
                    help="json: the components as JSON")

    service_url.add_parser(sub)
    addons_cli.add_parser(sub)
    certs_cli.add_parser(sub)
    simulate.add_parser(sub)
    dashboard_cli.add_parser(sub)
    logs_cli.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    mallocarenas.limit()  # before any thread of gRPC's starts
    try:
        return _run(argv)
    except BrokenPipeError:
        # The reader went away (`kemu images list | head -1`): not an error of ours, and
        # quiet as cat is; stdout goes to /dev/null so the flush at exit fails no more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    logsetup.configure_from_args(args.command, args)
    try:
        return dispatch(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise
    except Exception as e:  # one line for the user; -vv shows the traceback
        if args.verbose > 1:
            logging.exception("kemu %s failed", args.command)
        print(f"error: {e}", file=sys.stderr)
        return 1


def _up(args: argparse.Namespace, ports: lifecycle.Ports) -> int:
    """`kemu up`, with its progress lines silenced for --quiet and -o json (errors still
    reach stderr as one line)."""
    import contextlib
    import io
    import json

    def start() -> int:
        from kemu.cli import labup

        if args.nodes > 1 or labup.needs_own_namespace(args.name):
            return labup.up(args.name, args.nodes, ports, args.control_plane)
        return lifecycle.up(args.name, ports=ports, foreground=args.foreground,
                            control_plane=args.control_plane)

    if not (args.quiet or args.output):
        return start()
    with contextlib.redirect_stdout(io.StringIO()):
        code = start()
    if code == 0 and args.output == "json":
        print(json.dumps(lifecycle.summary(args.name), indent=2))
    return code


def dispatch(args: argparse.Namespace) -> int:
    if args.command in ("scheduler", "controller-manager", "dns"):
        tls.export_client_flags(args)
    if args.command == "store":
        from kemu.services.store.server import StoreConfig, run

        store_tls = tls.etcd_server_tls(args)
        run(StoreConfig(listen=args.listen, data_dir=args.data_dir, fsync=not args.no_fsync,
                        tls=store_tls, metrics_listen=args.metrics_listen))
        return 0
    if args.command == "apiserver":
        import ipaddress

        from kemu.services.apiserver.auth import load_tokens
        from kemu.services.apiserver.encryption import load as load_encryption
        from kemu.services.apiserver.limits import Limits
        from kemu.services.apiserver.server import APIServerConfig
        from kemu.services.apiserver.server import run as run_apiserver

        try:
            ipaddress.IPv4Network(args.service_cluster_ip_range)
        except ValueError as e:
            print(f"error: --service-cluster-ip-range: {e}", file=sys.stderr)
            return 2
        tokens = load_tokens(args.token_file) if args.token_file else frozenset[str]()
        encryption = load_encryption(args.encryption_provider_config) \
            if args.encryption_provider_config else None
        listen = args.listen or ["127.0.0.1:6443"]
        api_tls = tls.server_tls(args.tls_cert_file, args.tls_private_key_file,
                                 args.client_ca_file)
        tls.check_plaintext("apiserver", listen, api_tls, args.insecure,
                            authenticated=bool(tokens))
        etcd_tls = tls.ClientTLS.of(args.etcd_cafile, args.etcd_certfile, args.etcd_keyfile,
                                    flags=("--etcd-cafile", "--etcd-certfile",
                                           "--etcd-keyfile"))
        kubelet_tls = tls.ClientTLS.of(
            args.kubelet_certificate_authority, args.kubelet_client_certificate,
            args.kubelet_client_key, flags=("--kubelet-certificate-authority",
                                            "--kubelet-client-certificate",
                                            "--kubelet-client-key"))
        run_apiserver(APIServerConfig(listen=listen[0], also_listen=tuple(listen[1:]),
                                      store=args.store,
                                      service_cidr=args.service_cluster_ip_range,
                                      node_port_range=args.service_node_port_range,
                                      watch_cache_size=args.watch_cache_size,
                                      bookmark_interval=args.watch_bookmark_interval,
                                      advertise_address=args.advertise_address or "",
                                      encryption=encryption,
                                      authorization_modes=args.authorization_mode,
                                      tokens=tokens, tls=api_tls, etcd_tls=etcd_tls,
                                      kubelet_tls=kubelet_tls,
                                      max_request_bytes=args.max_request_bytes,
                                      limits=Limits(args.max_requests_per_second, args.burst,
                                                    args.max_watches_per_client),
                                      shutdown_grace=args.shutdown_grace,
                                      metrics_listen=args.metrics_listen))
        return 0
    if args.command == "scheduler":
        return scheduler_cli.run(args)
    if args.command == "controller-manager":
        return controllers_cli.run(args)
    if args.command == "dns":
        return dns_cli.run(args)
    if args.command == "agent":
        return agent_cli.run(args)
    if args.command == "images":
        if args.images_command == "push":
            return imagepush.run(args)
        return images_cli.run(args)
    if args.command == "up":
        ports = lifecycle.Ports(args.store_port, args.apiserver_port, args.scheduler_port,
                                args.agent_port, args.controller_manager_port)
        return _up(args, ports)
    if args.command == "down":
        return lifecycle.down(args.name, keep_data=args.keep_data)
    if args.command == "status":
        return lifecycle.status(args.name, args.output or "")
    if args.command == "service":
        return service_url.run(args)
    if args.command == "addons":
        return addons_cli.run(args)
    if args.command == "certs":
        return certs_cli.run(args)
    if args.command == "simulate":
        return simulate.run(args)
    if args.command == "dashboard":
        return dashboard_cli.run(args)
    if args.command == "logs":
        return logs_cli.run(args)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
