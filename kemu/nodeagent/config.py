"""The agent's configuration: one frozen value built by the CLI and passed to `run`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kemu.util.tls import ServerTLS


@dataclass(frozen=True)
class AgentConfig:
    """Everything the agent needs to know at start; nothing here changes while it runs."""

    apiserver: str
    node_name: str
    node_ip: str
    docker_host: str = ""
    # "docker" runs pods; "fake" (fakeruntime.py) runs nothing, for scale tests only.
    runtime: str = "docker"
    # Bearer token for an apiserver started with --token-file (the VM's join token).
    token: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    port: int = 10250
    listen_host: str = "0.0.0.0"
    data_dir: Path = Path("/var/lib/kemu/agent")
    pause_image: str = "kemu/pause:3.9"
    network: str = ""
    workers: int = 16
    # Kubernetes' container restart and image pull back-off: 10 s doubling to 5 min.
    backoff_initial: float = 10.0
    backoff_max: float = 300.0
    lease_duration_seconds: int = 40
    lease_renew_interval: float = 4.0
    node_status_interval: float = 10.0
    resync_interval: float = 10.0
    max_pods: int = 110
    cluster_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/12"
    # "iptables" programs kube-proxy-style Service rules; "none" leaves Services to others.
    proxy_mode: str = "iptables"
    # "host-gw" routes other nodes' podCIDRs and opens forwarding; "none" touches nothing.
    network_plugin: str = "host-gw"
    # NodePorts on 127.0.0.1 too (kube-proxy's --iptables-localhost-nodeports, default on).
    localhost_nodeports: bool = True
    proxy_min_sync_interval: float = 1.0
    proxy_sync_interval: float = 30.0
    # Serve the NodeAgent port over TLS (the kubelet's `--tls-cert-file
    # --tls-private-key-file`, and `--client-ca-file` to require the apiserver's client
    # certificate); None: plaintext.
    tls: ServerTLS | None = None
    # Plaintext is meant (`--insecure`): the warning at start then gives no hint.
    insecure: bool = False
    # Serve Prometheus metrics over HTTP here (`--metrics-listen`); None: off.
    metrics_listen: str | None = None

    @property
    def network_name(self) -> str:
        """The Docker network pods are put on: --network, or the agent's own bridge."""
        return self.network or f"kemu-{self.node_name}"

    @property
    def owns_network(self) -> bool:
        return not self.network
