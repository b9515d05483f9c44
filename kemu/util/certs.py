"""A cluster's PKI, as kubeadm lays it out: one CA, a serving certificate per server and a
client certificate per component and user, made with the `cryptography` library.

Client certificates name their holder as Kubernetes reads them: the subject's CommonName
is the user (`system:kube-scheduler`, `kubernetes-admin`, `system:node:NAME`) and each
Organization is a group (`system:masters`, `system:nodes`). Keys are ECDSA P-256, which
every gRPC implementation accepts; private keys are written readable by the owner only.

    ca = CertificateAuthority.create("kemu-ca")
    server = ca.issue("kube-apiserver", sans=["127.0.0.1", "kubernetes.default"], server=True)
    admin = ca.issue("kubernetes-admin", groups=["system:masters"])
    write_pair(Path("pki"), "apiserver", server)
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650  # kubeadm's CA lifetime
LEAF_DAYS = 365  # kubeadm's certificate lifetime


class CertError(ValueError):
    """A certificate could not be made or read; the message says which and why."""


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def _name(common_name: str, groups: Sequence[str] = ()) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
                     + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(names: Sequence[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


@dataclass(frozen=True)
class CertificateAuthority:
    """The cluster CA: signs every other certificate."""

    pair: KeyPair

    @classmethod
    def create(cls, common_name: str = "kemu-ca", *, days: int = CA_DAYS
               ) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder()
                .subject_name(_name(common_name)).issuer_name(_name(common_name))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                             crl_sign=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()))
        return cls(KeyPair(cert, key))

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        return cls(read_pair(directory, "ca"))

    def issue(self, common_name: str, *, groups: Sequence[str] = (), sans: Sequence[str] = (),
              server: bool = False, client: bool = True, days: int = LEAF_DAYS) -> KeyPair:
        """A certificate for `common_name` signed by this CA: a client certificate (the
        default), a serving one (`server=True`, for the `sans` names and IPs), or both."""
        if server and not sans:
            raise CertError(f"{common_name}: a serving certificate needs at least one name "
                            f"or IP address")
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
            [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        builder = (x509.CertificateBuilder()
                   .subject_name(_name(common_name, groups))
                   .issuer_name(self.pair.cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       self.pair.key.public_key()), critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(_san(sans)),
                                            critical=False)
        return KeyPair(builder.sign(self.pair.key, hashes.SHA256()), key)


def identity(cert: x509.Certificate) -> tuple[str, list[str]]:
    """(user, groups) as Kubernetes reads a client certificate: CN and every O."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return (str(cns[0].value) if cns else ""), [str(o.value) for o in orgs]


def write_pair(directory: Path, name: str, pair: KeyPair) -> tuple[Path, Path]:
    """`name.crt` and `name.key` (mode 0600) in `directory`; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    crt, key = directory / f"{name}.crt", directory / f"{name}.key"
    crt.write_bytes(pair.cert_pem)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pair.key_pem)
    os.chmod(key, 0o600)
    return crt, key


def read_pair(directory: Path, name: str) -> KeyPair:
    crt, key = directory / f"{name}.crt", directory / f"{name}.key"
    try:
        cert = x509.load_pem_x509_certificate(crt.read_bytes())
        private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    except (OSError, ValueError) as e:
        raise CertError(f"cannot read {crt} and {key}: {e}") from None
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise CertError(f"{key}: not an ECDSA key")
    return KeyPair(cert, private)
