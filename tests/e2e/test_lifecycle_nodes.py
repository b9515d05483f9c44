"""`kemu up --nodes 3`: three lab nodes with their own dockerd pulling from the lab's
registry, the control plane on the host, DNS as pods; a user's image pushed with `kemu
images push` runs on a node; then `kemu status` and `kemu down`, which must leave the
machine as it was (no namespace, link, route, process or state of the cluster)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from kemu.api import manifest
from kemu.client import Client
from kemu.util.tls import ClientTLS
from tests.support import processes

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def kemu(env: dict[str, str], *args: str, timeout: float = 300
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kemu.cli.kemu_main", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def ours(name: str) -> dict[str, str]:
    """What of cluster `name` is on the machine: namespaces, links, routes, processes."""
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return {
        "netns": "\n".join(n for n in netns.splitlines() if f"kemu-lab-{name}-" in n),
        "procs": "\n".join(p for p in procs.splitlines()
                           if f"kemu-lab-{name}-" in p or f"clusters/{name}/" in p
                           or f"kemu-lab/{name}-registry" in p),
    }


def test_up_three_nodes_status_and_down(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        pytest.skip("needs root and dockerd")
    name = f"t{os.getpid() % 100000}"
    env = {**os.environ, "KEMU_HOME": str(tmp_path / "home"),
           "KEMU_CONFIG": str(tmp_path / "config")}
    ports = ("--store-port", str(processes.free_port()), "--apiserver-port",
             str(processes.free_port()), "--scheduler-port", str(processes.free_port()),
             "--controller-manager-port", str(processes.free_port()))
    own = f"kemu-e2e/greeter:{name}"
    up = kemu(env, "up", "--name", name, "--nodes", "3", *ports)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "3 Ready" in up.stdout and "dns        answering" in up.stdout
        subnet = next(w for line in up.stdout.splitlines() if line.strip().startswith("lab ")
                      for w in line.split() if w.endswith("/24"))
        api = next(line.split()[1] for line in up.stdout.splitlines()
                   if line.strip().startswith("apiserver") and "advertised" in line)
        # Over TLS with the admin's certificate that `up` wrote into the config.
        entry = yaml.safe_load((tmp_path / "config").read_text())["clusters"][name]
        tls = ClientTLS(*(Path(entry[k]) for k in ("certificate-authority",
                                                   "client-certificate", "client-key")))
        with Client(api, tls=tls) as client:
            nodes = client.list("nodes").items
            assert sorted(n.node.metadata.name for n in nodes) == [
                f"{name}-node-{i}" for i in (1, 2, 3)]
            client.create(manifest.from_dict({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                             "containers": [{"name": "web", "image": "kemu/bootcamp:v1"}]}}}}))
            client.create(manifest.from_dict({
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                "spec": {"type": "NodePort", "selector": {"app": "web"},
                         "ports": [{"port": 80, "targetPort": 8080}]}}))
            urls = kemu(env, "service", "web", "--url").stdout.split()
            assert len(urls) == 3

            def answered(url: str) -> bool:
                try:
                    with urllib.request.urlopen(url, timeout=3) as r:
                        return "Hello Kubernetes bootcamp!" in r.read().decode()
                except OSError:
                    return False
            for url in urls:  # every node's NodePort answers
                processes.wait_for(lambda u=url: answered(u), 90, f"an answer from {url}")
            # The user's own image: pushed to the lab registry, pulled by a node by name.
            subprocess.run(["docker", "tag", "kemu/bootcamp:v2", own], check=True)
            pushed = kemu(env, "images", "push", own, "--name", name)
            assert pushed.returncode == 0, pushed.stdout + pushed.stderr
            client.create(manifest.from_dict({
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "own"},
                "spec": {"containers": [{"name": "own", "image": own}]}}))
            processes.wait_for(
                lambda: client.get("pods", "own").pod.status.phase == "Running", 90,
                f"pod `own` running {own}")
            missing = kemu(env, "images", "push", "kemu-e2e/not-built:1", "--name", name)
            assert missing.returncode == 1
            assert missing.stderr.startswith("error: not in this machine's Docker engine")
        status = kemu(env, "status", "--name", name)
        assert status.returncode == 0, status.stdout
        # 4 control-plane parts, 3 agents and the registry
        assert status.stdout.count("Healthy") == 8, status.stdout
        # Each node's agent serves its metrics on the node's own address, as kemu status says.
        rows = json.loads(kemu(env, "status", "--name", name, "-o", "json").stdout)
        agent_metrics = [r["metrics"] for r in rows["components"]
                         if r["component"].startswith("agent-")]
        assert len(agent_metrics) == 3
        for url in agent_metrics:
            with urllib.request.urlopen(url, timeout=10) as scraped:
                assert "kubelet_running_pods" in scraped.read().decode()
        again = kemu(env, "up", "--name", name, "--nodes", "3", *ports)
        assert again.returncode == 0 and "already up" in again.stdout, again.stdout
    finally:
        down = kemu(env, "down", "--name", name)
        subprocess.run(["docker", "rmi", own], capture_output=True, check=False)
    assert down.returncode == 0, down.stdout + down.stderr
    assert ours(name) == {"netns": "", "procs": ""}
    # Other tests' labs may come and go meanwhile: only this cluster's subnet is checked.
    prefix = subnet.rsplit(".", 1)[0] + "."
    assert prefix not in subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    assert not (tmp_path / "home" / "clusters" / name).exists()
