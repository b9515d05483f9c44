"""The pod sandbox: the pause container that owns the pod's network (and IPC) namespace,
and the files every container of the pod shares: /etc/hosts and /etc/resolv.conf.

Docker puts a container that joins another's network namespace on that container's hosts
and resolv.conf files; on a user-defined network those name Docker's embedded DNS server
(127.0.0.11). Pods must see the cluster DNS server instead, as the kubelet arranges, so the
agent writes both files itself into the pod's directory and bind-mounts them into every app
container. The rendering is pure and tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kemu.nodeagent import naming
from kemu.nodeagent.runtime import CreateSpec

CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class DNSConfig:
    """What goes into a pod's resolv.conf; None from `dns_config` means Docker's default."""

    nameservers: tuple[str, ...]
    searches: tuple[str, ...]
    options: tuple[str, ...]


def hostname(pod: Any) -> str:
    """The pod's hostname: spec.hostname, else its name, cut to 63 characters as the
    kubelet does."""
    name = str(pod.spec.hostname or pod.metadata.name)
    return name[:63].rstrip("-.") if len(name) > 63 else name


def dns_config(pod: Any, cluster_dns: str) -> DNSConfig | None:
    """The kubelet's DNS policy: ClusterFirst uses the cluster DNS server when one exists,
    None uses only dnsConfig, Default (and host network) keeps the node's resolver."""
    policy = pod.spec.dns_policy or "ClusterFirst"
    ns = pod.metadata.namespace
    servers: list[str] = []
    searches: list[str] = []
    options: dict[str, str | None] = {}
    if policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst"
                                               and not pod.spec.host_network):
        if not cluster_dns:
            if not pod.spec.HasField("dns_config"):
                return None
        else:
            servers.append(cluster_dns)
            searches += [f"{ns}.svc.{CLUSTER_DOMAIN}", f"svc.{CLUSTER_DOMAIN}", CLUSTER_DOMAIN]
            options["ndots"] = "5"
    elif policy != "None" and not pod.spec.HasField("dns_config"):
        return None
    if pod.spec.HasField("dns_config"):
        cfg = pod.spec.dns_config
        servers += [s for s in cfg.nameservers if s not in servers]
        searches += [s for s in cfg.searches if s not in searches]
        for opt in cfg.options:
            options[opt.name] = opt.value if opt.HasField("value") else None
    if not servers and not searches and not options:
        return None
    opts = tuple(k if v is None else f"{k}:{v}" for k, v in options.items())
    return DNSConfig(tuple(servers[:3]), tuple(searches[:32]), opts)


def render_resolv_conf(cfg: DNSConfig) -> str:
    lines = [f"nameserver {s}" for s in cfg.nameservers]
    if cfg.searches:
        lines.append("search " + " ".join(cfg.searches))
    if cfg.options:
        lines.append("options " + " ".join(cfg.options))
    return "\n".join(lines) + "\n"


def render_hosts(pod: Any, pod_ip: str) -> str:
    """The kubelet's managed /etc/hosts."""
    lines = ["# Kubernetes-managed hosts file (kemu).",
             "127.0.0.1\tlocalhost",
             "::1\tlocalhost ip6-localhost ip6-loopback",
             "fe00::0\tip6-localnet",
             "fe00::0\tip6-mcastprefix",
             "fe00::1\tip6-allnodes",
             "fe00::2\tip6-allrouters"]
    host = hostname(pod)
    if pod_ip:
        if pod.spec.subdomain:
            fqdn = f"{host}.{pod.spec.subdomain}.{pod.metadata.namespace}.svc.{CLUSTER_DOMAIN}"
            lines.append(f"{pod_ip}\t{fqdn}\t{host}")
        else:
            lines.append(f"{pod_ip}\t{host}")
    if pod.spec.host_aliases:
        lines.append("")
        lines.append("# Entries added by HostAliases.")
        for alias in pod.spec.host_aliases:
            lines.append(f"{alias.ip}\t" + "\t".join(alias.hostnames))
    return "\n".join(lines) + "\n"


def sandbox_spec(pod: Any, *, node: str, image: str, network: str, attempt: int
                 ) -> CreateSpec:
    """The pause container of a pod."""
    m = pod.metadata
    labels = naming.pod_labels(node, m.namespace, m.name, m.uid, naming.SANDBOX,
                               naming.KIND_SANDBOX)
    labels[naming.ATTEMPT] = str(attempt)
    ports: dict[str, list[tuple[str, int]]] = {}
    for c in pod.spec.containers:
        for p in c.ports:
            if p.host_port and not pod.spec.host_network:
                key = f"{p.container_port}/{(p.protocol or 'TCP').lower()}"
                ports.setdefault(key, []).append((p.host_ip or "", p.host_port))
    host_net = pod.spec.host_network
    return CreateSpec(
        name=naming.container_name(naming.SANDBOX, m.name, m.namespace, m.uid, attempt),
        image=image, labels=labels, hostname="" if host_net else hostname(pod),
        network="" if host_net else network, network_mode="host" if host_net else "",
        ipc_mode="host" if pod.spec.host_ipc else "shareable",
        pid_mode="host" if pod.spec.host_pid else "",
        port_bindings=ports)


def write_pod_files(pod_path: Path, pod: Any, pod_ip: str, dns: DNSConfig | None
                    ) -> tuple[Path, Path | None]:
    """Write the pod's hosts and resolv.conf (if managed); their paths."""
    pod_path.mkdir(parents=True, exist_ok=True)
    hosts = pod_path / "etc-hosts"
    _write_if_changed(hosts, render_hosts(pod, pod_ip))
    resolv = None
    if dns is not None:
        resolv = pod_path / "resolv.conf"
        _write_if_changed(resolv, render_resolv_conf(dns))
    return hosts, resolv


def _write_if_changed(path: Path, text: str) -> None:
    try:
        if path.read_text() == text:
            return
    except OSError:
        pass
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    tmp.replace(path)
