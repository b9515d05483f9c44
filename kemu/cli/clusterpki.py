"""The PKI of a `kemu up` cluster, kept in its state directory (`<state>/pki`), and the
flags that run each component with it: TLS everywhere, client certificates as identities,
RBAC and the Node authorizer deciding what each identity may do (as kubeadm's
`--authorization-mode=Node,RBAC`), and Secrets encrypted at rest with the AES-GCM key in
`pki/encryption.yaml`.

Made once with `kemu certs`' functions and reused by `kemu up` on a running cluster. The
DNS pods get their own copy of the CA and a client certificate in `pki/dns` (mounted
into them by hostPath), never the directory that holds the CA's key.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kemu.cli.certs_cli import APISERVER_SANS, CLIENTS
from kemu.util.tls import ClientTLS

DNS_USER = "system:serviceaccount:kube-system:kube-dns"
DNS_GROUPS = ("system:serviceaccounts", "system:serviceaccounts:kube-system")


@dataclass(frozen=True)
class ClusterPKI:
    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def dns_dir(self) -> Path:
        """ca.crt, tls.crt and tls.key of the DNS pods."""
        return self.dir / "dns"

    @property
    def encryption_config(self) -> Path:
        """The EncryptionConfiguration (aesgcm for Secrets) the apiserver runs with."""
        return self.dir / "encryption.yaml"

    def pair(self, name: str) -> tuple[Path, Path]:
        return self.dir / f"{name}.crt", self.dir / f"{name}.key"

    def client(self, name: str) -> ClientTLS:
        crt, key = self.pair(name)
        return ClientTLS(self.ca, crt, key)

    def client_flags(self, name: str) -> tuple[str, ...]:
        crt, key = self.pair(name)
        return ("--certificate-authority", str(self.ca), "--client-certificate", str(crt),
                "--client-key", str(key))

    def store_flags(self) -> tuple[str, ...]:
        crt, key = self.pair("store")
        return ("--cert-file", str(crt), "--key-file", str(key),
                "--trusted-ca-file", str(self.ca), "--client-cert-auth")

    def apiserver_flags(self) -> tuple[str, ...]:
        crt, key = self.pair("apiserver")
        etcd_crt, etcd_key = self.pair("apiserver-etcd-client")
        kubelet_crt, kubelet_key = self.pair("apiserver-kubelet-client")
        ca = str(self.ca)
        return ("--tls-cert-file", str(crt), "--tls-private-key-file", str(key),
                "--client-ca-file", ca,
                "--etcd-cafile", ca, "--etcd-certfile", str(etcd_crt),
                "--etcd-keyfile", str(etcd_key),
                "--kubelet-certificate-authority", ca,
                "--kubelet-client-certificate", str(kubelet_crt),
                "--kubelet-client-key", str(kubelet_key),
                "--authorization-mode", "Node,RBAC",
                "--encryption-provider-config", str(self.encryption_config))

    def agent_flags(self, node: str) -> tuple[str, ...]:
        crt, key = self.pair(f"node-{node}")
        return ("--tls-cert-file", str(crt), "--tls-private-key-file", str(key),
                "--client-ca-file", str(self.ca), *self.client_flags(f"node-{node}"))


def ensure(directory: Path, *, sans: Sequence[str] = (),
           nodes: Sequence[tuple[str, str]] = ()) -> ClusterPKI:
    """The cluster's PKI in `directory`: what exists is kept, what is missing is made
    (`sans`: more addresses of the apiserver; `nodes`: (name, IP) of each agent)."""
    # cryptography comes with the work, not with the module: `kemu logs` and every kemu
    # process's command line import this module, and would otherwise carry it.
    from kemu.services.apiserver.encryption import write_new_config
    from kemu.util.certs import CertificateAuthority, write_pair

    pki = ClusterPKI(directory)
    if pki.ca.exists():
        ca = CertificateAuthority.load(directory)
    else:
        ca = CertificateAuthority.create()
        write_pair(directory, "ca", ca.pair)

    def missing(name: str) -> bool:
        return not all(p.exists() for p in pki.pair(name))

    if missing("apiserver"):
        write_pair(directory, "apiserver", ca.issue(
            "kube-apiserver", sans=(*APISERVER_SANS, *sans), server=True, client=False))
    if missing("store"):
        write_pair(directory, "store", ca.issue(
            "kemu-store", sans=("127.0.0.1", "localhost"), server=True, client=False))
    for file, user, groups in CLIENTS:
        if missing(file):
            write_pair(directory, file, ca.issue(user, groups=groups))
    for node, ip in nodes:
        if missing(f"node-{node}"):
            write_pair(directory, f"node-{node}", ca.issue(
                f"system:node:{node}", groups=["system:nodes"], sans=[ip], server=True))
    if not pki.encryption_config.exists():
        write_new_config(pki.encryption_config)
    if not (pki.dns_dir / "tls.key").exists():
        write_pair(pki.dns_dir, "tls", ca.issue(DNS_USER, groups=DNS_GROUPS))
        shutil.copyfile(pki.ca, pki.dns_dir / "ca.crt")
    return pki
