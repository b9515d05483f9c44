"""The cluster PKI: certificates chain to the CA, name their holder as Kubernetes reads
them, and work for a real mutual-TLS gRPC call; `kemu certs` refuses what would break."""

from __future__ import annotations

import stat
import subprocess
import sys
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from kemu.util.certs import (
    CertError,
    CertificateAuthority,
    KeyPair,
    identity,
    read_pair,
    write_pair,
)


def kemu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kemu.cli.kemu_main", *args],
                          capture_output=True, text=True, timeout=60)


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    key = ca.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes,
                   ec.ECDSA(cert.signature_hash_algorithm))  # type: ignore[arg-type]
    except Exception:
        return False
    return cert.issuer == ca.subject


def test_issued_certificates_chain_to_the_ca_and_name_user_and_groups() -> None:
    ca = CertificateAuthority.create()
    node = ca.issue("system:node:node-1", groups=["system:nodes"], sans=["192.0.2.11"],
                    server=True)
    assert _signed_by(node.cert, ca.pair.cert)
    assert not _signed_by(node.cert, CertificateAuthority.create().pair.cert)
    assert identity(node.cert) == ("system:node:node-1", ["system:nodes"])
    sans = node.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in sans] == ["192.0.2.11"]
    with pytest.raises(CertError, match="needs at least one name"):
        ca.issue("kube-apiserver", server=True)


def test_keys_are_written_for_the_owner_only(tmp_path: Path) -> None:
    pair = CertificateAuthority.create().pair
    _, key = write_pair(tmp_path, "ca", pair)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert read_pair(tmp_path, "ca").cert == pair.cert
    with pytest.raises(CertError, match="cannot read"):
        read_pair(tmp_path, "missing")


def test_kemu_certs_init_issue_show(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    made = kemu("certs", "init", "--dir", str(pki), "--san", "192.0.2.10")
    assert made.returncode == 0, made.stderr
    assert {p.name for p in pki.iterdir()} >= {"ca.crt", "apiserver.crt", "store.crt",
                                                "admin.crt", "scheduler.key"}
    shown = kemu("certs", "show", str(pki / "apiserver.crt"), str(pki / "admin.crt"))
    assert "user=kube-apiserver" in shown.stdout and "192.0.2.10" in shown.stdout
    assert "user=kubernetes-admin groups=system:masters" in shown.stdout
    again = kemu("certs", "init", "--dir", str(pki))
    assert again.returncode == 1
    assert again.stderr.startswith("error: ") and "pass --force" in again.stderr
    assert len(again.stderr.splitlines()) == 1
    node = kemu("certs", "issue", "system:node:n1", "--dir", str(pki), "--group",
                "system:nodes", "--san", "192.0.2.11", "--server")
    assert node.returncode == 0 and (pki / "system-node-n1.crt").exists(), node.stderr
    nope = kemu("certs", "issue", "jane", "--dir", str(tmp_path / "empty"))
    assert nope.returncode == 1 and "cannot read" in nope.stderr


def test_a_mutual_tls_grpc_call_with_the_issued_certificates() -> None:
    """What the servers will do: serve with the apiserver certificate, require a client
    certificate from the CA, and read the caller's name from it."""
    ca = CertificateAuthority.create()
    serving = ca.issue("kube-apiserver", sans=["127.0.0.1", "localhost"], server=True,
                       client=False)
    admin = ca.issue("kubernetes-admin", groups=["system:masters"])
    stranger = CertificateAuthority.create().issue("mallory")
    seen: list[str] = []

    class Health(health.HealthServicer):
        def Check(self, request, context):  # type: ignore[no-untyped-def]
            seen.extend(v.decode() for v in context.auth_context().get(
                "x509_common_name", []))
            return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(Health(), server)
    creds = grpc.ssl_server_credentials([(serving.key_pem, serving.cert_pem)],
                                        root_certificates=ca.pair.cert_pem,
                                        require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    try:
        def call(pair: KeyPair | None) -> int:
            kwargs = {}
            if pair is not None:
                kwargs = {"private_key": pair.key_pem, "certificate_chain": pair.cert_pem}
            channel_creds = grpc.ssl_channel_credentials(root_certificates=ca.pair.cert_pem,
                                                         **kwargs)
            with grpc.secure_channel(f"127.0.0.1:{port}", channel_creds) as channel:
                resp = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=5)
                return int(resp.status)

        assert call(admin) == health_pb2.HealthCheckResponse.SERVING
        assert seen == ["kubernetes-admin"]
        for pair in (None, stranger):  # no certificate, or one from another CA
            with pytest.raises(grpc.RpcError) as caught:
                call(pair)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        with grpc.insecure_channel(f"127.0.0.1:{port}") as plain, \
                pytest.raises(grpc.RpcError):
            health_pb2_grpc.HealthStub(plain).Check(health_pb2.HealthCheckRequest(), timeout=5)
    finally:
        server.stop(0)


def _sans(path: Path) -> list[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(n.value) for n in ext]


def test_init_puts_apiserver_and_store_only_names_in_their_own_certificate(
        tmp_path: Path) -> None:
    """compose/control-plane.yml dials the services by their names `apiserver`, `store`
    and `etcd-N`: each name goes into the certificate of the server it names only."""
    pki = tmp_path / "pki"
    made = kemu("certs", "init", "--dir", str(pki), "--san", "192.0.2.10",
                "--apiserver-san", "apiserver", "--store-san", "store", "--store-san",
                "etcd-1", "--san", "192.0.2.10")
    assert made.returncode == 0, made.stderr
    api, store = _sans(pki / "apiserver.crt"), _sans(pki / "store.crt")
    assert api.count("192.0.2.10") == 1 and "apiserver" in api and "10.96.0.1" in api
    assert "store" not in api and "etcd-1" not in api
    assert store == ["127.0.0.1", "localhost", "192.0.2.10", "store", "etcd-1"]


def test_encryption_config_is_a_new_owner_only_key_the_apiserver_loads(
        tmp_path: Path) -> None:
    from kemu.services.apiserver.encryption import load

    path = tmp_path / "pki" / "encryption.yaml"
    made = kemu("certs", "encryption-config", "--out", str(path))
    assert made.returncode == 0, made.stderr
    assert made.stdout == f"wrote {path} (aesgcm key key1 for secrets)\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = load(path)
    chain = config.for_key("/registry/secrets/default/db")
    assert chain is not None and chain.writer == 'aesgcm key "key1"'
    stored = chain.to_storage(b"hunter2", "/registry/secrets/default/db")
    assert stored.startswith(b"k8s:enc:aesgcm:v1:key1:") and b"hunter2" not in stored
    assert config.for_key("/registry/configmaps/default/x") is None
    before = path.read_text()

    # The key is never replaced by accident: the Secrets it encrypted would not read.
    again = kemu("certs", "encryption-config", "--out", str(path))
    assert again.returncode == 1 and again.stderr.startswith("error: ")
    assert "pass --force" in again.stderr and len(again.stderr.splitlines()) == 1
    assert path.read_text() == before
    forced = kemu("certs", "encryption-config", "--out", str(path), "--force")
    assert forced.returncode == 0, forced.stderr
    assert path.read_text() != before and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load(path).for_key("/registry/secrets/a/b") is not None
