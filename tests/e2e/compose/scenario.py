"""The compose deployment brought up for real, shared by the tests of each compose tool.

compose/control-plane.yml and compose/node.yml must work with Debian's docker-compose 1.29
and with Docker Compose v2 (`docker compose`, installed here by scripts/install-compose-v2.sh):
`control_plane_and_two_nodes` is the whole scenario of docs/lab.md and `etcd_profile` the
control plane on etcd, each run once per tool (test_compose_lab.py for 1.29,
test_compose_v2_lab.py for v2), each lab on its own subnet and with its own project and lab
names, so that pytest-xdist can run both tools at once.

The control plane runs with the compose tool on the host's dockerd, its apiserver published
on the lab bridge's host address (what the worker VMs would dial). Each worker is a lab
namespace with its own dockerd: `DOCKER_HOST=<node engine> docker-compose -f node.yml up`
puts the agent on that engine, and `network_mode: host` there is the node's namespace, as
on a VM. Every compose project is taken down with its volumes, and nothing of it may
remain. Traffic stays between the host's lab address, the lab namespaces and containers.

As docs/lab.md: the one-shot `pki` service makes the cluster's PKI and encryption key in a
directory of the control plane (here in tmp_path); each worker gets the CA and a node
certificate issued with `kemu certs issue` there; everything speaks TLS and every caller
has a certificate. A caller without one is refused, the apiserver authorises with
Node,RBAC (node 1 cannot change node 2's Node), and a Secret is ciphertext in the store.
Both nodes turn Ready, run one bootcamp pod each, and a NodePort Service answers on both
node IPs from the host. The one-shot `addons` service installs the cluster DNS (as kubeadm
installs CoreDNS), whose pods authenticate with their own certificate from a Secret under
RBAC: a pod on each node resolves a Service name and `kubernetes.default` through
10.96.0.10, and `up -d` again changes nothing.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import secrets
import shutil
import subprocess
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kemu.api import manifest
from kemu.client import Client
from kemu.client.errors import Forbidden, Unavailable
from kemu.lab.forward import Forwarder
from kemu.lab.harness import Lab
from kemu.util.certs import CertificateAuthority, write_pair
from kemu.util.tls import ClientTLS
from tests.support import processes
from tests.support.labcluster import wait_for

ROOT = Path(__file__).resolve().parents[3]
CONTROL_PLANE = ROOT / "compose" / "control-plane.yml"
NODE = ROOT / "compose" / "node.yml"
IMAGES = ["kemu/kemu:latest", "kemu/pause:3.9", "kemu/bootcamp:v1", "kemu/tools:1"]
COMPONENTS = ("store", "apiserver", "scheduler", "controller-manager")
PKI = "pki"  # one-shot: exits 0 once the PKI and the encryption key exist
ADDONS = "addons"  # one-shot: exits 0 once the cluster DNS is applied
DNS_OBJECTS = ("secret/kube-dns-tls", "service/kube-dns", "deployment.apps/kube-dns")


def _need_lab() -> None:
    """Skip unless this machine can run the lab: root, Docker and nsenter."""
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    for tool in ("docker", "dockerd", "nsenter"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")


def compose_v1() -> list[str]:
    """Debian's docker-compose 1.29, installed with apt-get when missing (as
    scripts/ensure-docker.sh installs its packages)."""
    _need_lab()
    if shutil.which("docker-compose") is None:
        opts = ["-y", "-qq", "--no-install-recommends"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(["apt-get", "install", *opts, "docker-compose"], env=env,
                          capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
            subprocess.run(["apt-get", "install", *opts, "docker-compose"], env=env,
                           capture_output=True)
    path = shutil.which("docker-compose")
    if path is None:
        pytest.skip("needs docker-compose (Debian package docker-compose)")
    return [path]


def compose_v2() -> list[str]:
    """Docker Compose v2, the `docker compose` CLI plugin, installed by
    scripts/install-compose-v2.sh when missing (Debian has no package of it); a skip says
    why the script could not."""
    _need_lab()
    done = subprocess.run([str(ROOT / "scripts" / "install-compose-v2.sh")],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.skip(f"needs docker compose v2, which scripts/install-compose-v2.sh could not "
                    f"install: {done.stderr.strip()}")
    return ["docker", "compose"]


#: Each tool by its pytest id, for tests that run with both.
TOOLS: dict[str, Callable[[], list[str]]] = {"v1": compose_v1, "v2": compose_v2}


@dataclass
class Project:
    """One compose project: its file, name, environment and Docker engine."""

    compose: list[str]
    file: Path
    name: str
    env: dict[str, str]
    docker_host: str = ""
    up: bool = field(default=False)

    def run(self, *args: str, timeout: float = 300,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.env}
        env.pop("DOCKER_HOST", None)
        if self.docker_host:
            env["DOCKER_HOST"] = self.docker_host
        done = subprocess.run([*self.compose, "-p", self.name, "-f", str(self.file), *args],
                              env=env, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(self.compose)} {' '.join(args)} exited "
                                 f"{done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def docker(self, *args: str) -> str:
        host = ["--host", self.docker_host] if self.docker_host else []
        return subprocess.run(["docker", *host, *args], capture_output=True, text=True,
                              check=True, timeout=60).stdout

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, volumes and networks still labelled with this project."""
        label = f"label=com.docker.compose.project={self.name}"
        return {what: self.docker(*cmd, "--filter", label, "--format", "{{.Name}}"
                                  if what != "containers" else "{{.Names}}").split()
                for what, cmd in (("containers", ("ps", "-a")), ("volumes", ("volume", "ls")),
                                  ("networks", ("network", "ls")))}

    def down(self) -> None:
        if self.up:
            self.run("down", "-v", "--remove-orphans", "--timeout", "30", check=False)
            assert self.leftovers() == {"containers": [], "volumes": [], "networks": []}
            self.up = False

    def logs(self) -> str:
        return self.run("logs", "--no-color", "--tail", "60", check=False).stdout

    def _ids(self, service: str) -> list[str]:
        return self.docker("ps", "-aq", "--filter",
                           f"label=com.docker.compose.project={self.name}", "--filter",
                           f"label=com.docker.compose.service={service}").split()

    def output(self, service: str) -> str:
        """What a service's container printed on stdout (no compose log prefixes)."""
        return "".join(self.docker("logs", i) for i in self._ids(service))

    def exited(self, service: str) -> str:
        """`exited 0` and the like for a one-shot service's container ("" before it exists);
        asked of the engine: compose v2's `ps` leaves stopped containers out."""
        ids = self._ids(service)
        if not ids:
            return ""
        return self.docker("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}",
                           *ids).strip()


def health(project: Project, service: str) -> str:
    """The health of a service's running container, asked of the engine by compose's
    labels: a poll costs one `docker` call instead of a `docker-compose ps` (Python, ~1 s)."""
    cid = project.docker("ps", "-q", "--filter",
                         f"label=com.docker.compose.project={project.name}", "--filter",
                         f"label=com.docker.compose.service={service}").strip()
    if not cid:
        return "missing"
    return project.docker("inspect", "--format", "{{.State.Health.Status}}", cid).strip()


def deployment(name: str, node: str, image: str) -> dict[str, Any]:
    labels = {"app": "web", "copy": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {
                         # kemu's scheduler has no pod anti-affinity: pin one copy per node.
                         "nodeSelector": {"kubernetes.io/hostname": node},
                         "containers": [{"name": "web", "image": image,
                                         "ports": [{"name": "http", "containerPort": 8080}]}]}}}}


# What the resolver of a pod (glibc, following its resolv.conf: search list, ndots:5) makes
# of names: the pod's nameservers, then `NAME ADDRESS` per name. busybox's nslookup would not
# do: it applies the search list only to names without a dot, so `kubernetes.default` fails
# with it on Kubernetes too.
RESOLVE = ("import socket, sys\n"
           "print(*(line.split()[1] for line in open('/etc/resolv.conf')"
           " if line.startswith('nameserver')))\n"
           "for name in sys.argv[1:]: print(name, socket.gethostbyname(name))")


def resolve(kemuctl: Callable[..., subprocess.CompletedProcess[str]], pod: str,
             names: dict[str, str]) -> str:
    """Resolve `names` in `pod` through its resolv.conf; raise with what it printed (the
    last try shows in wait_for's failure) unless it is 10.96.0.10 alone and name -> IP."""
    done = kemuctl("exec", pod, "--", "python3", "-c", RESOLVE, *names)
    want = "10.96.0.10\n" + "".join(f"{n} {ip}\n" for n, ip in names.items())
    if done.stdout != want:
        raise AssertionError(f"{pod}: {done.stdout!r} {done.stderr!r}")
    return done.stdout


SERVICE = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "web", "namespace": "default"},
           "spec": {"type": "NodePort", "selector": {"app": "web"},
                    "ports": [{"port": 80, "targetPort": "http"}]}}


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        body: bytes = resp.read()
    return body.decode()


def kemu(*args: str) -> str:
    done = subprocess.run([processes.PYTHON, "-m", "kemu.cli.kemu_main", *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def etcdctl_get(pki: Path, store: str, key: str) -> bytes:
    """The stored value of `key`, read as docs/lab.md reads it: the real etcdctl with the
    apiserver's etcd client certificate."""
    if shutil.which("etcdctl") is None:
        pytest.skip("needs etcdctl (Debian package etcd-client)")
    done = subprocess.run(
        ["etcdctl", f"--endpoints=https://{store}", f"--cacert={pki / 'ca.crt'}",
         f"--cert={pki / 'apiserver-etcd-client.crt'}",
         f"--key={pki / 'apiserver-etcd-client.key'}", "get", key, "--print-value-only"],
        capture_output=True, timeout=30, env={**os.environ, "ETCDCTL_API": "3"})
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def secret(name: str, value: bytes) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": "default"},
            "data": {"password": base64.b64encode(value).decode()}}


def control_plane_and_two_nodes(compose: list[str], tmp_path: Path, *, subnet: str,
                                tag: str) -> None:
    """The whole of docs/lab.md with the compose tool `compose`: a lab on `subnet` (a /24
    no other test uses), and `tag` (a short [a-z0-9] word) in every compose project's and
    the lab's name, so that runs with different tools at once share no name, address or
    port."""
    run_id = f"{tag}{os.getpid() % 10000}{secrets.token_hex(2)}"
    # The admin's registry is the lab's (docker-registry on the bridge, plain HTTP, trusted
    # by the nodes' engines as VMs list it in daemon.json), and images go in and out of it
    # by their registry names, as docs/lab.md does.
    lab = Lab(f"c{tag}{secrets.token_hex(2)}", nodes=2, subnet=subnet, with_registry=True)
    pki = tmp_path / "pki"  # the control plane's KEMU_PKI_DIR, made by its `pki` service
    projects: list[Project] = []
    try:
        lab.up()
        assert lab.registry is not None
        reg = lab.registry
        # This machine's engine trusts plain HTTP on loopback only: push through a
        # forwarder there, with the command docs/lab.md gives.
        with Forwarder(("127.0.0.1", 0), (str(lab.plan.gateway), 5100)) as fwd:
            pushed = subprocess.run(
                [processes.PYTHON, "-m", "kemu.cli.kemu_main", "images", "push",
                 "--registry", f"127.0.0.1:{fwd.address[1]}", *IMAGES],
                capture_output=True, text=True, timeout=300)
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        kemu_image = f"{reg}/kemu/kemu:latest"
        # The control-plane "VM" is this machine: it has the image under the registry's
        # name as if it had pulled it (its engine would not pull over plain HTTP).
        subprocess.run(["docker", "tag", "kemu/kemu:latest", kemu_image], check=True)
        host = str(lab.plan.gateway)
        api_port = processes.free_port()
        store_port = processes.free_port()
        cp = Project(compose, CONTROL_PLANE, f"kemucp{run_id}", {
            "KEMU_ADVERTISE_ADDRESS": host, "KEMU_IMAGE": kemu_image,
            "KEMU_PKI_DIR": str(pki),
            "KEMU_APISERVER_BIND": host, "KEMU_APISERVER_PORT": str(api_port),
            "KEMU_STORE_PORT": str(store_port)})
        projects.append(cp)
        cp.up = True
        cp.run("up", "-d")
        server = f"{host}:{api_port}"
        try:
            wait_for(lambda: all(health(cp, s) == "healthy" for s in COMPONENTS), 180,
                     "every control-plane container healthy", interval=2)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{cp.logs()}") from None
        assert cp.exited(PKI) == "exited 0", cp.logs()
        assert (pki / "ca.key").exists() and (pki / "encryption.yaml").exists()
        ca = pki / "ca.crt"
        admin = ClientTLS(ca, pki / "admin.crt", pki / "admin.key")

        # Nobody gets in without a certificate from the cluster's CA: the TLS handshake
        # fails (gRPC: UNAVAILABLE) for plaintext, for no client certificate, and for one
        # from another CA. Health stays reachable over TLS, as the compose checks use it.
        stranger_dir = tmp_path / "stranger"
        write_pair(stranger_dir, "mallory", CertificateAuthority.create().issue(
            "mallory", groups=["system:masters"]))
        for what, tls in (("no client certificate", ClientTLS(ca)),
                          ("another CA's certificate",
                           ClientTLS(ca, stranger_dir / "mallory.crt",
                                     stranger_dir / "mallory.key"))):
            with Client(server, tls=tls, timeout=5) as caller, pytest.raises(Unavailable):
                caller.list("nodes")
                raise AssertionError(f"{what}: let in")
        with Client(server, token="", tls=None, timeout=5) as plaintext, \
                pytest.raises(Unavailable):
            plaintext.get("namespaces", "default")
        # A certificate from the CA for a user no role names: authenticated, but RBAC
        # gives it nothing.
        kemu("certs", "issue", "jane", "--dir", str(pki))
        with Client(server, tls=ClientTLS(ca, pki / "jane.crt", pki / "jane.key"),
                    timeout=5) as jane, pytest.raises(Forbidden):
            jane.list("secrets", "kube-system")

        # The one-shot addons service waited for the apiserver, applied the cluster DNS
        # (its pods wait for nodes) and exited.
        try:
            wait_for(lambda: cp.exited(ADDONS) == "exited 0", 120, "the addons service done",
                     interval=1)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{cp.logs()}") from None
        assert cp.output(ADDONS).splitlines() == [f"{o} created" for o in DNS_OBJECTS]

        admin_flags = ["--certificate-authority", str(ca), "--client-certificate",
                       str(pki / "admin.crt"), "--client-key", str(pki / "admin.key")]

        def kemuctl(*args: str) -> subprocess.CompletedProcess[str]:
            """kemuctl with the admin's certificate, as the admin checks the cluster
            (docs/lab.md)."""
            env = {k: v for k, v in os.environ.items() if not k.startswith("KEMU_")}
            return subprocess.run([processes.PYTHON, "-m", "kemu.cli.kemuctl", "-s", server,
                                   *admin_flags, *args], capture_output=True, text=True,
                                  timeout=60, stdin=subprocess.DEVNULL,
                                  env={**env, "KEMU_CONFIG": str(tmp_path / "config")})

        # Each worker's identity: a node certificate issued on the control plane with the
        # command docs/lab.md gives, copied with the CA (never ca.key) to the worker.
        names = {}
        node_pki: dict[str, Path] = {}
        for node in lab.nodes:
            name = names[node.ip] = f"{lab.name}-node-{node.index}"
            issued = cp.run("run", "--rm", "--entrypoint", "kemu", PKI, "certs", "issue",
                            f"system:node:{name}", "--group", "system:nodes", "--san",
                            str(node.ip), "--server", "--dir", "/pki", "--out",
                            f"node-{name}")
            assert issued.stdout.strip() == (f"wrote /pki/node-{name}.crt and "
                                             f"/pki/node-{name}.key"), issued.stdout
            worker = node_pki[name] = tmp_path / f"node-{node.index}-pki"
            worker.mkdir()
            shutil.copyfile(ca, worker / "ca.crt")
            shutil.copyfile(pki / f"node-{name}.crt", worker / "node.crt")
            shutil.copyfile(pki / f"node-{name}.key", worker / "node.key")
            project = Project(compose, NODE, f"kemunode{run_id}n{node.index}", {
                "KEMU_APISERVER": server, "KEMU_NODE_IP": str(node.ip),
                "KEMU_NODE_NAME": name, "KEMU_IMAGE": kemu_image,
                "KEMU_PKI_DIR": str(worker),
                "KEMU_PAUSE_IMAGE": f"{reg}/kemu/pause:3.9",
                "KEMU_DOCKER_SOCKET": node.docker_host.removeprefix("unix://"),
                "KEMU_DATA_DIR": str(tmp_path / f"node-{node.index}"),
                "KEMU_AGENT_ARGS": "--backoff-initial 1 --backoff-max 8"},
                docker_host=node.docker_host)
            projects.append(project)
            project.up = True
            project.run("up", "-d")

        with Client(server, tls=admin, timeout=15) as api:
            def ready() -> bool:
                got = api.list("nodes").items
                return sorted(n.node.metadata.name for n in got if n.node.spec.pod_cidr and any(
                    c.type == "Ready" and c.status == "True"
                    for c in n.node.status.conditions)) == sorted(names.values())
            try:
                wait_for(ready, 120, "both compose nodes Ready with a podCIDR", interval=1)
            except AssertionError as e:
                raise AssertionError(f"{e}\n" + "\n".join(p.logs() for p in projects)) from None

            # The Node authorizer: node 1's certificate reads its own Node, but cannot
            # change node 2's.
            first, second = (names[n.ip] for n in lab.nodes)
            one = node_pki[first]
            with Client(server, tls=ClientTLS(one / "ca.crt", one / "node.crt",
                                              one / "node.key"), timeout=15) as node1:
                own = node1.get("nodes", first)
                assert own.node.metadata.name == first
                other = node1.get("nodes", second)
                other.node.metadata.labels["stolen-by"] = first
                with pytest.raises(Forbidden) as denied:
                    node1.update(other)
                assert first in str(denied.value), denied.value
            assert "stolen-by" not in api.get("nodes", second).node.metadata.labels

            # Secrets are encrypted at rest: the store holds ciphertext, not the value.
            plain = f"hunter2-{secrets.token_hex(8)}".encode()
            api.create(manifest.from_dict(secret("db", plain)))
            stored = etcdctl_get(pki, f"127.0.0.1:{store_port}",
                                  "/registry/secrets/default/db")
            assert stored.startswith(b"k8s:enc:aesgcm:v1:key1:"), stored[:40]
            assert plain not in stored and base64.b64encode(plain) not in stored
            assert api.get("secrets", "db", "default").secret.data["password"] == plain
            dns_key = (pki / "kube-dns.key").read_bytes()
            stored = etcdctl_get(pki, f"127.0.0.1:{store_port}",
                                  "/registry/secrets/kube-system/kube-dns-tls")
            assert stored.startswith(b"k8s:enc:aesgcm:v1:key1:") and dns_key not in stored

            for i, node in enumerate(lab.nodes):
                api.create(manifest.from_dict(deployment(f"web-{i}", names[node.ip],
                                                          f"{reg}/kemu/bootcamp:v1")))
            node_port = api.create(manifest.from_dict(SERVICE)).service.spec.ports[0].node_port
            assert node_port

            def placed() -> bool:
                pods = api.list("pods", "default", label_selector="app=web").items
                running = {p.pod.spec.node_name for p in pods if p.pod.status.phase == "Running"}
                return running == set(names.values())
            wait_for(placed, 180, "one running web pod on each node", interval=1)

            for node in lab.nodes:
                url = f"http://{node.ip}:{node_port}/"
                body = wait_for(functools.partial(http_get, url), 90, f"GET {url}", interval=1)
                assert "Running on: web-" in body, body

            # Cluster DNS: both kube-dns pods ready (they reached the apiserver through the
            # `kubernetes` Service with the certificate from their Secret, as the user
            # system:serviceaccount:kube-system:kube-dns that RBAC lets read services,
            # endpoints and pods), then a pod on each node resolves a Service name and
            # kubernetes.default through 10.96.0.10.
            def dns_pods_ready() -> bool:
                ep = api.get("endpoints", "kube-dns", "kube-system").endpoints
                return len({a.ip for s in ep.subsets for a in s.addresses}) == 2
            wait_for(dns_pods_ready, 180, "two ready kube-dns pods", interval=1)
            web_ip = api.get("services", "web", "default").service.spec.cluster_ip
            kubernetes_ip = api.get("services", "kubernetes", "default").service.spec.cluster_ip
            names_ips = {"web": web_ip, "kubernetes.default": kubernetes_ip}
            web_pods = {p.pod.metadata.name: p.pod.spec.node_name
                        for p in api.list("pods", "default", label_selector="app=web").items}
            assert sorted(web_pods.values()) == sorted(names.values())
            for name, node_name in web_pods.items():
                wait_for(functools.partial(resolve, kemuctl, name, names_ips), 60,
                         f"web and kubernetes.default resolved in {name} on {node_name}",
                         interval=1)

            # The check docs/lab.md gives (here without a terminal).
            check = kemuctl("run", "-i", "--tty", "--rm", "dnscheck",
                            f"--image={reg}/kemu/tools:1",
                            "--restart=Never", "--", "nslookup", "kubernetes")
            assert check.stdout.startswith("Server:\t\t10.96.0.10\n"), (check.stdout, check.stderr)
            assert f"Name:\tkubernetes.default.svc.cluster.local\nAddress: {kubernetes_ip}\n" \
                in check.stdout, (check.stdout, check.stderr)

        # Running `up -d` again re-runs the one-shots: the PKI is kept and the addons
        # service changes nothing.
        before = {f.name: f.read_bytes() for f in pki.iterdir()}
        cp.run("up", "-d")
        wait_for(lambda: cp.exited(ADDONS) == "exited 0"
                 and len(cp.output(ADDONS).splitlines()) == 2 * len(DNS_OBJECTS), 120,
                 "the addons service done again", interval=1)
        assert cp.output(ADDONS).splitlines()[len(DNS_OBJECTS):] == \
            [f"{o} unchanged" for o in DNS_OBJECTS]
        assert cp.exited(PKI) == "exited 0"
        assert {f.name: f.read_bytes() for f in pki.iterdir()} == before

        ctl = kemuctl("get", "nodes")
        assert ctl.returncode == 0, ctl.stderr
        assert all(n in ctl.stdout for n in names.values()), ctl.stdout

        # Tearing a worker down as docs/lab.md says: stop the agent, then --cleanup.
        for project in projects[1:]:
            project.run("stop", "--timeout", "30")
            done = project.run("run", "--rm", "--entrypoint", "kemu", "agent", "agent",
                               "--cleanup")
            assert "removed" in done.stdout, done.stdout + done.stderr
    finally:
        errors = []
        for project in reversed(projects):
            try:
                project.down()
            except Exception as e:  # take every other project down before failing
                errors.append(f"{project.name}: {e}")
        if lab.registry:
            subprocess.run(["docker", "rmi", f"{lab.registry}/kemu/kemu:latest"],
                           capture_output=True, check=False)
        lab.down()
        assert not errors, errors


def etcd_profile(compose: list[str], tmp_path: Path) -> None:
    """`COMPOSE_PROFILES=etcd`: kemu/etcd:3.4 (built offline by compose/etcd/build.sh) as a
    3-member cluster serving TLS with the store's certificate and requiring a client
    certificate, and the apiserver's objects land in it, Secrets encrypted."""
    build = subprocess.run([str(ROOT / "compose" / "etcd" / "build.sh")], capture_output=True,
                           text=True, timeout=300)
    if build.returncode != 0:
        pytest.skip(f"no etcd image: {build.stderr.strip()}")
    api_port = processes.free_port()
    pki = tmp_path / "pki"
    cp = Project(compose, CONTROL_PLANE, f"kemuetcd{os.getpid() % 10000}{secrets.token_hex(2)}",
                 {"KEMU_ADVERTISE_ADDRESS": "127.0.0.1", "KEMU_PKI_DIR": str(pki),
                  "KEMU_APISERVER_BIND": "127.0.0.1", "KEMU_APISERVER_PORT": str(api_port),
                  "KEMU_STORE_PORT": str(processes.free_port()), "COMPOSE_PROFILES": "etcd",
                  "KEMU_STORE": "etcd-1:2379,etcd-2:2379,etcd-3:2379"})
    try:
        cp.up = True
        cp.run("up", "-d")
        services = (*COMPONENTS, "etcd-1", "etcd-2", "etcd-3")
        try:
            wait_for(lambda: all(health(cp, s) == "healthy" for s in services), 180,
                     "the control plane and three etcd members healthy", interval=2)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{cp.logs()}") from None
        admin = ClientTLS(pki / "ca.crt", pki / "admin.crt", pki / "admin.key")
        with Client(f"127.0.0.1:{api_port}", tls=admin, timeout=15) as api:
            api.create(manifest.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                           "metadata": {"name": "on-etcd"}}))
            api.create(manifest.from_dict({**secret("db", b"hunter2-on-etcd"),
                                           "metadata": {"name": "db",
                                                        "namespace": "on-etcd"}}))
        members = cp.run("exec", "-T", "etcd-2", "etcdctl", "member", "list").stdout
        assert sorted(line.split(", ")[2] for line in members.splitlines()) == \
            ["etcd-1", "etcd-2", "etcd-3"], members
        keys = cp.run("exec", "-T", "etcd-3", "etcdctl", "get", "--prefix", "--keys-only",
                      "/registry/namespaces/on-etcd").stdout
        assert "/registry/namespaces/on-etcd" in keys, keys
        got = json.loads(cp.run("exec", "-T", "etcd-1", "etcdctl", "get", "-w", "json",
                                "/registry/secrets/on-etcd/db").stdout)
        value = base64.b64decode(got["kvs"][0]["value"])
        assert value.startswith(b"k8s:enc:aesgcm:v1:key1:") and b"hunter2" not in value
        # Without a client certificate etcd lets nobody in.
        bare = cp.run("exec", "-T", "-e", "ETCDCTL_CERT=", "-e", "ETCDCTL_KEY=", "etcd-1",
                      "etcdctl", "--dial-timeout=3s", "get", "--keys-only", "/registry",
                      check=False)
        assert bare.returncode != 0, bare.stdout
    finally:
        cp.down()
