"""`kemu up`, `kemu down`, `kemu status`: a cluster on this machine as managed processes.

`up` starts the store, the apiserver, the controller manager, the scheduler (as containers
of the kemu image, or processes), one node agent (node `NAME-node-1`, running pods on the
local dockerd and programming this machine's Service rules), and installs the cluster DNS
as pods: the `kube-dns` Deployment behind 10.96.0.10, as kubeadm installs CoreDNS. The
apiserver serves on loopback for the host's clients and on Docker's bridge address, which
pods reach through the `kubernetes` Service.

State lives in ~/.kemu/clusters/NAME/: the store's data, the agent's volumes, one log and
one pid file per component. `up` on a running cluster reuses it; `down` stops what `up`
started (by pid), removes the node's pod containers and network, and removes the state
directory; a second cluster with another --name and other ports can run beside the first.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kemu.api.nodes import is_ready
from kemu.cli import clusterpki
from kemu.cli.clusterpki import ClusterPKI
from kemu.client import config
from kemu.util import tty
from kemu.util.tls import ClientTLS, secure_channel


class LifecycleError(RuntimeError):
    """A cluster could not be started, stopped or inspected."""


@dataclass(frozen=True)
class Component:
    name: str
    address: str  # where grpc.health.v1 answers SERVING once the component is ready
    args: tuple[str, ...]
    probe: str = "grpc"  # "tcp": ready once the address accepts a connection (DNS)
    prefix: tuple[str, ...] = ()  # e.g. nsenter into a lab node's network namespace
    container: str = ""  # run as this Docker container (host network) of the kemu image
    tls: ClientTLS | None = None  # how the health probe dials a component serving TLS
    metrics: str = ""  # HOST:PORT of its Prometheus /metrics (plain HTTP), if it serves one

    def argv(self, state: Path) -> list[str]:
        """The command that runs the component in the foreground: `docker run` proxies
        SIGTERM to the container and `--rm` removes it, so a container stops like a
        process (its pid file holds the docker client's pid)."""
        if self.container:
            return ["docker", "run", "--rm", "--name", self.container, "--network", "host",
                    "--label", f"{CLUSTER_LABEL}={state.name}", "-v", f"{state}:{state}",
                    CONTROL_PLANE_IMAGE, *self.args]
        return [*self.prefix, sys.executable, "-m", "kemu.cli.kemu_main", *self.args]


@dataclass(frozen=True)
class Ports:
    """Loopback ports of one cluster; another cluster beside it needs other ones."""

    store: int = 2379
    apiserver: int = 6443
    scheduler: int = 10259
    agent: int = 10250
    controller_manager: int = 10257


def metrics_addresses(d: Path, names: Sequence[str], host: str = "127.0.0.1"
                      ) -> dict[str, str]:
    """Where each component of `names` serves /metrics: a free loopback port picked at
    the first `up` and kept in `<state>/metrics.json`, so an `up` of a running cluster
    and `kemu status` find the same ones (a second cluster gets other ports)."""
    import socket

    path = d / "metrics.json"
    try:
        known: dict[str, str] = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    for name in names:
        if name not in known:
            with socket.socket() as sock:
                sock.bind((host, 0))
                known[name] = f"{host}:{sock.getsockname()[1]}"
    path.write_text(json.dumps(known))
    return known


def with_metrics(comp: Component, address: str) -> Component:
    """`comp` serving Prometheus metrics at `address` (`--metrics-listen`)."""
    return replace(comp, metrics=address, args=(*comp.args, "--metrics-listen", address))


COMPONENTS = ("store", "apiserver", "controller-manager", "scheduler", "agent", "dns")
CONTROL_PLANE = ("store", "apiserver", "controller-manager", "scheduler")
CONTROL_PLANE_IMAGE = "kemu/kemu:latest"
CLUSTER_LABEL = "io.kemu.cluster"


def container_name(cluster: str, component: str) -> str:
    return f"kemu-{cluster}-{component}"


def ensure_images() -> None:
    """kemu's images (the control plane's, the pause image, the DNS pods' and the demo
    images the walkthrough runs) built when missing or stale (the build compares a hash
    of each image's sources, so this is quick when they are current)."""
    print("  images     kemu/kemu, kemu/pause, kemu/tools, kemu/bootcamp "
          "(built if missing or stale) ...", flush=True)
    done = subprocess.run([sys.executable, "-m", "kemu.cli.kemu_main", "images", "build"],
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise LifecycleError(f"cannot build kemu's images: "
                             f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")


def in_containers(comps: list[Component], cluster: str) -> list[Component]:
    """The control-plane components as containers of the kemu image (host network, the
    state directory mounted at the same path), the others unchanged."""
    return [replace(c, container=container_name(cluster, c.name)) if c.name in CONTROL_PLANE
            else c for c in comps]


def remove_containers(cluster: str) -> None:
    """Remove the cluster's control-plane containers (a stop that could not reach one)."""
    names = [container_name(cluster, c) for c in CONTROL_PLANE]
    with contextlib.suppress(OSError, subprocess.SubprocessError):  # no Docker: none left
        subprocess.run(["docker", "rm", "-f", *names], capture_output=True, timeout=60)


def node_name(cluster: str) -> str:
    return f"{cluster}-node-1"


def cluster_cidr(name: str) -> str:
    """The cluster's pod CIDR, chosen once: 10.244.0.0/16 for the first cluster on this
    machine, the next free /16 for each cluster beside it (all of them share one dockerd,
    whose bridge networks may not overlap)."""
    mine = state_dir(name) / "cluster-cidr"
    if mine.exists():
        return mine.read_text().strip()
    taken = {p.read_text().strip() for p in state_dir(name).parent.glob("*/cluster-cidr")}
    for second in range(244, 256):
        cidr = f"10.{second}.0.0/16"
        if cidr not in taken:
            mine.parent.mkdir(parents=True, exist_ok=True)
            mine.write_text(cidr)
            return cidr
    raise LifecycleError("no free cluster CIDR in 10.244.0.0-10.255.255.255: "
                         "run `kemu down` on a cluster you no longer need")


def state_dir(name: str) -> Path:
    return Path(os.environ.get("KEMU_HOME") or Path.home() / ".kemu") / "clusters" / name


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def tcp_open(address: str, timeout: float = 1.0) -> bool:
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def ready(comp: Component) -> bool:
    return tcp_open(comp.address) if comp.probe == "tcp" else healthy(comp.address,
                                                                        tls=comp.tls)


def healthy(address: str, timeout: float = 1.0, *, tls: ClientTLS | None = None) -> bool:
    """True when the address answers grpc.health.v1 with SERVING."""
    with (secure_channel(address, tls) if tls else grpc.insecure_channel(address)) as ch:
        try:
            resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(),
                                                       timeout=timeout)
        except grpc.RpcError:
            return False
    return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)


def control_plane_components(name: str, ports: Ports, *, api_host: str = "127.0.0.1",
                             advertise: str = "", pki: ClusterPKI | None = None
                             ) -> list[Component]:
    """Store, apiserver, controller manager and scheduler of cluster `name`. The apiserver
    listens on `api_host` and, with `advertise`, tells pods where to reach it (a lab's
    bridge address); the rest stay on loopback. With `pki` every connection is TLS and
    every component authenticates with its client certificate; without, plaintext
    (`--insecure`)."""
    d = state_dir(name)
    store = f"127.0.0.1:{ports.store}"
    api = f"{api_host}:{ports.apiserver}"
    # An advertised address that is not the one listened on (a one-node cluster's: Docker's
    # bridge, which pods reach) is listened on as well.
    also = (("--listen", f"{advertise}:{ports.apiserver}")
            if advertise and advertise != api_host else ())
    sched = f"127.0.0.1:{ports.scheduler}"
    cm = f"127.0.0.1:{ports.controller_manager}"
    advertised = ("--advertise-address", advertise) if advertise else ()
    probe = pki.client("admin") if pki else None
    metrics = metrics_addresses(d, CONTROL_PLANE)
    return [with_metrics(c, metrics[c.name]) for c in [
        Component("store", store, ("store", "--listen", store, "--data-dir", str(d / "store"),
                                   *(pki.store_flags() if pki else ("--insecure",))),
                  tls=probe),
        Component("apiserver", api, ("apiserver", "--listen", api, *also, "--store", store,
                                     *(pki.apiserver_flags() if pki else ("--insecure",)),
                                     *advertised), tls=probe),
        # One of each and no supervisor to restart them: without leader election they
        # ride out an apiserver restart instead of exiting as a leader that lost its Lease.
        Component("controller-manager", cm, ("controller-manager", "--apiserver", api,
                                             "--health-listen", cm,
                                             "--cluster-cidr", cluster_cidr(name),
                                             "--leader-elect=false",
                                             *(pki.client_flags("controller-manager")
                                               if pki else ()))),
        Component("scheduler", sched, ("scheduler", "--apiserver", api,
                                       "--health-listen", sched, "--leader-elect=false",
                                       *(pki.client_flags("scheduler") if pki else ()))),
    ]]


def docker_bridge_gateway() -> str:
    """The host's address on Docker's default bridge (docker0, usually 172.17.0.1): an
    address of this machine that every container reaches and nothing outside it does, so
    pods reach a one-node cluster's apiserver there, through the `kubernetes` Service."""
    try:
        import docker  # type: ignore[import-untyped]

        bridge = docker.from_env(timeout=10).networks.get("bridge")
        for cfg in bridge.attrs.get("IPAM", {}).get("Config") or []:
            if cfg.get("Gateway"):
                return str(cfg["Gateway"])
    except Exception as e:
        raise LifecycleError(f"cannot read Docker's default bridge (pods reach the apiserver "
                             f"there): {e}") from None
    raise LifecycleError("Docker's default bridge has no gateway address (is dockerd "
                         "running with --bridge=none?); pods reach the apiserver there")


def cluster_pki(name: str, *, sans: Sequence[str] = ()) -> ClusterPKI:
    """The one-node cluster's PKI in its state directory, made on first use."""
    return clusterpki.ensure(state_dir(name) / "pki", sans=sans,
                             nodes=[(node_name(name), "127.0.0.1")])


def _components(name: str, ports: Ports) -> list[Component]:
    """A one-node cluster on this machine: the control plane and the host's agent, all
    over TLS with client certificates. The apiserver serves on loopback for the host and
    on Docker's bridge for pods."""
    d = state_dir(name)
    api = f"127.0.0.1:{ports.apiserver}"
    agent = f"127.0.0.1:{ports.agent}"
    gateway = docker_bridge_gateway()
    pki = cluster_pki(name, sans=[gateway])
    return [
        *control_plane_components(name, ports, advertise=gateway, pki=pki),
        with_metrics(Component("agent", agent, ("agent", *pki.agent_flags(node_name(name)),
                                   "--apiserver", api, "--node-name", node_name(name),
                                   "--node-ip", "127.0.0.1", "--address", "127.0.0.1",
                                   "--port", str(ports.agent), "--data-dir", str(d / "agent"),
                                   "--cluster-cidr", cluster_cidr(name),
                                   "--labels", "node-role.kubernetes.io/control-plane="),
                  tls=pki.client("admin")), metrics_addresses(d, ["agent"])["agent"]),
    ]


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _start(d: Path, comp: Component, launched: list[int], deadline_s: float = 60.0) -> int:
    """Start one component and wait for its health; its pid goes into `launched` at once,
    so a failure later can stop it."""
    log_path = d / "logs" / f"{comp.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            comp.argv(d),
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    (d / f"{comp.name}.pid").write_text(str(proc.pid))
    launched.append(proc.pid)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LifecycleError(f"{comp.name} exited with code {proc.returncode}; "
                                 f"log {log_path}:\n{_tail(log_path)}")
        if ready(comp):
            return proc.pid
        time.sleep(0.1)
    raise LifecycleError(f"{comp.name} did not become healthy at {comp.address} within "
                         f"{deadline_s:.0f}s; log {log_path}:\n{_tail(log_path)}")


def ensure_running(d: Path, comp: Component, launched: list[int]) -> None:
    """Start `comp` unless it already runs and answers (`up` on a running cluster reuses
    it); one that runs but does not answer is an error rather than a second copy."""
    pid = _read_pid(d / f"{comp.name}.pid")
    if pid is not None and _pid_alive(pid) and ready(comp):
        print(f"  {comp.name:<10} already running (pid {pid}) at {comp.address}")
        return
    if pid is not None and _pid_alive(pid):
        raise LifecycleError(f"{comp.name} (pid {pid}) is running but not healthy at "
                             f"{comp.address}; run `kemu down --name {d.name}` first")
    print(f"  {comp.name:<10} starting at {comp.address} ...", flush=True)
    pid = _start(d, comp, launched)
    print(f"  {comp.name:<10} ready (pid {pid})", flush=True)


def up(name: str, *, ports: Ports | None = None, foreground: bool = False,
       control_plane: str = "containers") -> int:
    d = state_dir(name)
    d.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    comps = _components(name, ports or Ports())
    ensure_images()
    if control_plane == "containers":
        comps = in_containers(comps, name)
    launched: list[int] = []
    try:
        for comp in comps:
            ensure_running(d, comp, launched)
        from kemu.cli import clusterdns

        api = comps[1].address
        pki = cluster_pki(name)
        admin = pki.client("admin")
        _wait_node_ready(api, node_name(name), tls=admin)
        (d / "components.json").write_text(json.dumps({c.name: c.address for c in comps}))
        clusterdns.install(api, tls=admin, cert_dir=pki.dns_dir)
        clusterdns.wait_answering(time.monotonic() + 90)
    except BaseException:
        # A half-started cluster is worse than none: stop what this call started (as kind
        # deletes a cluster whose creation failed); the logs stay for reading.
        for pid in reversed(launched):
            _stop_pid(pid)
        # Quietly: the error being raised is the one line the user must see (Docker itself
        # may be what is down).
        _remove_node_containers(node_name(name), quiet=True)
        if control_plane == "containers":
            remove_containers(name)
        raise
    crt, key = pki.pair("admin")
    path = config.save_cluster(config.ClusterEntry(
        name, api, comps[0].address, certificate_authority=str(pki.ca),
        client_certificate=str(crt), client_key=str(key)))
    print(tty.paint(f"\ncluster {name!r} is up in {time.monotonic() - started:.1f}s", "green",
                    sys.stdout))
    print(f"  apiserver  {api}   (kemu.v1 gRPC over TLS; client certificates in {pki.dir})")
    etcd_crt, etcd_key = pki.pair("apiserver-etcd-client")
    print(f"  store      {comps[0].address}   (etcd v3 API: "
          f"ETCDCTL_API=3 etcdctl --endpoints=https://{comps[0].address} --cacert {pki.ca} "
          f"--cert {etcd_crt} --key {etcd_key} get --prefix /registry)")
    print(f"  node       {node_name(name)}   (pods run on the local dockerd)")
    print("  dns        kube-dns pods behind 10.96.0.10   "
          "(dig @10.96.0.10 kubernetes.default.svc.cluster.local)")
    print(f"  config     {path}   (kemuctl uses it)")
    print(f"  logs       {d / 'logs'}")
    print("\nnext: kemuctl get nodes;  kemuctl run hello --image kemu/bootcamp:v1;  "
          f"kemuctl logs hello;  kemu down --name {name}")
    if foreground:
        try:
            while all(_pid_alive(_read_pid(d / f"{c.name}.pid") or -1) for c in comps):
                time.sleep(1)
            print("a component exited; see the logs", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return down(name, keep_data=True)
    return 0


def _stop_pid(pid: int, grace: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def down(name: str, *, keep_data: bool = False) -> int:
    d = state_dir(name)
    if not d.exists():
        print(f"no cluster named {name!r}")
        return 0
    from kemu.cli import labup

    for line in labup.down(name):  # a multi-node cluster's agents and lab first
        print(line)
    for comp in reversed(COMPONENTS):
        pid = _read_pid(d / f"{comp}.pid")
        if pid is not None and _pid_alive(pid):
            _stop_pid(pid)
            print(f"  {comp:<10} stopped (pid {pid})")
        (d / f"{comp}.pid").unlink(missing_ok=True)
    remove_containers(name)
    removed = _remove_node_containers(node_name(name))
    if removed:
        print(f"  pods       removed {removed} container(s) of {node_name(name)}")
    if not keep_data:
        shutil.rmtree(d, ignore_errors=True)
        config.remove_cluster(name)
    print(f"cluster {name!r} is down" + (" (data kept)" if keep_data else ""))
    return 0


def lab_state(d: Path) -> dict[str, object] | None:
    """A lab cluster's lab.json (nodes, subnet, registry); None for a one-node cluster."""
    with contextlib.suppress(OSError, ValueError):
        lab: dict[str, object] = json.loads((d / "lab.json").read_text())
        return lab
    return None


def summary(name: str) -> dict[str, object]:
    """What `kemu up -o json` prints: the cluster's addresses, nodes and config file, read
    from its state directory (so it is the same for a new and a reused cluster)."""
    d = state_dir(name)
    addresses: dict[str, str] = json.loads((d / "components.json").read_text())
    lab = lab_state(d) or {}
    count = int(str(lab.get("nodes", 1)))
    nodes = [f"{name}-node-{i}" for i in range(1, count + 1)] if lab else [node_name(name)]
    return {"name": name, "apiserver": addresses.get("apiserver", ""),
            "store": addresses.get("store", ""), "nodes": nodes,
            "dns": addresses.get("dns", "10.96.0.10:53 (kube-dns pods)"),
            "registry": str(lab.get("registry") or ""),
            "config": str(config.config_path()), "components": addresses}


def status_rows(name: str) -> list[dict[str, str]]:
    """One row per component: name, pid, address and Healthy/Unhealthy/Stopped."""
    d = state_dir(name)
    try:
        addresses: dict[str, str] = json.loads((d / "components.json").read_text())
    except (OSError, ValueError):
        addresses = {}
    try:
        metrics: dict[str, str] = json.loads((d / "metrics.json").read_text())
    except (OSError, ValueError):
        metrics = {}
    # The store, apiserver and agents serve TLS to the admin's certificate.
    pki = ClusterPKI(d / "pki") if (d / "pki" / "ca.crt").exists() else None
    rows = []
    for comp in list(addresses) or COMPONENTS:
        pid = _read_pid(d / f"{comp}.pid")
        alive = pid is not None and _pid_alive(pid)
        probe = "tcp" if comp == "dns" else "grpc"
        tls = pki.client("admin") if pki and (comp in ("store", "apiserver")
                                             or comp.startswith("agent")) else None
        ok = alive and bool(addresses.get(comp)) and ready(Component(comp, addresses[comp], (),
                                                                     probe, tls=tls))
        rows.append({"component": comp, "pid": str(pid or "-"),
                     "address": addresses.get(comp) or "-",
                     "status": "Healthy" if ok else ("Unhealthy" if alive else "Stopped"),
                     "metrics": f"http://{metrics[comp]}/metrics" if comp in metrics
                     else "-"})
    lab_registry = (lab_state(d) or {}).get("registry")
    if lab_registry:
        from kemu.lab import registry

        pid = _read_pid(registry.RegistryPaths(name).pidfile)
        alive = pid is not None and _pid_alive(pid)
        ok = alive and registry.answers(str(lab_registry))
        rows.append({"component": "registry", "pid": str(pid or "-"),
                     "address": str(lab_registry),
                     "status": "Healthy" if ok else ("Unhealthy" if alive else "Stopped"),
                     "metrics": "-"})
    return rows


def status(name: str, output: str = "") -> int:
    """The components table (or JSON); exit 1 unless every component is healthy."""
    if not state_dir(name).exists():
        print(f"no cluster named {name!r}")
        return 1
    rows = status_rows(name)
    if output == "json":
        print(json.dumps({"name": name, "components": rows}, indent=2))
    else:
        print(f"{'COMPONENT':<20}{'PID':<9}{'ADDRESS':<22}{'STATUS':<11}METRICS")
        for r in rows:
            status_cell = tty.health(r["status"], sys.stdout)
            pad = " " * max(1, 11 - len(r["status"]))  # the colour codes have no width
            print(f"{r['component']:<20}{r['pid']:<9}{r['address']:<22}"
                  f"{status_cell}{pad}{r['metrics']}")
    return 0 if all(r["status"] == "Healthy" for r in rows) else 1


def _wait_node_ready(api: str, node: str, timeout: float = 60.0, *,
                     tls: ClientTLS | None = None) -> None:
    """Wait until the node is Ready and its pod network has the node's podCIDR, so the
    first pod already gets an address from the cluster CIDR."""
    from kemu.client import Client

    deadline = time.monotonic() + timeout
    with Client(api, timeout=5, tls=tls) as client:
        while time.monotonic() < deadline:
            try:
                got = client.get("nodes", node).node
                cidr = got.spec.pod_cidr
                if is_ready(got) and cidr and _network_subnet(node) == cidr:
                    print(f"  node       {node} Ready, podCIDR {got.spec.pod_cidr}", flush=True)
                    return
            except Exception:  # not registered yet
                pass
            time.sleep(0.2)
    raise LifecycleError(f"node {node} did not become Ready within {timeout:.0f}s; "
                         f"see {state_dir(node.rsplit('-node-', 1)[0]) / 'logs' / 'agent.log'}")


def _network_subnet(node: str) -> str:
    """The subnet of the agent's pod network, once the agent has moved it to the podCIDR."""
    try:
        import docker  # type: ignore[import-untyped]

        nets = docker.from_env(timeout=10).networks.list(names=[f"kemu-{node}"])
        configs = nets[0].attrs.get("IPAM", {}).get("Config") or [] if nets else []
        return str(configs[0].get("Subnet", "")) if configs else ""
    except Exception:
        return ""


def _remove_node_containers(node: str, *, quiet: bool = False) -> int:
    """The agent leaves pods running when it stops (as the kubelet does); `down` must not."""
    try:
        import docker  # type: ignore[import-untyped]

        engine = docker.from_env(timeout=30)
        containers = engine.containers.list(all=True, filters={"label": f"io.kemu.node={node}"})
        for c in containers:
            c.remove(force=True)
        for net in engine.networks.list(names=[f"kemu-{node}"]):
            net.remove()
        return len(containers)
    except Exception as e:  # Docker gone: nothing of ours can be running on it
        if not quiet:
            print(f"  pods       could not clean up containers of {node}: {e}",
                  file=sys.stderr)
        return 0
