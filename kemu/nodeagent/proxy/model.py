"""What the proxy needs to know about Services and endpoints, and nothing more.

The renderer works on these frozen values instead of protobuf messages so that it stays a
pure function that tests can feed by hand, and so that the conversion rules (headless
services, ExternalName, named target ports, readiness) live in one place: `convert`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_AFFINITY_TIMEOUT = 10800
"""Kubernetes' default ClientIP affinity timeout (3 hours), in seconds."""


@dataclass(frozen=True, order=True)
class EndpointInfo:
    """One backend of one service port: `ip:port`, ready or not, on this node or not."""

    ip: str
    port: int
    ready: bool = True
    is_local: bool = False

    @property
    def address(self) -> str:
        """`ip:port` as kube-proxy writes it in DNAT targets and chain hashes."""
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class ServicePortInfo:
    """One port of one Service, with everything that decides its rules.

    `node_port` 0 means no NodePort; `affinity_timeout` 0 means no session affinity (the
    converter sets it only for `sessionAffinity: ClientIP`).
    """

    namespace: str
    name: str
    port_name: str
    protocol: str
    cluster_ip: str
    port: int
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    affinity_timeout: int = 0
    external_policy_local: bool = False
    internal_policy_local: bool = False

    @property
    def key(self) -> str:
        """The ServicePortName string `ns/name:port` (`ns/name` for an unnamed port).

        It is what kube-proxy hashes into chain names and writes in comments, and the key
        of the endpoints mapping given to `render`.
        """
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port_name}" if self.port_name else base

    @property
    def proto(self) -> str:
        """The protocol as iptables spells it (`tcp`, `udp`, `sctp`)."""
        return self.protocol.lower()

    @property
    def has_external(self) -> bool:
        """Whether the port is reachable from outside the cluster (NodePort, external IP, LB)."""
        return bool(self.node_port or self.external_ips or self.load_balancer_ips)


@dataclass(frozen=True)
class ProxyConfig:
    """How this node's proxy renders: its IPs, the cluster CIDR and the masquerade bit.

    `nodeport_addresses` empty means NodePorts answer on every local address (kube-proxy's
    default, `-m addrtype --dst-type LOCAL`); otherwise CIDRs, or `("primary",)` for the
    node's own IPs as kube-proxy's `--nodeport-addresses primary`. `localhost_nodeports`
    adds 127.0.0.1 to "every local address" (kube-proxy's --iptables-localhost-nodeports;
    it needs the sysctl route_localnet, which the agent sets).
    """

    cluster_cidr: str
    node_ips: tuple[str, ...] = ()
    masquerade_mark: str = "0x4000"
    nodeport_addresses: tuple[str, ...] = field(default=())
    localhost_nodeports: bool = False
