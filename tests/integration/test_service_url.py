"""`kemu service NAME [--url]` against a real store + apiserver: the URL of a NodePort
Service on each Ready node's InternalIP with the allocated nodePort, a LoadBalancer's
ingress IP, the table without --url, and the refusals (ClusterIP only, unknown service)
as one stderr line with exit 1."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from kemu.api import manifest
from kemu.cli import kemu_main
from kemu.client import Client
from tests.conftest import Cluster

pytestmark = pytest.mark.integration


def node(name: str, ip: str, ready: str) -> Any:
    return manifest.from_dict({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": ready}],
                   "addresses": [{"type": "InternalIP", "address": ip},
                                 {"type": "Hostname", "address": name}]}})


def service(name: str, svc_type: str, ports: list[dict[str, Any]]) -> Any:
    return manifest.from_dict({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": svc_type, "selector": {"app": name}, "ports": ports}})


@pytest.fixture(scope="module")
def api(cluster: Cluster) -> Iterator[Client]:
    """Two nodes, one Ready on 127.0.0.1 and one NotReady (its IP must never be printed),
    and the services the tests read."""
    with Client(cluster.server) as client:
        client.create(node("ready-node", "127.0.0.1", "True"))
        client.create(node("down-node", "127.0.0.9", "False"))
        client.create(service("web", "NodePort", [{"port": 80, "targetPort": 8080}]))
        client.create(service("inside", "ClusterIP", [{"port": 80}]))
        lb = client.create(service("lb", "LoadBalancer", [{"name": "http", "port": 80}]))
        lb.service.status.load_balancer.ingress.add(ip="192.0.2.10")
        client.update_status(lb)
        yield client


def kemu(cluster: Cluster, capsys: pytest.CaptureFixture[str], *args: str
         ) -> tuple[int, str, str]:
    code = kemu_main.main(["service", *args, "--server", cluster.server])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def node_port(api: Client, name: str) -> int:
    return int(api.get("services", name, "default").service.spec.ports[0].node_port)


def test_url_of_a_node_port_service(cluster: Cluster, api: Client,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    port = node_port(api, "web")
    assert 30000 <= port <= 32767
    assert kemu(cluster, capsys, "web", "--url") == (0, f"http://127.0.0.1:{port}\n", "")


def test_load_balancer_adds_its_ingress_ip(cluster: Cluster, api: Client,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    port = node_port(api, "lb")
    assert kemu(cluster, capsys, "lb", "-n", "default", "--url") == (
        0, f"http://127.0.0.1:{port}\nhttp://192.0.2.10:80\n", "")


def test_table_without_url(cluster: Cluster, api: Client,
                           capsys: pytest.CaptureFixture[str]) -> None:
    port = node_port(api, "web")
    code, out, err = kemu(cluster, capsys, "web")
    lines = out.splitlines()
    assert (code, err, len(lines)) == (0, "", 5)
    assert lines[1].split("|")[1:-1] == [" NAMESPACE ", " NAME ", " TARGET PORT ",
                                         f" {'URL':<{len(f'http://127.0.0.1:{port}')}} "]
    assert [c.strip() for c in lines[3].split("|")[1:-1]] == [
        "default", "web", "8080", f"http://127.0.0.1:{port}"]


@pytest.mark.parametrize(("args", "error"), [
    pytest.param(("inside", "--url"), "service default/inside has no node port: expose it "
                                      "with --type=NodePort or LoadBalancer", id="cluster-ip"),
    pytest.param(("x", "--url"), 'service "x" not found in namespace "default"', id="unknown"),
    pytest.param(("web", "-n", "other"), 'service "web" not found in namespace "other"',
                 id="other-namespace"),
])
def test_refusals_are_one_line(cluster: Cluster, api: Client, args: tuple[str, ...],
                               error: str) -> None:
    done = subprocess.run([sys.executable, "-m", "kemu.cli.kemu_main", "service", *args,
                           "--server", cluster.server], capture_output=True, text=True,
                          timeout=60, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", error + "\n")


def test_server_from_kemu_server(cluster: Cluster, api: Client,
                                 monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KEMU_SERVER", cluster.server)
    port = node_port(api, "web")
    assert kemu_main.main(["service", "web", "--url"]) == 0
    assert capsys.readouterr().out == f"http://127.0.0.1:{port}\n"
