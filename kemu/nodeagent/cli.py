"""`kemu agent`: the node agent's command line.

`add_parser(subparsers)` adds the subcommand to `kemu`; `run(args)` builds the frozen
AgentConfig and runs the agent. `python -m kemu.nodeagent` uses the same two functions.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

from kemu.nodeagent.config import AgentConfig
from kemu.util import logsetup, tls
from kemu.util.argtypes import host_port
from kemu.util.metricsflag import add_metrics_flag

DEFAULT_DATA_ROOT = Path("/var/lib/kemu/agent")


def _labels(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"expected k=v[,k=v...], got {part!r}")
        out[key.strip()] = value.strip()
    return out


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def _cidr(text: str) -> str:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not a CIDR: {text!r}") from e
    if net.version != 4:
        raise argparse.ArgumentTypeError(f"only IPv4 CIDRs are supported: {text!r}")
    return str(net)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]
               ) -> argparse.ArgumentParser:
    a = subparsers.add_parser("agent", help="run the node agent (kemu's kubelet) on this node")
    configure(a)
    return a


def configure(a: argparse.ArgumentParser) -> None:
    a.add_argument("--apiserver", type=host_port, help="HOST:PORT (required)")
    a.add_argument("--node-name", help="(required)")
    a.add_argument("--node-ip", type=_ip,
                   help="the node's InternalIP, where the apiserver and other nodes reach it "
                        "(required)")
    a.add_argument("--docker-host", default="",
                   help="Docker endpoint, e.g. unix:///var/run/docker.sock (default: $DOCKER_HOST"
                        " or the local socket)")
    a.add_argument("--runtime", choices=("docker", "fake"), default="docker",
                   help="docker (default) runs pods as containers; fake runs NOTHING, for "
                        "scale tests only: pods look Running at once, the Node says "
                        "containerRuntimeVersion fake://kemu-simulated, and Service rules "
                        "and the pod network are off (--proxy-mode none --network-plugin "
                        "none). For many nodes in one process: kemu simulate nodes")
    a.add_argument("--token", default=None,
                   help="bearer token for an apiserver started with --token-file (default: "
                        "$KEMU_TOKEN)")
    a.add_argument("--labels", type=_labels, default={},
                   help="extra node labels, k=v[,k=v...] (e.g. node-role.kubernetes.io/worker=)")
    a.add_argument("--port", type=int, default=10250, help="NodeAgent gRPC port")
    a.add_argument("--address", default="0.0.0.0", help="address the NodeAgent port binds")
    a.add_argument("--data-dir", type=Path, default=None,
                   help="default: /var/lib/kemu/agent/NODE")
    a.add_argument("--pause-image", default="kemu/pause:3.9")
    a.add_argument("--network", default="",
                   help="Docker network for pods (default: a bridge kemu-NODE made by the agent)")
    a.add_argument("--workers", type=int, default=16, help="pods synced in parallel")
    a.add_argument("--backoff-initial", type=float, default=10.0,
                   help="first crash-loop / image-pull back-off, seconds (Kubernetes: 10)")
    a.add_argument("--backoff-max", type=float, default=300.0,
                   help="longest back-off, seconds (Kubernetes: 300)")
    a.add_argument("--resync-interval", type=float, default=10.0)
    a.add_argument("--cluster-cidr", type=_cidr, default="10.244.0.0/16",
                   help="all pods' addresses (traffic inside it is never masqueraded)")
    a.add_argument("--service-cidr", type=_cidr, default="10.96.0.0/12",
                   help="the ClusterIP range (as the apiserver's --service-cluster-ip-range)")
    a.add_argument("--proxy-mode", choices=("iptables", "none"), default="iptables",
                   help="Service rules as kube-proxy's iptables mode, or none")
    a.add_argument("--iptables-localhost-nodeports", action=argparse.BooleanOptionalAction,
                   default=True,
                   help="NodePorts answer on 127.0.0.1 too (sets route_localnet), as "
                        "kube-proxy's flag of that name")
    a.add_argument("--network-plugin", choices=("host-gw", "none"), default="host-gw",
                   help="routes to other nodes' pods and forwarding rules, or none")
    a.add_argument("--cleanup", action="store_true",
                   help="remove every iptables rule, route and address the agent made on "
                        "this machine, then exit (as kube-proxy --cleanup)")
    a.add_argument("--tls-cert-file", type=Path, default=None, metavar="FILE",
                   help="serve the NodeAgent port over TLS with this certificate (its SANs "
                        "must hold --node-ip), as the kubelet's flag")
    a.add_argument("--tls-private-key-file", type=Path, default=None, metavar="FILE",
                   help="the key of --tls-cert-file")
    a.add_argument("--client-ca-file", type=Path, default=None, metavar="FILE",
                   help="require client certificates signed by this CA (the apiserver's "
                        "--kubelet-client-certificate); needs --tls-cert-file")
    a.add_argument("--insecure", action="store_true", help=tls.INSECURE_HELP)
    add_metrics_flag(a)
    tls.add_client_flags(a)
    a.add_argument("--verbose", dest="agent_verbose", action="count", default=0,
                   help="twice: debug logs (as -v 4)")
    logsetup.add_flags(a)


def config_from(args: argparse.Namespace) -> AgentConfig:
    import os

    docker_host = args.docker_host or os.environ.get("DOCKER_HOST", "")
    fake = args.runtime == "fake"  # networking off: nothing runs to route or serve
    return AgentConfig(
        apiserver=args.apiserver, node_name=args.node_name, node_ip=args.node_ip,
        docker_host=docker_host, runtime=args.runtime,
        token=args.token or os.environ.get("KEMU_TOKEN", ""),
        labels=args.labels, port=args.port,
        listen_host=args.address,
        data_dir=args.data_dir or DEFAULT_DATA_ROOT / args.node_name,
        pause_image=args.pause_image, network=args.network, workers=args.workers,
        backoff_initial=args.backoff_initial, backoff_max=args.backoff_max,
        resync_interval=args.resync_interval, cluster_cidr=args.cluster_cidr,
        service_cidr=args.service_cidr, proxy_mode="none" if fake else args.proxy_mode,
        network_plugin="none" if fake else args.network_plugin,
        localhost_nodeports=args.iptables_localhost_nodeports,
        tls=tls.server_tls(args.tls_cert_file, args.tls_private_key_file, args.client_ca_file),
        insecure=args.insecure, metrics_listen=args.metrics_listen)


def run(args: argparse.Namespace) -> int:
    """Run the agent; one line and exit 1 when it cannot start."""
    from kemu.nodeagent.agent import AgentError
    from kemu.nodeagent.agent import run as run_agent

    if args.cleanup:
        return cleanup(args)
    missing = [flag for flag, value in (("--apiserver", args.apiserver),
                                        ("--node-name", args.node_name),
                                        ("--node-ip", args.node_ip)) if not value]
    if missing:
        print(f"kemu agent: error: the following arguments are required: {', '.join(missing)}",
              file=sys.stderr)
        return 2
    logsetup.configure_from_args("agent", args)
    try:
        config = config_from(args)
        tls.export_client_flags(args)
        if config.tls is not None and args.insecure:
            raise tls.TLSConfigError("--insecure contradicts --tls-cert-file: choose one")
        if config.tls is None and not args.insecure:
            raise tls.TLSConfigError(
                "node agent serves TLS: give --tls-cert-file and --tls-private-key-file "
                "(kemu certs issue system:node:NAME --server ...), or --insecure to serve "
                "plaintext with no authentication")
    except tls.TLSConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if config.token:
        # The agent's clients take their token from KEMU_TOKEN when given none.
        import os

        os.environ["KEMU_TOKEN"] = config.token
    try:
        run_agent(config)
    except AgentError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def cleanup(args: argparse.Namespace) -> int:
    """`--cleanup`: remove the Service rules, pod network routes and rules, and announced
    addresses of any kemu agent on this machine (network namespace), then exit."""
    from kemu.nodeagent.lbannounce import Announcer
    from kemu.nodeagent.podnetwork import CommandError, PodNetwork, PodNetworkConfig
    from kemu.nodeagent.proxy import IptablesError, Proxier, ProxyConfig, SubprocessIptables

    try:
        chains = Proxier(SubprocessIptables(), ProxyConfig(args.cluster_cidr)).cleanup()
        network = PodNetwork(PodNetworkConfig(args.cluster_cidr, args.service_cidr,
                                              args.node_name or "", args.node_ip or "")
                             ).cleanup()
        addresses = Announcer(args.node_ip or "").cleanup()
    except (IptablesError, CommandError) as e:
        print(f"error: cleanup failed: {e}", file=sys.stderr)
        return 1
    print(f"removed {len(chains)} service chains, {len(network)} pod network routes/rules, "
          f"{len(addresses)} load-balancer addresses")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="kemu agent", description="kemu node agent")
    configure(p)
    return run(p.parse_args(argv))
