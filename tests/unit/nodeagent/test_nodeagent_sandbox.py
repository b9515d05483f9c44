"""DNS policy, resolv.conf and /etc/hosts rendering, the sandbox and container specs."""

from __future__ import annotations

from typing import Any

import pytest

from kemu.api import manifest
from kemu.nodeagent import containers, naming, sandbox


def pod(**spec: Any) -> Any:
    base = {"containers": [{"name": "c", "image": "i"}]}
    return manifest.from_dict({"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": "web-0", "namespace": "shop", "uid": "u9"},
                               "spec": {**base, **spec}}).pod


@pytest.mark.parametrize(("spec", "cluster_dns", "expected"), [
    pytest.param({}, "", None, id="no-cluster-dns-docker-default"),
    pytest.param({}, "10.96.0.10", "nameserver 10.96.0.10\nsearch shop.svc.cluster.local "
                 "svc.cluster.local cluster.local\noptions ndots:5\n", id="cluster-first"),
    pytest.param({"dnsPolicy": "Default"}, "10.96.0.10", None, id="default-policy"),
    pytest.param({"hostNetwork": True}, "10.96.0.10", None, id="host-network"),
    pytest.param({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"],
                                                     "searches": ["a.example"],
                                                     "options": [{"name": "ndots", "value": "2"},
                                                                 {"name": "edns0"}]}},
                 "10.96.0.10", "nameserver 1.1.1.1\nsearch a.example\noptions ndots:2 edns0\n",
                 id="none-with-config"),
    pytest.param({"dnsConfig": {"searches": ["extra.example"],
                                "options": [{"name": "ndots", "value": "1"}]}},
                 "10.96.0.10", "nameserver 10.96.0.10\nsearch shop.svc.cluster.local "
                 "svc.cluster.local cluster.local extra.example\noptions ndots:1\n",
                 id="cluster-first-merged"),
])
def test_resolv_conf(spec: dict[str, Any], cluster_dns: str, expected: str | None) -> None:
    cfg = sandbox.dns_config(pod(**spec), cluster_dns)
    assert (sandbox.render_resolv_conf(cfg) if cfg else None) == expected


def test_hosts_file() -> None:
    text = sandbox.render_hosts(pod(hostname="db", subdomain="dbs", hostAliases=[
        {"ip": "192.0.2.1", "hostnames": ["foo.local", "bar.local"]}]), "10.244.0.7")
    lines = text.splitlines()
    assert "127.0.0.1\tlocalhost" in lines
    assert "10.244.0.7\tdb.dbs.shop.svc.cluster.local\tdb" in lines
    assert "192.0.2.1\tfoo.local\tbar.local" in lines
    assert "10.244.0.7\tweb-0" in sandbox.render_hosts(pod(), "10.244.0.7").splitlines()


def test_hostname_truncated() -> None:
    p = pod()
    p.metadata.name = "a" * 62 + "-bc"
    assert sandbox.hostname(p) == "a" * 62


def test_sandbox_spec() -> None:
    spec = sandbox.sandbox_spec(pod(containers=[{"name": "c", "image": "i", "ports": [
        {"containerPort": 80, "hostPort": 8081}]}]), node="n1", image="pause", network="kemu-n1",
        attempt=2)
    assert spec.name == "kemu_POD_web-0_shop_u9_2"
    assert spec.labels == {naming.NODE: "n1", naming.NAMESPACE: "shop", naming.POD: "web-0",
                           naming.UID: "u9", naming.CONTAINER: "POD",
                           naming.KIND: naming.KIND_SANDBOX, naming.ATTEMPT: "2"}
    assert (spec.hostname, spec.network, spec.ipc_mode) == ("web-0", "kemu-n1", "shareable")
    assert spec.port_bindings == {"80/tcp": [("", 8081)]}


def test_container_spec_command_args_resources_and_namespaces() -> None:
    p = pod(containers=[{"name": "app", "image": "img:1", "command": ["/bin/run", "$(MODE)"],
                         "args": ["--port", "$(PORT)"], "workingDir": "/srv",
                         "resources": {"limits": {"cpu": "500m", "memory": "64Mi"},
                                       "requests": {"cpu": "250m"}},
                         "securityContext": {"runAsUser": 1000, "runAsGroup": 2000}}],
            shareProcessNamespace=True)
    spec = containers.container_spec(p, p.spec.containers[0], node="n1", kind=naming.KIND_APP,
                                     sandbox_id="sb1", attempt=3, restart_count=2,
                                     env=[("MODE", "fast"), ("PORT", "8080")],
                                     binds=["/h:/c"])
    assert spec.entrypoint == ["/bin/run", "fast"] and spec.command == ["--port", "8080"]
    assert spec.env == ["MODE=fast", "PORT=8080"] and spec.working_dir == "/srv"
    assert (spec.nano_cpus, spec.cpu_shares, spec.mem_limit) == (500_000_000, 256, 64 << 20)
    assert spec.network_mode == spec.ipc_mode == spec.pid_mode == "container:sb1"
    assert spec.user == "1000:2000"
    assert spec.labels[naming.RESTART_COUNT] == "2" and spec.labels[naming.ATTEMPT] == "3"
    assert spec.labels[naming.SANDBOX_ID] == "sb1"
    assert spec.labels[naming.HASH] == naming.spec_hash(p.spec.containers[0])
    assert spec.name == "kemu_app_web-0_shop_u9_3"


def test_args_only_keep_the_image_entrypoint() -> None:
    p = pod(containers=[{"name": "app", "image": "i", "args": ["x"]}])
    spec = containers.container_spec(p, p.spec.containers[0], node="n", kind="app",
                                     sandbox_id="s", attempt=0, restart_count=0, env=[],
                                     binds=[])
    assert spec.entrypoint is None and spec.command == ["x"]


def test_spec_hash_changes_with_the_image_only_when_the_spec_does() -> None:
    p = pod()
    h = naming.spec_hash(p.spec.containers[0])
    assert naming.spec_hash(p.spec.containers[0]) == h
    p.spec.containers[0].image = "other"
    assert naming.spec_hash(p.spec.containers[0]) != h
