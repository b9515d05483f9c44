"""describe for services (ports, target ports, node ports, endpoints per port),
namespaces, configmaps and secrets (sizes only, never values), as kubectl lays them out.
Nodes have their own module, `describe_nodes`."""

from __future__ import annotations

from typing import Any

from kemu.cli.ctl.columns import format_labels
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.describe_base import Writer, header
from kemu.cli.ctl.rows_net import format_endpoints, load_balancer_ips
from kemu.client.errors import NotFound


def _target(port: Any) -> str:
    which = port.target_port.WhichOneof("kind")
    if which == "number_value":
        return str(int(port.target_port.number_value))
    if which == "string_value":
        return str(port.target_port.string_value)
    return str(port.port)


def describe_service(w: Writer, ctx: Ctx, svc: Any, now: float) -> None:
    meta, spec = svc.metadata, svc.spec
    header(w, meta)
    w.line(0, "Selector:", format_labels(spec.selector))
    w.line(0, "Type:", spec.type)
    if spec.HasField("ip_family_policy"):
        w.line(0, "IP Family Policy:", spec.ip_family_policy)
    w.line(0, "IP Families:", ",".join(spec.ip_families) or "<none>")
    w.line(0, "IP:", spec.cluster_ip)
    w.line(0, "IPs:", ",".join(spec.cluster_ips) or "<none>")
    if spec.external_ips:
        w.line(0, "External IPs:", ",".join(spec.external_ips))
    if spec.load_balancer_ip:
        w.line(0, "IP:", spec.load_balancer_ip)
    if spec.type == "ExternalName":
        w.line(0, "External Name:", spec.external_name)
    if svc.status.load_balancer.ingress:
        w.line(0, "LoadBalancer Ingress:", load_balancer_ips(svc.status.load_balancer.ingress,
                                                               True))
    try:
        endpoints = ctx.client.get("endpoints", meta.name, meta.namespace).endpoints
    except NotFound:
        endpoints = None
    for port in spec.ports:
        name = port.name or "<unset>"
        protocol = port.protocol or "TCP"
        w.line(0, "Port:", name, f"{port.port}/{protocol}")
        w.line(0, "TargetPort:", f"{_target(port)}/{protocol}")
        if port.node_port:
            w.line(0, "NodePort:", name, f"{port.node_port}/{protocol}")
        w.line(0, "Endpoints:", format_endpoints(endpoints, {port.name}) if endpoints is not None
               else "<none>")
    w.line(0, "Session Affinity:", spec.session_affinity)
    if spec.external_traffic_policy:
        w.line(0, "External Traffic Policy:", spec.external_traffic_policy)
    if spec.HasField("internal_traffic_policy"):
        w.line(0, "Internal Traffic Policy:", spec.internal_traffic_policy)
    if spec.health_check_node_port:
        w.line(0, "HealthCheck NodePort:", spec.health_check_node_port)
    if spec.load_balancer_source_ranges:
        w.line(0, "LoadBalancer Source Ranges:", ",".join(spec.load_balancer_source_ranges))


def describe_endpoints(w: Writer, ctx: Ctx, ep: Any, now: float) -> None:
    header(w, ep.metadata)
    w.write(0, "Subsets:\n")
    for subset in ep.subsets:
        w.line(1, "Addresses:", ",".join(a.ip for a in subset.addresses) or "<none>")
        w.line(1, "NotReadyAddresses:",
               ",".join(a.ip for a in subset.not_ready_addresses) or "<none>")
        if subset.ports:
            w.write(1, "Ports:\n")
            w.line(2, "Name", "Port", "Protocol")
            w.line(2, "----", "----", "--------")
            for p in subset.ports:
                w.line(2, p.name or "<unset>", p.port, p.protocol or "TCP")
        w.write(0, "\n")


def describe_namespace(w: Writer, ctx: Ctx, ns: Any, now: float) -> None:
    header(w, ns.metadata, namespaced=False)
    w.line(0, "Status:", ns.status.phase)
    w.write(0, "\n")
    w.write(0, "No resource quota.\n")
    w.write(0, "\n")
    w.write(0, "No LimitRange resource.\n")


def describe_configmap(w: Writer, ctx: Ctx, cm: Any, now: float) -> None:
    header(w, cm.metadata)
    w.write(0, "\nData\n====\n")
    for key in sorted(cm.data):
        w.write(0, f"{key}:\n----\n{cm.data[key]}\n\n")
    w.write(0, "\nBinaryData\n====\n")
    for key in sorted(cm.binary_data):
        w.write(0, f"{key}: {len(cm.binary_data[key])} bytes\n")
    w.write(0, "\n")


def describe_secret(w: Writer, ctx: Ctx, secret: Any, now: float) -> None:
    header(w, secret.metadata)
    w.write(0, "\n")
    w.line(0, "Type:", secret.type or "Opaque")
    w.write(0, "\nData\n====\n")
    for key in sorted(secret.data):
        w.line(0, f"{key}:", f"{len(secret.data[key])} bytes")
