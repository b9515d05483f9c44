"""A 2-node lab as the node agent will use it: namespaces on a bridge, a dockerd in each.

Checked as a user would: images copied from the host, a container running in each node's
engine, node A reaching node B over the lab bridge, the host's engine seeing none of it,
and nothing left behind after down(): namespaces, links, processes, directories, mounts,
iptables rules. Traffic stays inside the lab's namespaces and bridge.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kemu.lab import registry
from kemu.lab._run import LabError
from kemu.lab.dockerd import DATA_ROOT, RUN_ROOT, container_cgroups, mounts_under
from kemu.lab.harness import Lab
from kemu.lab.netns import short_id
from kemu.lab.registry import RegistryPaths

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

IMAGES = ["kemu/pause:3.9", "kemu/tools:1"]
LAB_NAME = f"e2e{os.getpid() % 100000}"

SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
print("listening", flush=True)
s.settimeout(20)
c, _ = s.accept()
c.sendall(b"hello from B")
c.close()
c, _ = s.accept()
c.sendall(b"hello from B")
c.close()
"""

CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
print(c.recv(100).decode())
"""


def _need(cond: bool, why: str) -> None:
    if not cond:
        pytest.skip(why)


def _our_pids() -> list[int]:
    """Processes whose command line names this lab's directories (dockerd, containerd)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f"kemu-lab-{LAB_NAME}-" in cmd or f"kemu-lab/{LAB_NAME}-registry" in cmd:
            pids.append(int(entry.name))
    return pids


def _leftovers(lab: Lab) -> list[str]:
    """Everything of this lab still on the host; empty means clean."""
    left: list[str] = []
    netns_list = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                check=True).stdout
    left += [f"netns {line}" for line in netns_list.splitlines()
             if line.startswith(f"kemu-lab-{LAB_NAME}-")]
    links = os.listdir("/sys/class/net")
    left += [f"link {name}" for name in links
             if name == lab.bridge or name.startswith(f"klv{short_id(LAB_NAME)}-")]
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"],
                            capture_output=True, text=True, check=True).stdout
    left += [f"route {r}" for r in routes.splitlines() if "198.18.250." in r]
    left += [f"pid {pid}" for pid in _our_pids()]
    for node in lab.planned_nodes():
        for d in (RUN_ROOT / node.netns, DATA_ROOT / node.netns):
            if d.exists():
                left.append(f"dir {d}")
            left += [f"mount {m}" for m in mounts_under(d)]
    if RegistryPaths(LAB_NAME).run_dir.exists():
        left.append(f"dir {RegistryPaths(LAB_NAME).run_dir}")
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True,
                           check=True).stdout
    left += [f"iptables {r}" for r in rules.splitlines()
             if lab.bridge in r or "198.18.250." in r]
    return left


@pytest.fixture
def lab() -> Iterator[Lab]:
    _need(os.geteuid() == 0, "needs root for namespaces")
    for tool in ("ip", "nsenter", "dockerd", "docker", "iptables-save"):
        _need(shutil.which(tool) is not None, f"needs {tool}")
    missing = subprocess.run(["docker", "image", "inspect", *IMAGES], capture_output=True,
                             check=False)
    _need(missing.returncode == 0, f"needs {IMAGES} on the host (kemu images build)")
    lab = Lab(LAB_NAME, nodes=2)
    try:
        yield lab
    finally:
        lab.down()


def test_two_node_lab(lab: Lab) -> None:
    t0 = time.monotonic()
    lab.up()
    up_s = time.monotonic() - t0
    a, b = lab.nodes
    assert (str(a.ip), str(b.ip)) == ("198.18.250.11", "198.18.250.12")

    # Each namespace has only the lab /24: no default route toward the host's uplink.
    for node in lab.nodes:
        routes = node.exec("ip", "-4", "route")
        assert "default" not in routes, routes
        assert "198.18.250.0/24 dev eth0" in routes

    t1 = time.monotonic()
    lab.load_images(IMAGES)
    load_s = time.monotonic() - t1
    for node in lab.nodes:
        node.docker("image", "inspect", *IMAGES)

    # A container on Docker's default bridge inside each namespace.
    ids = {}
    for node in lab.nodes:
        ids[node.netns] = node.docker("run", "-d", "--label", "io.kemu.test=lab",
                                      "kemu/tools:1", "sleep", "300").strip()
        ip = node.docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}",
                         ids[node.netns]).strip()
        assert ip.startswith("172.17."), ip
        # docker0 and Docker's NAT rules exist in the namespace, not on the host.
        assert "docker0" in node.exec("ip", "link")
        assert "MASQUERADE" in node.exec("iptables", "-t", "nat", "-S")

    # Node A reaches node B over the lab bridge: a TCP server in B, a client in A.
    server = subprocess.Popen(
        ["nsenter", f"--net={b.netns_path}", "--", sys.executable, "-c", SERVER,
         str(b.ip), "7777"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "listening"
        got = a.exec(sys.executable, "-c", CLIENT, str(b.ip), "7777")
        assert got.strip() == "hello from B"
        # The host reaches the nodes through its port on the lab (198.18.250.1).
        got = subprocess.run([sys.executable, "-c", CLIENT, str(b.ip), "7777"],
                             capture_output=True, text=True, check=True, timeout=10).stdout
        assert got.strip() == "hello from B"
    finally:
        server.kill()
        server.wait()

    # A container in node A reaches node B too (routed and masqueraded in A's namespace).
    out = a.docker("exec", ids[a.netns], "ping", "-c1", "-W2", str(b.ip))
    assert "1 packets received" in out, out

    # Isolation: the host's engine knows none of the node containers.
    host_ids = subprocess.run(["docker", "ps", "-aq", "--no-trunc"], capture_output=True,
                              text=True, check=True).stdout.split()
    assert not set(ids.values()) & set(host_ids)

    t2 = time.monotonic()
    lab.down()
    down_s = time.monotonic() - t2
    assert _leftovers(lab) == []
    print(f"\nlab up {up_s:.1f}s, load images {load_s:.1f}s, down {down_s:.1f}s")


def test_nodes_pull_from_the_lab_registry() -> None:
    """The lab's registry is every node's Docker Hub mirror: images the host pushed are
    pulled by their usual names, one nobody pushed is not, and down() stops it."""
    _need(os.geteuid() == 0 and shutil.which("docker-registry") is not None,
          "needs root and docker-registry")
    lab = Lab(LAB_NAME, nodes=2, with_registry=True)
    own = f"kemu-e2e/pause-copy:{LAB_NAME}"
    try:
        lab.up()
        assert lab.registry == "198.18.250.1:5100"
        for node in lab.nodes:
            mirrors = node.docker("info", "--format", "{{json .RegistryConfig.Mirrors}}")
            assert "http://198.18.250.1:5100/" in mirrors
        lab.pull_images(["kemu/pause:3.9", "kemu/tools:1"])
        for node in lab.nodes:
            node.docker("image", "inspect", "kemu/pause:3.9", "kemu/tools:1")

        # A user's own image, pushed once, is pulled by its plain name on every node.
        subprocess.run(["docker", "tag", "kemu/pause:3.9", own], check=True)
        registry.push([own], lab.registry)
        for node in lab.nodes:
            node.docker("pull", own)
        # The host's engine keeps no registry-named tag of it.
        tags = subprocess.run(["docker", "images", "--format", "{{.Repository}}"],
                              capture_output=True, text=True, check=True).stdout
        assert "127.0.0.1:5100/" not in tags
        # An image nobody pushed is not there to pull (and the node has no other way out).
        with pytest.raises(LabError):
            lab.nodes[0].docker("pull", f"kemu-e2e/never-pushed:{LAB_NAME}", timeout=60)
    finally:
        subprocess.run(["docker", "rmi", own], capture_output=True, check=False)
        lab.down()
    assert _leftovers(lab) == []
    assert not registry.answers("198.18.250.1:5100", timeout=0.5)


def test_up_failure_cleans_up(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dockerd that never becomes ready: up() raises and leaves nothing behind."""
    from kemu.lab import dockerd

    real_argv = dockerd.dockerd_argv

    def broken(paths: dockerd.DockerdPaths, netns_path: str,
               registry: str | None = None) -> list[str]:
        return [*real_argv(paths, netns_path, registry), "--no-such-flag"]

    monkeypatch.setattr(dockerd, "dockerd_argv", broken)
    with pytest.raises(Exception, match="exited"):
        lab.up()
    assert _leftovers(lab) == []


def test_killed_dockerd_is_cleaned_up(lab: Lab) -> None:
    """A dockerd killed with SIGKILL leaves its containerd, a running container and its
    data-root bind mount behind; down() still removes them all."""
    import signal

    lab.up()
    node = lab.nodes[0]
    assert node.dockerd is not None
    lab.load_images(["kemu/pause:3.9"])
    cid = node.docker("run", "-d", "kemu/pause:3.9").strip()
    os.kill(node.dockerd.pid, signal.SIGKILL)
    node.dockerd.proc.wait(timeout=10)
    assert mounts_under(DATA_ROOT / node.netns)  # the bind mount dockerd could not undo
    assert container_cgroups(cid)  # and the container, still running
    lab.down()
    assert _leftovers(lab) == []
    assert container_cgroups(cid) == []
