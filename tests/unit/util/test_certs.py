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
