"""`kemu up --nodes N` with N > 1: a multi-node cluster on one machine.

Each node is a network namespace on a lab bridge with its own dockerd and its own node agent
(kemu.lab), as N VMs would be; the control plane runs on the host as processes. The
apiserver listens on the host's lab address and advertises it, so pods reach it through the
`kubernetes` Service, and the cluster DNS runs as the `kube-dns` Deployment, as kubeadm
runs CoreDNS. The lab runs an image registry (Debian's docker-registry, kemu.lab.registry)
that every node's engine uses as its Docker Hub mirror: `up` pushes kemu's images into it
and every node pulls them, as VMs pull from a registry; `kemu images push` adds the user's.

State lives beside a one-node cluster's (~/.kemu/clusters/NAME): `lab.json` says how many
nodes and which subnet, so `kemu down` can remove the namespaces, the dockerds (found by
their private directories) and everything in them without any process of `up` running.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from kemu.api.nodes import is_ready
from kemu.cli import clusterdns, clusterpki
from kemu.cli.clusterpki import ClusterPKI
from kemu.cli.lifecycle import (
    Component,
    LifecycleError,
    Ports,
    _pid_alive,
    _read_pid,
    _stop_pid,
    cluster_cidr,
    control_plane_components,
    ensure_images,
    ensure_running,
    in_containers,
    lab_state,
    remove_containers,
    state_dir,
    with_metrics,
)
from kemu.client import config
from kemu.images.build import NODE_IMAGES
from kemu.lab.harness import LabNode
from kemu.util import tty
from kemu.util.tls import ClientTLS

AGENT_METRICS_PORT = 10255  # the kubelet's old read-only port, on each node's own address

LAB_SUBNETS = tuple(f"198.18.{third}.0/24" for third in range(240, 250))
"""Lab subnets for `kemu up` clusters (the RFC 2544 benchmark range, outside Docker's pools
and kemu's CIDRs; 250-254 are left to the test suite)."""


def needs_own_namespace(name: str) -> bool:
    """Whether a one-node cluster must run its node in a lab namespace: when another
    cluster's agent already programs this machine's Services and routes (it holds the
    network namespace's lock), a second agent here would run without them. A cluster that
    exists keeps the form it was made in."""
    from kemu.nodeagent.netnslock import NetnsLock

    d = state_dir(name)
    if (d / "lab.json").exists():
        return True
    if (d / "components.json").exists():
        return False
    lock = NetnsLock.acquire()
    if lock is None:
        return True
    lock.release()
    return False


def node_name(cluster: str, index: int) -> str:
    return f"{cluster}-node-{index}"


def _choose_subnet(name: str) -> str:
    """The first lab subnet no other kemu cluster and no route on this machine uses."""
    import ipaddress

    from kemu.lab.netns import routes_overlapping

    taken = set()
    for other in state_dir(name).parent.glob("*/lab.json"):
        try:
            taken.add(json.loads(other.read_text())["subnet"])
        except (OSError, ValueError, KeyError):
            continue
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    for subnet in LAB_SUBNETS:
        if subnet not in taken and not routes_overlapping(ipaddress.IPv4Network(subnet),
                                                          routes):
            return subnet
    raise LifecycleError("no free lab subnet in 198.18.240.0-198.18.249.255: run `kemu down` "
                         "on a cluster you no longer need")


def up(name: str, nodes: int, ports: Ports, control_plane: str = "containers") -> int:
    """Start (or reuse) an N-node lab cluster; print what to do next."""
    from kemu.lab.harness import Lab
    from kemu.lab.netns import exists as netns_exists

    d = state_dir(name)
    d.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    state = lab_state(d)
    subnet = str(state["subnet"]) if state else _choose_subnet(name)
    if nodes == 1 and state is None:
        print("  note       another cluster's agent programs this machine's Services and "
              "routes: this cluster's node runs in a network namespace of its own", flush=True)
    ensure_images()  # before the lab: the nodes pull them
    lab = Lab(name, nodes=nodes, subnet=subnet, with_registry=True)
    planned = lab.planned_nodes()
    launched: list[int] = []
    fresh_lab = not all(netns_exists(n.netns) for n in planned)
    try:
        if fresh_lab:
            print(f"  lab        {nodes} nodes on {subnet} ...", flush=True)
            lab.up()
            (d / "lab.json").write_text(json.dumps({"nodes": nodes, "subnet": subnet,
                                                    "registry": lab.registry}))
            print(f"  images     pushing {len(NODE_IMAGES)} images to the lab registry "
                  f"{lab.registry}; every node pulls them ...", flush=True)
            lab.pull_images(list(NODE_IMAGES))
        else:
            print(f"  lab        {nodes} nodes on {subnet} already up")
            lab.nodes = planned
            lab.ensure_registry()
        gateway = str(lab.plan.gateway)
        pki = clusterpki.ensure(d / "pki", sans=[gateway], nodes=[
            (node_name(name, i), str(n.ip)) for i, n in enumerate(planned, start=1)])
        comps = control_plane_components(name, ports, api_host=gateway, advertise=gateway,
                                         pki=pki)
        if control_plane == "containers":
            comps = in_containers(comps, name)
        comps += [_agent(name, i, n.netns_path, str(n.ip), n.docker_host, gateway,
                         ports.apiserver, pki) for i, n in enumerate(planned, start=1)]
        for comp in comps:
            ensure_running(d, comp, launched)
        api = comps[1].address
        (d / "components.json").write_text(json.dumps({c.name: c.address for c in comps}))
        (d / "metrics.json").write_text(json.dumps({c.name: c.metrics for c in comps
                                                    if c.metrics}))
        admin = pki.client("admin")
        clusterdns.install(api, tls=admin, cert_dir=pki.dns_dir)
        _wait_ready(api, [node_name(name, i) for i in range(1, nodes + 1)], planned[0],
                    tls=admin)
    except BaseException:
        for pid in reversed(launched):
            _stop_pid(pid)
        remove_containers(name)
        if fresh_lab:
            lab.down()
            (d / "lab.json").unlink(missing_ok=True)
        raise
    crt, key = pki.pair("admin")
    path = config.save_cluster(config.ClusterEntry(
        name, api, comps[0].address, certificate_authority=str(pki.ca),
        client_certificate=str(crt), client_key=str(key)))
    print(tty.paint(f"\ncluster {name!r} is up with {nodes} nodes in "
                    f"{time.monotonic() - started:.1f}s", "green", sys.stdout))
    print(f"  apiserver  {api}   (advertised to pods as the `kubernetes` Service; TLS, "
          f"client certificates in {pki.dir})")
    for i, n in enumerate(planned, start=1):
        print(f"  node       {node_name(name, i)}   {n.ip}   (network namespace {n.netns})")
    print("  dns        kube-dns pods behind 10.96.0.10")
    print(f"  registry   {lab.registry}   (the nodes' Docker Hub mirror; "
          f"kemu images push IMAGE --name {name} adds yours)")
    print(f"  config     {path}   (kemuctl uses it)")
    print(f"\nnext: kemuctl get nodes -o wide;  kemuctl create deployment web "
          f"--image=kemu/bootcamp:v1 --replicas=3;  kemu down --name {name}")
    return 0


def _agent(name: str, index: int, netns_path: str, ip: str, docker_host: str, gateway: str,
           api_port: int, pki: ClusterPKI) -> Component:
    """One node's agent, started inside the node's network namespace, serving TLS with
    its node's certificate."""
    node = node_name(name, index)
    return with_metrics(Component(
        f"agent-{index}", f"{ip}:10250",
        ("agent", *pki.agent_flags(node), "--apiserver", f"{gateway}:{api_port}",
         "--node-name", node,
         "--node-ip", ip, "--address", ip, "--docker-host", docker_host,
         "--data-dir", str(state_dir(name) / f"agent-{index}"),
         "--cluster-cidr", cluster_cidr(name)),
        prefix=("nsenter", f"--net={netns_path}", "--"), tls=pki.client("admin")),
        f"{ip}:{AGENT_METRICS_PORT}")


def _wait_ready(api: str, nodes: list[str], first: LabNode, timeout: float = 120.0, *,
                tls: ClientTLS | None = None) -> None:
    from kemu.client import Client

    deadline = time.monotonic() + timeout
    with Client(api, timeout=5, tls=tls) as client:
        while time.monotonic() < deadline:
            try:
                got = {n.node.metadata.name: n.node for n in client.list("nodes").items}
            except Exception:
                got = {}
            ok = [n for n in nodes if n in got and got[n].spec.pod_cidr
                  and is_ready(got[n])]
            if len(ok) == len(nodes):
                break
            time.sleep(0.2)
        else:
            raise LifecycleError(f"nodes not Ready within {timeout:.0f}s: "
                                 f"{', '.join(sorted(set(nodes) - set(ok)))}")
    print(f"  nodes      {len(nodes)} Ready", flush=True)
    clusterdns.wait_answering(deadline, first.netns_path)


def down(name: str) -> list[str]:
    """Stop the agents and remove the lab (namespaces, dockerds, containers); the control
    plane is stopped by the caller. Returns lines to print."""
    from kemu.lab.harness import Lab

    d = state_dir(name)
    state = lab_state(d)
    if state is None:
        return []
    lines = []
    nodes = int(str(state["nodes"]))
    for i in range(nodes, 0, -1):
        pid = _read_pid(d / f"agent-{i}.pid")
        if pid is not None and _pid_alive(pid):
            _stop_pid(pid)
            lines.append(f"  agent-{i:<4} stopped (pid {pid})")
        (d / f"agent-{i}.pid").unlink(missing_ok=True)
    Lab(name, nodes=nodes, subnet=str(state["subnet"])).down()
    (d / "lab.json").unlink(missing_ok=True)
    lines.append(f"  lab        {nodes} node namespaces, their dockerds, pods and registry "
                 "removed (its layer cache in /var/cache/kemu/registry stays, as built images do)")
    return lines
