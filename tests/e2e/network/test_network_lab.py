"""Cluster networking on a 2-node lab: pod network, Services through iptables, cluster DNS.

Each node is a network namespace with its own dockerd and its own kemu agent (as a VM
would be); the control plane runs on the host and is reached over the lab bridge. The
checks are the ones a user makes with kubectl: `exec` into a pod and `wget`, `nslookup`,
`ping`; `dig` from the host; `curl` to a NodePort or a LoadBalancer address. Traffic goes
only between the lab's namespaces and the host's lab address. The module's lab, with every
namespace, rule, route and process in it, is removed at the end.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from kemu.api import manifest
from kemu.cli import addons
from kemu.client import Client
from kemu.client.errors import NotFound
from tests.support import processes
from tests.support.labcluster import LabCluster, lab_cluster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SUBNET = "198.18.251.0/24"
LB_POOL = "198.18.251.200-198.18.251.209"
IMAGES = ["kemu/pause:3.9", "kemu/tools:1", "kemu/bootcamp:v1", "kemu/kemu:latest"]
APP = "app-service"
PEER_SERVER = ("import socket\n"
               "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
               "s.bind(('0.0.0.0', 9000)); s.listen(16)\n"
               "while True:\n"
               "    c, peer = s.accept(); c.sendall(peer[0].encode() + b'\\n'); c.close()\n")


def _need() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    for tool in ("docker", "dockerd", "nsenter", "iptables-save", "dig"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")


@pytest.fixture(scope="module")
def cl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    _need()
    tmp = tmp_path_factory.mktemp("netlab")
    with lab_cluster(tmp, nodes=2, subnet=SUBNET, images=IMAGES,
                     controller_args=("--controllers", "*",
                                      "--load-balancer-pool", LB_POOL)) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def api(cl: LabCluster) -> Iterator[Client]:
    with cl.client() as c:
        yield c


def kemuctl(cl: LabCluster, *args: str, timeout: float = 120, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
    return cl.kemuctl(*args, timeout=timeout, check=check)


def sh(cl: LabCluster, pod: str, script: str, *, ns: str = "default", timeout: float = 60,
       check: bool = True) -> subprocess.CompletedProcess[str]:
    """`kemuctl exec POD -- sh -c SCRIPT`, as a user would run it."""
    return kemuctl(cl, "exec", "-n", ns, pod, "--", "sh", "-c", script, timeout=timeout,
                   check=check)


def create(api: Client, doc: dict[str, Any]) -> Any:
    return api.create(manifest.from_dict(doc))


def pod_doc(name: str, node: str, *, image: str = "kemu/tools:1", ns: str = "default",
            labels: dict[str, str] | None = None, command: list[str] | None = None,
            **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": image,
                                 "imagePullPolicy": "IfNotPresent"}
    if command:
        container["command"] = command
    container.update(spec.pop("container", {}))
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [container], **spec}}


def running_ip(api: Client, name: str, ns: str = "default", timeout: float = 90) -> str:
    def ready() -> str | None:
        p = api.get("pods", name, ns).pod
        ok = p.status.phase == "Running" and any(
            c.type == "Ready" and c.status == "True" for c in p.status.conditions)
        return p.status.pod_ip if ok and p.status.pod_ip else None
    return str(wait_for(ready, timeout, f"pod {ns}/{name} Running and Ready"))


def service_doc(name: str, selector: dict[str, str], *, port: int = 80, target: Any = 8080,
                type_: str = "ClusterIP", ns: str = "default", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"type": type_, "selector": selector,
                     "ports": [{"name": "http", "port": port, "targetPort": target}], **spec}}


def endpoint_ips(api: Client, name: str, ns: str = "default") -> set[str]:
    try:
        ep = api.get("endpoints", name, ns).endpoints
    except NotFound:
        return set()
    return {a.ip for s in ep.subsets for a in s.addresses}


def node_names(cl: LabCluster) -> list[str]:
    return [cl.node_name(n) for n in cl.lab.nodes]


@pytest.fixture(scope="module")
def app(cl: LabCluster, api: Client) -> dict[str, Any]:
    """Three bootcamp replicas over both nodes behind `app-service`, and a tools pod on
    each node to test from."""
    a, b = node_names(cl)
    for i, node in enumerate((a, b, a)):
        create(api, pod_doc(f"app-{i}", node, image="kemu/bootcamp:v1",
                            labels={"app": "bootcamp"},
                            container={"ports": [{"name": "http", "containerPort": 8080}],
                                       "readinessProbe": {"httpGet": {"path": "/",
                                                                      "port": 8080},
                                                          "periodSeconds": 1}}))
    for node, name in ((a, "client-a"), (b, "client-b")):
        create(api, pod_doc(name, node, command=["sleep", "3600"]))
    svc = create(api, service_doc(APP, {"app": "bootcamp"}, target="http")).service
    ips = {f"app-{i}": running_ip(api, f"app-{i}") for i in range(3)}
    for name in ("client-a", "client-b"):
        running_ip(api, name)
    wait_for(lambda: endpoint_ips(api, APP) == set(ips.values()), 30,
             "app-service endpoints = the three replicas")
    return {"cluster_ip": svc.spec.cluster_ip, "ips": ips}


def wget(cl: LabCluster, pod: str, url: str, *, count: int = 1) -> list[str]:
    """`count` GETs from inside `pod`; each answer's `Running On` host."""
    out = sh(cl, pod, f"for i in $(seq {count}); do wget -qO- -T 3 {url}; echo; done",
             timeout=30 + count).stdout
    return [line.split("Running on: ")[1].split(" |")[0]
            for line in out.splitlines() if "Running on: " in line]


# --- pod network ----------------------------------------------------------------------


def test_pods_on_different_nodes_reach_each_other_keeping_the_source_ip(
        cl: LabCluster, api: Client, app: dict[str, Any]) -> None:
    a, b = node_names(cl)
    create(api, pod_doc("peer-b", b, image="kemu/kemu:latest",
                        command=["python3", "-c", PEER_SERVER]))
    server_ip = running_ip(api, "peer-b")
    client_ip = running_ip(api, "client-a")
    assert api.get("pods", "client-a", "default").pod.spec.node_name == a
    ping = sh(cl, "client-a", f"ping -c 2 -W 3 {server_ip}").stdout
    assert "2 packets received" in ping
    # The server sees the client pod's own IP: no NAT between pods, as in Kubernetes.
    seen = wait_for(lambda: sh(cl, "client-a", f"nc -w 3 {server_ip} 9000").stdout.strip(),
                    20, "an answer from peer-b")
    assert seen == client_ip


# --- Services ---------------------------------------------------------------------------


def test_cluster_ip_from_pods_on_both_nodes_reaches_every_replica(
        cl: LabCluster, app: dict[str, Any]) -> None:
    url = f"http://{app['cluster_ip']}/"
    for client in ("client-a", "client-b"):
        hosts = wget(cl, client, url, count=60)
        assert len(hosts) == 60
        counts = collections.Counter(hosts)
        # Random spreading over 3 endpoints: each gets some of 60 requests (a miss has
        # probability 3 * (2/3)^60, about 1e-10).
        assert set(counts) == set(app["ips"]), counts


def test_service_name_resolves_through_cluster_dns_pods(cl: LabCluster, api: Client,
                                                         app: dict[str, Any]) -> None:
    for doc in (addons.dns_service(), addons.dns_deployment("kemu/kemu:latest")):
        create(api, doc)
    wait_for(lambda: len(endpoint_ips(api, "kube-dns", "kube-system")) == 2, 120,
             "two ready kube-dns pods")
    # Pods created from now on get nameserver 10.96.0.10 (the kube-dns Service existed).
    a, b = node_names(cl)
    create(api, pod_doc("dns-client", b, command=["sleep", "3600"]))
    create(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    create(api, pod_doc("dns-client", a, ns="other", command=["sleep", "3600"]))
    running_ip(api, "dns-client")
    running_ip(api, "dns-client", "other")
    resolv = sh(cl, "dns-client", "cat /etc/resolv.conf").stdout
    assert "nameserver 10.96.0.10" in resolv
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert "ndots:5" in resolv
    # Services that existed when the pod started are in its environment, as in Kubernetes.
    env = sh(cl, "dns-client", "env").stdout
    assert f"APP_SERVICE_SERVICE_HOST={app['cluster_ip']}" in env
    assert "APP_SERVICE_SERVICE_PORT=80" in env and "APP_SERVICE_SERVICE_PORT_HTTP=80" in env
    assert f"APP_SERVICE_PORT=tcp://{app['cluster_ip']}:80" in env
    assert "KUBERNETES_SERVICE_HOST=10.96.0.1" in env
    # busybox's nslookup tries every search domain and exits 1 when any of them is
    # NXDOMAIN (as it does on Kubernetes), so the answer is what is checked.
    out = sh(cl, "dns-client", f"nslookup {APP}", check=False).stdout
    assert f"Name:\t{APP}.default.svc.cluster.local\nAddress: {app['cluster_ip']}" in out, out
    out = sh(cl, "dns-client", f"nslookup {APP}.default.svc.cluster.local", ns="other",
             check=False).stdout
    assert f"Address: {app['cluster_ip']}" in out, out
    # A short name resolves only in its own namespace.
    miss = sh(cl, "dns-client", f"nslookup {APP}", ns="other", check=False)
    assert miss.returncode != 0 or app["cluster_ip"] not in miss.stdout
    # And the name works end to end.
    assert wget(cl, "dns-client", f"http://{APP}/", count=3)
    # The DNS pods' Prometheus metrics on 9153, as a Prometheus in the cluster scrapes
    # CoreDNS: through the kube-dns Service's metrics port, and from each pod the queries
    # it answered above, by rcode (the Service spread them over both pods).
    via_service = sh(cl, "dns-client", "wget -qO- -T 5 "
                     "http://kube-dns.kube-system.svc.cluster.local:9153/metrics").stdout
    assert "coredns_dns_requests_total{" in via_service, via_service
    scraped = "".join(sh(cl, "dns-client", f"wget -qO- -T 5 http://{ip}:9153/metrics").stdout
                      for ip in endpoint_ips(api, "kube-dns", "kube-system"))
    assert 'rcode="NOERROR"' in scraped and 'rcode="NXDOMAIN"' in scraped, scraped
    assert "coredns_dns_request_duration_seconds_bucket{" in scraped, scraped


def test_dig_srv_and_ptr_against_an_embedded_dns_server(cl: LabCluster,
                                                        app: dict[str, Any]) -> None:
    port = processes.free_port()
    dns = processes.Proc("dns", [sys.executable, "-m", "kemu.cli.kemu_main", "dns",
                                 "--apiserver", cl.apiserver, "--listen", f"127.0.0.1:{port}"],
                         cl.tmp / "dns-embedded.log", f"127.0.0.1:{port}")
    try:
        dns.start().wait_ready(timeout=30, check="tcp")

        def dig(*q: str) -> str:
            return subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+short", "+tries=1",
                                   "+time=2", *q], capture_output=True, text=True,
                                  timeout=10).stdout
        assert dig(f"{APP}.default.svc.cluster.local").split() == [app["cluster_ip"]]
        srv = dig("SRV", f"_http._tcp.{APP}.default.svc.cluster.local")
        assert f"80 {APP}.default.svc.cluster.local." in srv, srv
        ptr = dig("-x", app["cluster_ip"])
        assert ptr.strip() == f"{APP}.default.svc.cluster.local.", ptr
        pod_ip = app["ips"]["app-0"]
        assert dig("-x", pod_ip).strip().endswith(".cluster.local.")
    finally:
        dns.stop()


def test_node_port_answers_on_every_node_ip_from_the_host(cl: LabCluster, api: Client,
                                                          app: dict[str, Any]) -> None:
    svc = create(api, service_doc("app-np", {"app": "bootcamp"}, target="http",
                                  type_="NodePort")).service
    node_port = svc.spec.ports[0].node_port
    assert 30000 <= node_port <= 32767
    for node in cl.lab.nodes:
        url = f"http://{node.ip}:{node_port}/"

        def get(url: str = url) -> str:
            with urllib.request.urlopen(url, timeout=3) as r:
                return str(r.read().decode())
        assert "Hello Kubernetes bootcamp!" in wait_for(get, 20, f"NodePort {url}")
    urls = kemuctl(cl, "get", "svc", "app-np").stdout
    assert f"80:{node_port}/TCP" in urls


def test_load_balancer_gets_a_pool_address_reachable_from_the_host(
        cl: LabCluster, api: Client, app: dict[str, Any]) -> None:
    create(api, service_doc("app-lb", {"app": "bootcamp"}, target="http",
                            type_="LoadBalancer"))

    def address() -> str | None:
        ingress = api.get("services", "app-lb", "default").service.status.load_balancer.ingress
        return ingress[0].ip if ingress else None
    ip = wait_for(address, 30, "status.loadBalancer.ingress")
    assert ip.startswith("198.18.251.20")

    def get() -> str:
        with urllib.request.urlopen(f"http://{ip}/", timeout=3) as r:
            return str(r.read().decode())
    assert "Hello Kubernetes bootcamp!" in wait_for(get, 30, f"the LB address {ip}")
    line = kemuctl(cl, "get", "svc", "app-lb").stdout.splitlines()[1]
    assert ip in line and "LoadBalancer" in line


def test_external_ip_is_served_on_every_node(cl: LabCluster, api: Client,
                                            app: dict[str, Any]) -> None:
    """Traffic for a Service's externalIP is DNATed by whichever node it reaches (routing
    the address to a node is the admin's part, as in Kubernetes); pods test it here."""
    create(api, service_doc("app-ext", {"app": "bootcamp"}, target="http",
                            externalIPs=["198.18.251.250"]))
    for client in ("client-a", "client-b"):
        hosts = wait_for(lambda c=client: wget(cl, c, "http://198.18.251.250/"), 20,
                         f"the externalIP from {client}")
        assert hosts[0] in app["ips"]


def test_selectorless_service_keeps_the_endpoints_written_by_hand(
        cl: LabCluster, api: Client, app: dict[str, Any]) -> None:
    """examples/external-service.yaml: the controller leaves its Endpoints alone, and every
    node's proxy sends the ClusterIP to the addresses written there (no traffic is sent:
    192.0.2.0/24 is outside the lab)."""
    kemuctl(cl, "apply", "-f", "examples/external-service.yaml")
    # A Service the endpoints controller handles after it has seen legacy-db.
    create(api, service_doc("after-legacy", {"app": "bootcamp"}, target="http"))
    wait_for(lambda: len(endpoint_ips(api, "after-legacy")) == 3, 30, "after-legacy endpoints")
    assert endpoint_ips(api, "legacy-db") == {"192.0.2.10", "192.0.2.11"}
    for node in cl.lab.nodes:
        wait_for(lambda n=node: "--to-destination 192.0.2.11:5432" in n.exec(
            "iptables-save", "-t", "nat"), 20, f"legacy-db's rules on {node.netns}")


def test_session_affinity_pins_a_client(cl: LabCluster, api: Client,
                                        app: dict[str, Any]) -> None:
    svc = create(api, service_doc("app-sticky", {"app": "bootcamp"}, target="http",
                                  sessionAffinity="ClientIP")).service
    url = f"http://{svc.spec.cluster_ip}/"
    wait_for(lambda: len(endpoint_ips(api, "app-sticky")) == 3, 30, "app-sticky endpoints")
    wait_for(lambda: wget(cl, "client-b", url), 20, "app-sticky's rules on node b")
    hosts = wget(cl, "client-b", url, count=20)
    assert len(hosts) == 20 and len(set(hosts)) == 1, collections.Counter(hosts)


def test_a_pod_reaches_itself_through_its_service(cl: LabCluster, api: Client,
                                                  app: dict[str, Any]) -> None:
    a, _ = node_names(cl)
    create(api, pod_doc("hairpin", a, image="kemu/bootcamp:v1", labels={"app": "hairpin"},
                        container={"ports": [{"containerPort": 8080}]}))
    running_ip(api, "hairpin")
    svc = create(api, service_doc("hairpin", {"app": "hairpin"})).service
    wait_for(lambda: endpoint_ips(api, "hairpin"), 30, "hairpin endpoints")
    # The bootcamp image has no wget: its own python3 makes the request.
    fetch = (f"python3 -c \"import urllib.request as u; print(u.urlopen("
             f"'http://{svc.spec.cluster_ip}/', timeout=3).read().decode())\"")
    answer = wait_for(lambda: sh(cl, "hairpin", fetch).stdout, 20,
                      "the pod's own answer through its ClusterIP")
    assert "Running on: hairpin |" in answer


def test_endpoints_follow_readiness_and_no_endpoints_is_refused_at_once(
        cl: LabCluster, api: Client, app: dict[str, Any]) -> None:
    _, b = node_names(cl)
    create(api, pod_doc("gated", b, image="kemu/bootcamp:v1", labels={"app": "gated"},
                        container={"ports": [{"containerPort": 8080}],
                                   "readinessProbe": {"exec": {"command": ["cat",
                                                                           "/tmp/ready"]},
                                                      "periodSeconds": 1}}))
    svc = create(api, service_doc("gated", {"app": "gated"})).service
    url = f"http://{svc.spec.cluster_ip}/"
    wait_for(lambda: api.get("pods", "gated", "default").pod.status.pod_ip, 60, "gated IP")
    # Not ready: no endpoint, and a connection is refused at once (REJECT), not left hanging.
    wait_for(lambda: not endpoint_ips(api, "gated"), 10, "no ready endpoint")
    # Timed inside the pod: kemuctl exec itself may take seconds on a loaded machine.
    refused = sh(cl, "client-a", f"s=$(date +%s); wget -O- -T 10 {url} 2>&1; rc=$?; "
                 "echo elapsed=$(( $(date +%s) - s )) rc=$rc", check=False)
    # Refused (kube-proxy's REJECT) or unreachable (the node's unreachable route for the
    # service CIDR answers first for a routed packet): either way at once, never a hang.
    assert "refused" in refused.stdout or "No route to host" in refused.stdout, refused
    elapsed, rc = (int(v.split("=")[1]) for v in refused.stdout.split()[-2:])
    assert rc != 0 and elapsed <= 2, refused
    sh(cl, "gated", "touch /tmp/ready")
    pod_ip = running_ip(api, "gated")
    wait_for(lambda: endpoint_ips(api, "gated") == {pod_ip}, 20, "gated ready endpoint")
    assert wait_for(lambda: wget(cl, "client-a", url), 20, "gated answering") == ["gated"]
    sh(cl, "gated", "rm /tmp/ready")
    wait_for(lambda: not endpoint_ips(api, "gated"), 20, "gated out of the endpoints")


def test_removing_a_service_removes_its_rules(cl: LabCluster, api: Client,
                                              app: dict[str, Any]) -> None:
    svc = create(api, service_doc("short-lived", {"app": "bootcamp"}, target="http")).service
    comment = "default/short-lived:http"

    def rules_on_every_node(present: bool) -> bool:
        return all((comment in n.exec("iptables-save", "-t", "nat")) == present
                   for n in cl.lab.nodes)
    wait_for(lambda: rules_on_every_node(True), 20, "the Service's rules on both nodes")
    assert wget(cl, "client-a", f"http://{svc.spec.cluster_ip}/")
    api.delete("services", "short-lived", "default")
    wait_for(lambda: rules_on_every_node(False), 20, "the Service's rules gone")
    gone = sh(cl, "client-a", f"wget -qO- -T 3 http://{svc.spec.cluster_ip}/", check=False)
    assert gone.returncode != 0


def test_stopping_an_agent_and_cleanup_leave_nothing_of_ours(cl: LabCluster) -> None:
    node = cl.lab.nodes[1]
    cl.stop_agent(node)
    leftover = cl.node_exec(node, sys.executable, "-m", "kemu.cli.kemu_main", "agent",
                            "--cleanup")
    assert "removed 0 service chains" in leftover  # the agent's own stop removed them all
    for table in ("nat", "filter"):
        saved = node.exec("iptables-save", "-t", table)
        assert "KEMU" not in saved and "kemu" not in saved, saved
    assert "proto 76" not in node.exec("ip", "route", "show", "table", "all")
    assert "7600" not in node.exec("ip", "rule")
    assert ":klb" not in node.exec("ip", "addr")
