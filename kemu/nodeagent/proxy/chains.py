"""Chain names: a fixed prefix plus a 16-character hash, as kube-proxy makes them.

iptables limits chain names to 28 characters, and a Service's namespace, name and port name
together are far longer; hashing also keeps names stable across restarts, which is how a
sync finds the chains it made before and which of them are stale. The hash is
base32(sha256(servicePortName + protocol [+ endpoint]))[:16], as in kube-proxy's
`servicePortChainName` and `servicePortEndpointChainName`.
"""

from __future__ import annotations

import base64
import hashlib

PREFIX = "KEMU-"
MAX_CHAIN_LEN = 28

SERVICES = "KEMU-SERVICES"
EXTERNAL_SERVICES = "KEMU-EXTERNAL-SERVICES"
NODEPORTS = "KEMU-NODEPORTS"
POSTROUTING = "KEMU-POSTROUTING"
MARK_MASQ = "KEMU-MARK-MASQ"
FORWARD = "KEMU-FORWARD"

SVC = "KEMU-SVC-"
SVL = "KEMU-SVL-"
EXT = "KEMU-EXT-"
SEP = "KEMU-SEP-"


def _hash(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return base64.b32encode(digest).decode()[:16]


def port_proto_hash(service_port_name: str, protocol: str) -> str:
    """The 16-character hash of one service port, as kube-proxy's `portProtoHash`."""
    return _hash(service_port_name + protocol.lower())


def svc_chain(service_port_name: str, protocol: str) -> str:
    """The chain that load-balances over all ready endpoints of a service port."""
    return SVC + port_proto_hash(service_port_name, protocol)


def svl_chain(service_port_name: str, protocol: str) -> str:
    """The chain that load-balances over the node-local endpoints (traffic policy Local)."""
    return SVL + port_proto_hash(service_port_name, protocol)


def ext_chain(service_port_name: str, protocol: str) -> str:
    """The chain for traffic arriving by NodePort, external IP or load-balancer IP."""
    return EXT + port_proto_hash(service_port_name, protocol)


def sep_chain(service_port_name: str, protocol: str, endpoint: str) -> str:
    """The chain that DNATs to one endpoint (`ip:port`) of a service port."""
    return SEP + _hash(service_port_name + protocol.lower() + endpoint)


def is_ours(chain: str) -> bool:
    """Whether a chain belongs to kemu's proxy (and may be deleted when stale)."""
    return chain.startswith(PREFIX)
