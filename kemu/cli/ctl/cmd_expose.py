"""`kemuctl expose TYPE NAME [--port P] [--target-port T] [--type T] ...`: make a Service
that selects what a Deployment, ReplicaSet, StatefulSet, ReplicationController, Pod or
Service selects, as `kubectl expose` does.

What is not given is introspected from the object, with kubectl's rules and wording: the
selector (a workload's matchLabels, a pod's labels, a service's selector; matchExpressions
cannot become a Service selector and are refused), the ports (every container port of the
pod template, or the service's ports; one --port overrides them), the target port (the
port itself unless --target-port), the name (the object's) and the labels (the object's).
"""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kemu.api import kinds, objects
from kemu.api.v1 import api_pb2, core_pb2
from kemu.cli.ctl import batch, generators, output, podref
from kemu.cli.ctl import parser as cli
from kemu.cli.ctl.columns import selector_string
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError

# Resources that can be exposed (kubectl's CanBeExposed, plus StatefulSet).
EXPOSABLE = ("deployments", "replicasets", "statefulsets", "replicationcontrollers", "pods",
             "services")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
PROTOCOLS = ("TCP", "UDP", "SCTP")
SESSION_AFFINITIES = ("ClientIP", "None")
SELECTOR_ERROR = "couldn't retrieve selectors via --selector flag or introspection"
PORT_ERROR = "couldn't find port via --port flag or introspection"


class IntrospectionError(CtlError):
    """The object cannot supply what a flag did not (a selector or a port)."""


@dataclass(frozen=True)
class Port:
    """One port found on the object: its number and protocol."""

    port: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class ExposeSpec:
    """What the Service is made of, flags already parsed; empty means introspect."""

    name: str = ""
    port: int = 0
    target_port: str = ""
    protocol: str = ""
    service_type: str = ""
    selector: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    external_ip: str = ""
    session_affinity: str = ""
    cluster_ip: str = ""


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("resources", nargs="*", metavar="TYPE NAME | TYPE/NAME",
                   help="deployment, replicaset, statefulset, replicationcontroller, pod or "
                        "service, and its name")
    p.add_argument("--port", default="", help="the port the service serves on (default: the "
                                              "object's ports)")
    p.add_argument("--target-port", default="",
                   help="the port (number or name) on the pods (default: --port)")
    p.add_argument("--type", dest="service_type", default="",
                   help="ClusterIP (default), NodePort or LoadBalancer")
    p.add_argument("--name", default="", help="the service's name (default: the object's)")
    p.add_argument("--protocol", default="",
                   help="TCP (default), UDP or SCTP (default: the object's protocols)")
    p.add_argument("--selector", default="", metavar="K=V,...",
                   help="the pods the service selects (default: the object's selector)")
    p.add_argument("-l", "--labels", default="", metavar="K=V,...",
                   help="labels of the service (default: the object's labels)")
    p.add_argument("--external-ip", default="", help="an extra IP the service accepts")
    p.add_argument("--session-affinity", default="", help="None (default) or ClientIP")
    p.add_argument("--cluster-ip", default="", help="the ClusterIP, or None for headless")
    cli.add_output(p, "yaml|json|name")
    cli.add_dry_run(p)


# ---- introspection -----------------------------------------------------------------------

def selector_for(kind: kinds.Kind, obj: Any) -> dict[str, str]:
    """The equality selector a Service needs, read from the object (kubectl's
    MapBasedSelectorForObject)."""
    if kind.plural == "pods":
        if not obj.metadata.labels:
            raise IntrospectionError(f"{SELECTOR_ERROR}: the pod has no labels and cannot be "
                                     "exposed")
        return dict(obj.metadata.labels)
    if kind.plural in ("services", "replicationcontrollers"):
        if not obj.spec.selector:
            what = "service has no pod selector set" if kind.plural == "services" else \
                "replication controller has no selector"
            raise IntrospectionError(f"{SELECTOR_ERROR}: the {what}")
        return dict(obj.spec.selector)
    selector = obj.spec.selector
    if selector.match_expressions:
        raise IntrospectionError(f"{SELECTOR_ERROR}: the selector "
                                 f"\"{selector_string(selector)}\" is not supported: "
                                 "matchExpressions cannot be a service's selector")
    if not selector.match_labels:
        raise IntrospectionError(f"{SELECTOR_ERROR}: the {kind.singular} has no selector")
    return dict(selector.match_labels)


def ports_for(kind: kinds.Kind, obj: Any) -> list[Port]:
    """Every port of the object, in order (kubectl's PortsForObject and ProtocolsForObject):
    a service's ports, else the container ports of the pod (template)."""
    if kind.plural == "services":
        return [Port(p.port, p.protocol or "TCP") for p in obj.spec.ports]
    pod_spec = obj.spec if kind.plural == "pods" else obj.spec.template.spec
    return [Port(cp.container_port, cp.protocol or "TCP")
            for c in pod_spec.containers for cp in c.ports]


def parse_pairs(text: str, flag: str) -> tuple[tuple[str, str], ...]:
    """`k=v,k2=v2` as --selector and --labels take it."""
    return generators.pairs([text], flag, split_commas=True) if text else ()


def parse_port(text: str, flag: str = "--port") -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise CtlError(f"invalid {flag} {text!r}: expected a number from 1 to 65535")
    return int(text)


def spec_from(args: Any) -> ExposeSpec:
    """Check the flags' values before anything is read from the server."""
    if args.service_type and args.service_type not in SERVICE_TYPES:
        raise CtlError(f'invalid service type "{args.service_type}": use '
                       + ", ".join(SERVICE_TYPES))
    if args.protocol and args.protocol not in PROTOCOLS:
        raise CtlError(f'invalid protocol "{args.protocol}": use ' + ", ".join(PROTOCOLS))
    if args.session_affinity and args.session_affinity not in SESSION_AFFINITIES:
        raise CtlError(f'invalid session affinity "{args.session_affinity}": use ClientIP or '
                       "None")
    for flag, value in (("--external-ip", args.external_ip), ("--cluster-ip", args.cluster_ip)):
        if value and not (flag == "--cluster-ip" and value == "None"):
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise CtlError(f'invalid {flag} "{value}": not an IP address') from None
    if args.target_port.isdigit():
        parse_port(args.target_port, "--target-port")
    return ExposeSpec(name=args.name, port=parse_port(args.port) if args.port else 0,
                      target_port=args.target_port, protocol=args.protocol,
                      service_type=args.service_type,
                      selector=parse_pairs(args.selector, "--selector"),
                      labels=parse_pairs(args.labels, "--labels"),
                      external_ip=args.external_ip, session_affinity=args.session_affinity,
                      cluster_ip=args.cluster_ip)


def build_service(kind: kinds.Kind, obj: Any, spec: ExposeSpec) -> api_pb2.Object:
    """The Service for `obj` (the unwrapped message) and the flags."""
    selector: Mapping[str, str] = dict(spec.selector) or selector_for(kind, obj)
    if spec.port:
        found = {p.port: p.protocol for p in ports_for(kind, obj)}
        ports: Sequence[Port] = [Port(spec.port, spec.protocol or found.get(spec.port, "TCP"))]
    else:
        ports = ports_for(kind, obj)
        if not ports:
            raise IntrospectionError(PORT_ERROR)
        if spec.protocol:
            ports = [Port(p.port, spec.protocol) for p in ports]
    svc = core_pb2.Service()
    svc.metadata.name = spec.name or obj.metadata.name
    for key, value in (spec.labels or tuple(obj.metadata.labels.items())):
        svc.metadata.labels[key] = value
    for key, value in selector.items():
        svc.spec.selector[key] = value
    for i, p in enumerate(ports):
        sp = svc.spec.ports.add(protocol=p.protocol, port=p.port)
        if len(ports) > 1:
            sp.name = f"port-{i + 1}"
        if not spec.target_port:
            sp.target_port.number_value = p.port
        elif spec.target_port.isdigit():
            sp.target_port.number_value = int(spec.target_port)
        else:
            sp.target_port.string_value = spec.target_port
    if spec.service_type:
        svc.spec.type = spec.service_type
    if spec.external_ip:
        svc.spec.external_ips.append(spec.external_ip)
    if spec.session_affinity:
        svc.spec.session_affinity = spec.session_affinity
    if spec.cluster_ip:
        svc.spec.cluster_ip = spec.cluster_ip
    return objects.wrap(svc)


# ---- the verb ----------------------------------------------------------------------------

def target(resources: Sequence[str], *, verb: str = "expose",
           allowed: Sequence[str] = EXPOSABLE) -> tuple[kinds.Kind, str]:
    """`TYPE NAME` or `TYPE/NAME`: exactly one object, of a kind the verb handles (`expose`
    and `autoscale` share this)."""
    if not resources:
        raise CtlError("You must provide one or more resources by argument or filename.")
    if len(resources) == 1 and "/" in resources[0]:
        kind, name = podref.parse_ref(resources[0])
    elif len(resources) == 2 and "/" not in resources[0]:
        kind, name = kinds.resolve(resources[0]), resources[1]
    elif len(resources) == 1:
        raise CtlError(f'resource(s) were provided, but no name was specified: kemuctl {verb} '
                       f'{resources[0]} NAME')
    else:
        raise CtlError(f"{verb} takes exactly one resource: TYPE NAME or TYPE/NAME")
    if kind.plural not in allowed:
        raise CtlError(f"cannot {verb} a {kind.kind}")
    return kind, name


def run(ctx: Ctx, args: Any) -> int:
    fmt, template = output.parse_format(args.output, args.template)
    spec = spec_from(args)
    kind, name = target(args.resources)
    obj = objects.unwrap(ctx.client.get(kind.plural, name, ctx.namespace))
    service = build_service(kind, obj, spec)
    objects.meta(service).namespace = obj.metadata.namespace or ctx.namespace
    if args.dry_run == "client":
        batch.report(ctx, objects.fill_type_meta(service), "exposed (dry run)", fmt, template)
        return 0
    server_dry = args.dry_run == "server"
    created = ctx.client.create(service, dry_run=server_dry)
    batch.report(ctx, created, "exposed" + (" (server dry run)" if server_dry else ""), fmt,
                 template)
    return 0
