"""TLS and authentication on every gRPC endpoint, with the PKI `kemu certs init` makes.

- The store with etcd's `--cert-file --key-file --trusted-ca-file --client-cert-auth`
  refuses every KV, Watch and Lease call from a client without a certificate of its CA: the
  TLS handshake fails, which gRPC reports as UNAVAILABLE. The apiserver reaches it with
  `--etcd-cafile --etcd-certfile --etcd-keyfile`.
- An apiserver with `--client-ca-file` likewise refuses connections without a client
  certificate (handshake, UNAVAILABLE); kemuctl gets in with `certificate-authority`,
  `client-certificate` and `client-key` from ~/.kemu/config.
- An apiserver with TLS and `--token-file` answers every Resources, Discovery and Metrics
  method without a token with UNAUTHENTICATED; health stays open.
- A node agent with `--client-ca-file` refuses callers without the apiserver's kubelet
  client certificate (UNAVAILABLE); the apiserver proxies logs to it with
  `--kubelet-client-certificate`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kemu.api import manifest
from kemu.api.etcd import rpc_pb2
from kemu.api.v1 import api_pb2, metrics_pb2
from kemu.client import Client
from kemu.client.errors import Unavailable
from kemu.util.tls import ClientTLS, secure_channel
from tests.support import processes

pytestmark = pytest.mark.integration
TOKEN = "tls-token-7c1e"


@dataclass(frozen=True)
class PKI:
    dir: Path

    def pair(self, name: str) -> tuple[Path, Path]:
        return self.dir / f"{name}.crt", self.dir / f"{name}.key"

    @property
    def ca(self) -> Path:
        return self.dir / "ca.crt"

    def client(self, name: str | None) -> ClientTLS:
        if name is None:
            return ClientTLS(self.ca)
        crt, key = self.pair(name)
        return ClientTLS(self.ca, crt, key)


def kemu(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "kemu.cli.kemu_main", *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    d = tmp_path_factory.mktemp("pki")
    kemu("certs", "init", "--dir", str(d))
    kemu("certs", "issue", "system:node:tls-node", "--dir", str(d), "--group",
         "system:nodes", "--san", "127.0.0.1", "--server", "--out", "node")
    kemu("certs", "init", "--dir", str(d / "other"))  # a CA nobody trusts
    return PKI(d)


@dataclass(frozen=True)
class Servers:
    store: str
    apiserver: str  # client certificates required
    token_apiserver: str  # TLS, bearer tokens


@pytest.fixture(scope="module")
def servers(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    tmp = tmp_path_factory.mktemp("tls")
    (tmp / "tokens").write_text(f'{TOKEN},jane,uid-1,"dev"\n')
    store_crt, store_key = pki.pair("store")
    etcd_crt, etcd_key = pki.pair("apiserver-etcd-client")
    api_crt, api_key = pki.pair("apiserver")
    store = processes.kemu_store(tmp, tls=pki.client("apiserver-etcd-client"), extra=(
        "--cert-file", str(store_crt), "--key-file", str(store_key),
        "--trusted-ca-file", str(pki.ca), "--client-cert-auth"))
    etcd_flags = ("--etcd-cafile", str(pki.ca), "--etcd-certfile", str(etcd_crt),
                  "--etcd-keyfile", str(etcd_key))
    serving = ("--tls-cert-file", str(api_crt), "--tls-private-key-file", str(api_key))
    apiserver = processes.kemu_apiserver(
        tmp, store.address, tls=pki.client("admin"),
        extra=(*serving, "--client-ca-file", str(pki.ca), *etcd_flags))
    token_apiserver = processes.kemu_apiserver(
        tmp, store.address, name="token-apiserver", tls=pki.client(None),
        extra=(*serving, "--token-file", str(tmp / "tokens"), *etcd_flags))
    with processes.running(store, apiserver, token_apiserver):
        yield Servers(store.address, apiserver.address, token_apiserver.address)


def _call_every_method(channel: grpc.Channel, service: ServiceDescriptor,
                       metadata: tuple[tuple[str, str], ...] = ()
                       ) -> dict[str, grpc.StatusCode]:
    """Each method of `service` called with an empty request: its status code."""
    codes: dict[str, grpc.StatusCode] = {}
    for method in service.methods:
        path = f"/{service.full_name}/{method.name}"
        ident: dict[str, Any] = {"request_serializer": None, "response_deserializer": None}
        try:
            if method.client_streaming and method.server_streaming:
                list(channel.stream_stream(path, **ident)(iter([b""]), timeout=5,
                                                          metadata=metadata))
            elif method.client_streaming:
                channel.stream_unary(path, **ident)(iter([b""]), timeout=5, metadata=metadata)
            elif method.server_streaming:
                list(channel.unary_stream(path, **ident)(b"", timeout=5, metadata=metadata))
            else:
                channel.unary_unary(path, **ident)(b"", timeout=5, metadata=metadata)
            codes[method.name] = grpc.StatusCode.OK
        except grpc.RpcError as e:
            codes[method.name] = e.code()  # type: ignore[attr-defined]
    return codes


API_SERVICES = [api_pb2.DESCRIPTOR.services_by_name["Resources"],
                api_pb2.DESCRIPTOR.services_by_name["Discovery"],
                metrics_pb2.DESCRIPTOR.services_by_name["Metrics"]]
STORE_SERVICES = [rpc_pb2.DESCRIPTOR.services_by_name[s] for s in ("KV", "Watch", "Lease")]


@pytest.mark.parametrize("service", [pytest.param(s, id=s.name) for s in API_SERVICES])
def test_without_a_token_every_apiserver_method_is_unauthenticated(
        servers: Servers, pki: PKI, service: ServiceDescriptor) -> None:
    with secure_channel(servers.token_apiserver, pki.client(None)) as ch:
        codes = _call_every_method(ch, service)
        assert set(codes.values()) == {grpc.StatusCode.UNAUTHENTICATED}, codes
        wrong = _call_every_method(ch, service, (("authorization", "Bearer nope"),))
        assert set(wrong.values()) == {grpc.StatusCode.UNAUTHENTICATED}, wrong
        health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(),
                                                      timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_a_token_over_tls_works(servers: Servers, pki: PKI) -> None:
    with Client(servers.token_apiserver, token=TOKEN, tls=pki.client(None)) as api:
        assert "kube-system" in {o.namespace.metadata.name for o in api.list("namespaces").items}


@pytest.mark.parametrize("service", [pytest.param(s, id=s.name) for s in API_SERVICES])
def test_an_apiserver_requiring_client_certificates_refuses_a_caller_without_one(
        servers: Servers, pki: PKI, service: ServiceDescriptor) -> None:
    for tls in (pki.client(None), ClientTLS(pki.ca, *PKI(pki.dir / "other").pair("admin"))):
        with secure_channel(servers.apiserver, tls) as ch:
            codes = _call_every_method(ch, service)
        assert set(codes.values()) == {grpc.StatusCode.UNAVAILABLE}, codes
    with grpc.insecure_channel(servers.apiserver) as ch:  # plaintext to a TLS port
        codes = _call_every_method(ch, service)
    assert set(codes.values()) == {grpc.StatusCode.UNAVAILABLE}, codes


@pytest.mark.parametrize("service", [pytest.param(s, id=s.name) for s in STORE_SERVICES])
def test_the_store_refuses_a_caller_without_a_client_certificate(
        servers: Servers, pki: PKI, service: ServiceDescriptor) -> None:
    with secure_channel(servers.store, pki.client(None)) as ch:
        codes = _call_every_method(ch, service)
    assert set(codes.values()) == {grpc.StatusCode.UNAVAILABLE}, codes
    with secure_channel(servers.store, pki.client("apiserver-etcd-client")) as ch:
        codes = _call_every_method(ch, service)
    assert grpc.StatusCode.UNAVAILABLE not in codes.values(), codes


def test_the_apiserver_stores_through_its_etcd_client_certificate(servers: Servers,
                                                                   pki: PKI) -> None:
    with Client(servers.apiserver, tls=pki.client("admin")) as api:
        api.create(manifest.from_dict({"apiVersion": "v1", "kind": "ConfigMap",
                                       "metadata": {"name": "over-tls", "namespace": "default"},
                                       "data": {"k": "v"}}))
    with Client(servers.token_apiserver, token=TOKEN, tls=pki.client(None)) as api:
        assert api.get("configmaps", "over-tls", "default").config_map.data["k"] == "v"


def test_a_store_client_without_a_certificate_never_reaches_the_store(
        servers: Servers, pki: PKI) -> None:
    from kemu.services.apiserver.errors import Unavailable as StoreUnavailable
    from kemu.services.apiserver.storage import Storage

    async def main() -> None:
        storage = Storage([servers.store], tls=pki.client(None))
        try:
            with pytest.raises(StoreUnavailable):
                await storage.current_revision()
        finally:
            await storage.close()

    asyncio.run(main())


def _kemuctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KEMU_")}
    return subprocess.run([sys.executable, "-m", "kemu.cli.kemuctl", *args],
                          capture_output=True, text=True, timeout=60, env={**clean, **env})


def test_kemuctl_with_the_config_fields(servers: Servers, pki: PKI, tmp_path: Path) -> None:
    config = pki.dir / "config"  # relative paths: as kubectl, from the file's directory
    config.write_text(f"current-cluster: tls\nclusters:\n  tls:\n    server: "
                      f"{servers.apiserver}\n    certificate-authority: ca.crt\n"
                      f"    client-certificate: admin.crt\n    client-key: admin.key\n")
    env = {"KEMU_CONFIG": str(config)}
    got = _kemuctl(env, "get", "namespaces")
    assert got.returncode == 0, got.stderr
    assert "kube-system" in got.stdout
    top = _kemuctl(env, "top", "nodes")  # the Metrics stub shares the client's TLS
    assert "Unavailable" not in top.stderr and "UNAVAILABLE" not in top.stderr, top.stderr

    crt, key = pki.pair("scheduler")
    by_flags = _kemuctl({"KEMU_CONFIG": str(tmp_path / "none")}, "-s", servers.apiserver,
                        "--certificate-authority", str(pki.ca), "--client-certificate",
                        str(crt), "--client-key", str(key), "get", "namespaces")
    assert by_flags.returncode == 0, by_flags.stderr

    config.write_text(f"current-cluster: tls\nclusters:\n  tls:\n    server: "
                      f"{servers.apiserver}\n    certificate-authority: ca.crt\n")
    no_cert = _kemuctl(env, "get", "namespaces")
    assert no_cert.returncode == 1
    assert len(no_cert.stderr.strip().splitlines()) == 1, no_cert.stderr


def test_plaintext_clients_of_a_tls_apiserver_fail_as_unavailable(servers: Servers) -> None:
    with Client(servers.apiserver, tls=None) as api, pytest.raises(Unavailable):
        api.list("namespaces")


# ---- the node agent ----------------------------------------------------------------------

class _NoPods:
    def get(self, key: str) -> None:
        return None


@pytest.fixture
def agent(pki: PKI) -> Iterator[str]:
    """The real agent's gRPC server (Agent._serve) with `--tls-cert-file` and
    `--client-ca-file`, on a loop of its own thread; no runtime behind it."""
    import threading

    from kemu.nodeagent.agent import Agent
    from kemu.nodeagent.config import AgentConfig
    from kemu.util.tls import ServerTLS

    port = processes.free_port()
    crt, key = pki.pair("node")
    config = AgentConfig(apiserver="127.0.0.1:1", node_name="tls-node", node_ip="127.0.0.1",
                         port=port, listen_host="127.0.0.1",
                         tls=ServerTLS(crt, key, pki.ca))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    a = Agent(config)
    asyncio.run_coroutine_threadsafe(a._serve(object(), _NoPods()),  # type: ignore[arg-type]
                                     loop).result(10)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        assert a.server is not None
        asyncio.run_coroutine_threadsafe(a.server.stop(0), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_the_agent_refuses_callers_without_the_kubelet_client_certificate(
        agent: str, pki: PKI) -> None:
    from kemu.api.v1 import nodeagent_pb2

    service = nodeagent_pb2.DESCRIPTOR.services_by_name["NodeAgent"]
    for tls in (pki.client(None), ClientTLS(pki.ca, *PKI(pki.dir / "other").pair("admin"))):
        with secure_channel(agent, tls) as ch:
            codes = _call_every_method(ch, service)
        assert set(codes.values()) == {grpc.StatusCode.UNAVAILABLE}, codes
    with secure_channel(agent, pki.client("apiserver-kubelet-client")) as ch:
        codes = _call_every_method(ch, service)
    assert grpc.StatusCode.UNAVAILABLE not in codes.values(), codes


def test_the_apiserver_proxies_logs_to_a_tls_agent(agent: str, pki: PKI,
                                                   tmp_path: Path) -> None:
    store = processes.kemu_store(tmp_path)
    crt, key = pki.pair("apiserver-kubelet-client")
    with_cert = processes.kemu_apiserver(tmp_path, store.address, extra=(
        "--kubelet-certificate-authority", str(pki.ca), "--kubelet-client-certificate",
        str(crt), "--kubelet-client-key", str(key)))
    without = processes.kemu_apiserver(tmp_path, store.address, name="apiserver-no-cert",
                                       extra=("--kubelet-certificate-authority", str(pki.ca)))
    port = int(agent.rsplit(":", 1)[1])
    with processes.running(store, with_cert, without), Client(with_cert.address) as api:
        api.create(manifest.from_dict({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": "tls-node"},
            "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}))
        api.create(manifest.from_dict({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"nodeName": "tls-node", "containers": [{"name": "c", "image": "x:1"}]}}))
        from kemu.client.errors import NotFound

        # The agent answered (it has no such pod in its cache): TLS and the client
        # certificate got the call through.
        with pytest.raises(NotFound):
            list(api.logs(api_pb2.LogsRequest(namespace="default", name="p")))
        with Client(without.address) as bare, pytest.raises(Unavailable, match="tls-node"):
            list(bare.logs(api_pb2.LogsRequest(namespace="default", name="p")))


# ---- a component as a client ---------------------------------------------------------------

def test_the_scheduler_binds_through_its_client_certificate(servers: Servers, pki: PKI,
                                                            tmp_path: Path) -> None:
    """`kemu scheduler --certificate-authority --client-certificate --client-key`: its
    informers and its Bind calls reach an apiserver that requires client certificates."""
    from tests.integration.scheduler.conftest import Kube

    crt, key = pki.pair("scheduler")
    health = f"127.0.0.1:{processes.free_port()}"
    sched = processes.Proc("scheduler", [
        processes.PYTHON, "-m", "kemu.cli.kemu_main", "scheduler", "--apiserver",
        servers.apiserver, "--health-listen", health, "--leader-elect=false",
        "--certificate-authority", str(pki.ca), "--client-certificate", str(crt),
        "--client-key", str(key)], tmp_path / "scheduler.log", health,
        env={"KEMU_CERTIFICATE_AUTHORITY": "", "KEMU_CLIENT_CERTIFICATE": "",
             "KEMU_CLIENT_KEY": ""})
    with Client(servers.apiserver, tls=pki.client("admin")) as api, processes.running(sched):
        api.create(manifest.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": "tls-sched"}}))
        kube = Kube(api, "tls-sched", "tls", sched)
        node = kube.node("a", cpu="2")
        kube.pod("p", cpu="100m")
        assert kube.wait_bound("p", timeout=30) == node
