"""Table rows of the networking kinds: services, endpoints and ingresses, with kubectl's
PORT(S), EXTERNAL-IP and ENDPOINTS conventions (`80:31514/TCP`, `<pending>`, `+ 2 more...`)."""

from __future__ import annotations

from typing import Any

from kemu.cli.ctl.columns import NONE, Columns, age, map_selector


def service_ports(ports: Any) -> str:
    pieces = []
    for p in ports:
        protocol = p.protocol or "TCP"
        pieces.append(f"{p.port}:{p.node_port}/{protocol}" if p.node_port
                      else f"{p.port}/{protocol}")
    return ",".join(pieces) or NONE


def load_balancer_ips(ingress: Any, wide: bool) -> str:
    text = ",".join(i.ip or i.hostname for i in ingress if i.ip or i.hostname)
    if not wide and len(text) > 16:
        return text[:13] + "..."
    return text


def external_ip(svc: Any, wide: bool) -> str:
    spec = svc.spec
    kind = spec.type or "ClusterIP"
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(spec.external_ips) or NONE
    if kind == "LoadBalancer":
        lb = load_balancer_ips(svc.status.load_balancer.ingress, wide)
        if spec.external_ips:
            return ",".join([*(lb.split(",") if lb else []), *spec.external_ips])
        return lb or "<pending>"
    if kind == "ExternalName":
        return str(spec.external_name)
    return "<unknown>"


def cluster_ip(svc: Any) -> str:
    spec = svc.spec
    if spec.cluster_ips:
        return str(spec.cluster_ips[0])
    return spec.cluster_ip or NONE


def service_row(svc: Any, now: float, wide: bool) -> list[str]:
    row = [svc.metadata.name, svc.spec.type or "ClusterIP", cluster_ip(svc),
           external_ip(svc, wide), service_ports(svc.spec.ports), age(svc, now)]
    if wide:
        row.append(map_selector(svc.spec.selector) or NONE)
    return row


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def format_endpoints(ep: Any, port_names: set[str] | None = None, limit: int = 3) -> str:
    """Ready addresses as ip:port, at most `limit` and then `+ N more...`, as kubectl."""
    listed: list[str] = []
    count = 0
    more = False
    for subset in ep.subsets:
        if not subset.ports:
            count += len(subset.addresses)
            for addr in subset.addresses:
                if len(listed) == limit:
                    more = True
                    break
                listed.append(addr.ip)
            continue
        for port in subset.ports:
            if port_names is not None and port.name not in port_names:
                continue
            count += len(subset.addresses)
            for addr in subset.addresses:
                if len(listed) == limit:
                    more = True
                    break
                listed.append(_host_port(addr.ip, port.port))
    text = ",".join(listed)
    if more:
        return f"{text} + {count - limit} more..."
    return text or NONE


def endpoints_row(ep: Any, now: float, wide: bool) -> list[str]:
    return [ep.metadata.name, format_endpoints(ep), age(ep, now)]


def ingress_hosts(rules: Any, limit: int = 4) -> str:
    hosts = [r.host for r in rules if r.host]
    if not hosts:
        return "*"
    text = ",".join(hosts[:limit])
    return f"{text} + {len(hosts) - limit} more..." if len(hosts) > limit else text


def ingress_row(ing: Any, now: float, wide: bool) -> list[str]:
    spec = ing.spec
    klass = spec.ingress_class_name if spec.HasField("ingress_class_name") else NONE
    address = load_balancer_ips(ing.status.load_balancer.ingress, wide)
    ports = "80, 443" if len(spec.tls) else "80"
    return [ing.metadata.name, klass, ingress_hosts(spec.rules), address, ports, age(ing, now)]


COLUMNS: dict[str, Columns] = {
    "services": Columns(("NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"),
                        service_row, ("SELECTOR",)),
    "endpoints": Columns(("NAME", "ENDPOINTS", "AGE"), endpoints_row),
    "ingresses": Columns(("NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"), ingress_row),
}
