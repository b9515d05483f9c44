"""`kemu service NAME [-n NS] [--url]`: where a Service can be reached from this machine, as
`minikube service NAME --url` says it.

A NodePort (or LoadBalancer) Service is reachable on every Ready node's InternalIP at its
nodePort, and a LoadBalancer's ingress IPs at its port; that is what a user needs to point
curl or a browser at, without reading `kemuctl get svc,nodes -o yaml`. A ClusterIP-only
Service is reachable only from inside the cluster, so it is refused with one line saying
how to change that. Nothing is ever opened: kemu runs on servers and in CI, where a
browser is the wrong default.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from kemu.api.nodes import is_ready
from kemu.client.client import Client
from kemu.client.config import resolve_server, resolve_tls
from kemu.client.errors import NotFound


class ServiceURLError(Exception):
    """The service cannot be reached from outside; printed as the single stderr line."""


@dataclass(frozen=True)
class Row:
    """One URL and the service port it leads to."""

    target_port: str
    url: str


def add_parser(sub: Any) -> None:
    """The `service` subcommand of `kemu`."""
    s = sub.add_parser("service", help="print the URLs of a NodePort or LoadBalancer service "
                                       "(as minikube service --url)")
    s.add_argument("name", metavar="NAME", help="the service")
    s.add_argument("-n", "--namespace", default="default", help="its namespace")
    s.add_argument("--url", action="store_true", help="print only the URLs, one a line")
    s.add_argument("--server", default=None, metavar="HOST:PORT",
                   help="apiserver address (default: $KEMU_SERVER, then ~/.kemu/config)")


def node_ips(nodes: Iterable[Any]) -> list[str]:
    """The InternalIP of every Ready node, once each, in node order."""
    ips: list[str] = []
    for node in nodes:
        if not is_ready(node):
            continue
        for address in node.status.addresses:
            if address.type == "InternalIP" and address.address not in ips:
                ips.append(address.address)
    return ips


def target_of(port: Any) -> str:
    """The TARGET PORT cell: the port's name when it has one (minikube's), else its
    targetPort."""
    if port.name:
        return str(port.name)
    kind = port.target_port.WhichOneof("kind")
    if kind == "number_value":
        return str(int(port.target_port.number_value))
    if kind == "string_value":
        return str(port.target_port.string_value)
    return str(port.port)


def host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def rows_for(svc: Any, ips: Sequence[str]) -> list[Row]:
    """Every URL of the service: each nodePort on each node IP, then each load-balancer
    ingress IP at each service port. Raises ServiceURLError when there is none."""
    ns, name = svc.metadata.namespace or "default", svc.metadata.name
    node_ports = [p for p in svc.spec.ports if p.node_port]
    if svc.spec.type not in ("NodePort", "LoadBalancer") or not node_ports:
        raise ServiceURLError(f"service {ns}/{name} has no node port: expose it with "
                              "--type=NodePort or LoadBalancer")
    rows = [Row(target_of(p), f"http://{host(ip)}:{p.node_port}")
            for p in node_ports for ip in ips]
    if svc.spec.type == "LoadBalancer":
        ingress = [i.ip for i in svc.status.load_balancer.ingress if i.ip]
        rows += [Row(target_of(p), f"http://{host(ip)}:{p.port}")
                 for p in svc.spec.ports for ip in ingress]
    if not rows:
        raise ServiceURLError(f"service {ns}/{name} has node ports but no Ready node with an "
                              "InternalIP to reach them on")
    return rows


def table(namespace: str, name: str, rows: Sequence[Row]) -> str:
    """minikube's boxed table: NAMESPACE, NAME, TARGET PORT, URL."""
    header = ("NAMESPACE", "NAME", "TARGET PORT", "URL")
    cells = [(namespace, name, r.target_port, r.url) for r in rows]
    widths = [max(len(c[i]) for c in (header, *cells)) for i in range(4)]
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"

    def line(values: Sequence[str]) -> str:
        return "|" + "|".join(f" {v:<{w}} " for v, w in zip(values, widths, strict=True)) + "|"

    return "\n".join([rule, line(header), rule, *(line(c) for c in cells), rule]) + "\n"


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    # The server and its TLS as kemuctl finds them ($KEMU_*, then ~/.kemu/config).
    with Client(resolve_server(args.server), tls=resolve_tls()) as client:
        try:
            svc = client.get("services", args.name, args.namespace).service
        except NotFound:
            err.write(f'service "{args.name}" not found in namespace "{args.namespace}"\n')
            return 1
        nodes = [o.node for o in client.list("nodes").items]
    try:
        rows = rows_for(svc, node_ips(nodes))
    except ServiceURLError as e:
        err.write(f"{e}\n")
        return 1
    if args.url:
        out.write("".join(f"{r.url}\n" for r in rows))
    else:
        out.write(table(args.namespace, args.name, rows))
    out.flush()
    return 0
