"""From typed Service and Endpoints objects to the proxy's model: pure, no I/O.

Everything Kubernetes decides about which services get rules lives here, so that the
renderer only ever sees ports that need them: headless (`clusterIP: None`) and
ExternalName services get none; NodePorts count only for NodePort and LoadBalancer types,
load-balancer IPs only for LoadBalancer; ClientIP affinity defaults to 10800 s. Endpoints
are matched to a service port by port name, as kube-proxy matches Endpoints subsets. Only
IPv4 is rendered (the proxy writes `iptables`, not `ip6tables`), so IPv6 addresses are
skipped.
"""

from __future__ import annotations

from collections.abc import Iterable

from kemu.api.v1 import core_pb2
from kemu.nodeagent.proxy.model import DEFAULT_AFFINITY_TIMEOUT, EndpointInfo, ServicePortInfo

_NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


def _v4(ip: str) -> bool:
    return bool(ip) and ":" not in ip


def service_ports(svc: core_pb2.Service) -> list[ServicePortInfo]:
    """The ports of one Service that need rules; empty for headless and ExternalName."""
    spec = svc.spec
    if spec.type == "ExternalName" or not _v4(spec.cluster_ip) or spec.cluster_ip == "None":
        return []
    affinity = 0
    if spec.session_affinity == "ClientIP":
        cfg = spec.session_affinity_config.client_ip
        affinity = (
            cfg.timeout_seconds if cfg.HasField("timeout_seconds") else DEFAULT_AFFINITY_TIMEOUT
        )
    lb_ips: tuple[str, ...] = ()
    if spec.type == "LoadBalancer":
        lb_ips = tuple(sorted({i.ip for i in svc.status.load_balancer.ingress if _v4(i.ip)}))
    internal_local = (
        spec.HasField("internal_traffic_policy") and spec.internal_traffic_policy == "Local"
    )
    return [
        ServicePortInfo(
            namespace=svc.metadata.namespace or "default",
            name=svc.metadata.name,
            port_name=p.name,
            protocol=p.protocol or "TCP",
            cluster_ip=spec.cluster_ip,
            port=p.port,
            node_port=p.node_port if spec.type in _NODE_PORT_TYPES else 0,
            external_ips=tuple(sorted({ip for ip in spec.external_ips if _v4(ip)})),
            load_balancer_ips=lb_ips,
            affinity_timeout=affinity,
            external_policy_local=spec.external_traffic_policy == "Local",
            internal_policy_local=internal_local,
        )
        for p in spec.ports
    ]


def port_endpoints(
    port: ServicePortInfo, endpoints: core_pb2.Endpoints, *, node_name: str
) -> list[EndpointInfo]:
    """The endpoints of one service port: subsets' ports with the same name and protocol."""
    out: set[EndpointInfo] = set()
    for subset in endpoints.subsets:
        for ep_port in subset.ports:
            if ep_port.name != port.port_name or (ep_port.protocol or "TCP") != port.protocol:
                continue
            for ready, addresses in ((True, subset.addresses), (False, subset.not_ready_addresses)):
                for addr in addresses:
                    if not _v4(addr.ip):
                        continue
                    local = addr.HasField("node_name") and addr.node_name == node_name
                    out.add(EndpointInfo(addr.ip, ep_port.port, ready=ready, is_local=local))
    return sorted(out)


def desired_state(
    services: Iterable[core_pb2.Service],
    endpoints: Iterable[core_pb2.Endpoints],
    *,
    node_name: str,
) -> tuple[list[ServicePortInfo], dict[str, list[EndpointInfo]]]:
    """The arguments of `render` / `Proxier.sync` for all Services and Endpoints objects."""
    by_name = {(e.metadata.namespace or "default", e.metadata.name): e for e in endpoints}
    ports: list[ServicePortInfo] = []
    eps: dict[str, list[EndpointInfo]] = {}
    for svc in services:
        for port in service_ports(svc):
            ports.append(port)
            ep = by_name.get((port.namespace, port.name))
            if ep is not None:
                eps[port.key] = port_endpoints(port, ep, node_name=node_name)
    return ports, eps
