"""`kemu addons install dns`: the cluster DNS put into a running cluster, as kubeadm's
addon phase installs CoreDNS.

`kemu up` installs it itself; a control plane started some other way (compose/control-plane.yml
runs this as a one-shot service) calls this. It waits for the apiserver, then applies the
manifests of kemu.cli.addons with the apiserver's apply (kubectl apply's three-way merge),
so running it again changes nothing. Against an apiserver with `--token-file` the token
(KEMU_TOKEN) goes into a Secret that the DNS pods read as KEMU_TOKEN. A container reads an
env var from a Secret only when it starts, so the pod template carries the Secret's
resourceVersion: a new token updates the Secret and rolls the DNS pods.

With `--pki-dir DIR` (the compose deployment: an apiserver that requires client
certificates), it dials the apiserver with DIR's admin certificate, and the DNS pods
authenticate with their own: DIR/kube-dns.crt, the user
system:serviceaccount:kube-system:kube-dns in system:serviceaccounts and
system:serviceaccounts:kube-system, which the bootstrap RBAC policy binds to
system:kube-dns (read services, endpoints and pods). It is issued from DIR's CA when
missing and kept after, so running again changes nothing. It reaches the pods, which run
on workers without the PKI, as the Secret kube-system/kube-dns-tls (ca.crt, tls.crt,
tls.key) mounted by a secret volume; the pod template carries that Secret's
resourceVersion too, so a new certificate rolls the pods.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kemu.cli import addons
from kemu.util import tls
from kemu.util.argtypes import host_port

if TYPE_CHECKING:
    from kemu.api.v1 import api_pb2
    from kemu.client import Client

TOKEN_VERSION = "kemu.io/token-secret-version"
TLS_VERSION = "kemu.io/tls-secret-version"
DNS_CERT = "kube-dns"
"""The DNS pods' certificate in a --pki-dir: kube-dns.crt and kube-dns.key."""


class AddonError(Exception):
    """An add-on could not be installed."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `addons` on kemu's subcommands (an argparse _SubParsersAction)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "addons", help="install cluster add-ons (the cluster DNS) into a running cluster")
    sub = p.add_subparsers(dest="addons_command", required=True, metavar="COMMAND")
    i = sub.add_parser(
        "install", help="create or update an add-on's objects (idempotent)",
        description="Apply the cluster DNS: the kube-dns Service at 10.96.0.10 and a "
                    "Deployment of `kemu dns` pods; with KEMU_TOKEN set, also the Secret "
                    "kube-system/kube-dns-token that those pods authenticate with. Waits "
                    "for the apiserver first; running it again changes nothing.")
    i.add_argument("addon", choices=("dns",), help="the add-on")
    i.add_argument("--apiserver", type=host_port, default="127.0.0.1:6443",
                   metavar="HOST:PORT", help="the API server (token from KEMU_TOKEN)")
    i.add_argument("--image", default="kemu/kemu:latest",
                   help="the image the DNS pods run (`kemu dns` is its entry point)")
    i.add_argument("--replicas", type=int, default=2, help="DNS pods (default 2)")
    i.add_argument("--timeout", type=float, default=300.0,
                   help="seconds to wait for the apiserver (default 300)")
    i.add_argument("--pki-dir", type=Path, default=None, metavar="DIR",
                   help="a cluster PKI (kemu certs init): dial the apiserver with DIR's "
                        "ca.crt and admin certificate, and give the DNS pods their own "
                        f"({DNS_CERT}.crt, issued from DIR's CA when missing) in the Secret "
                        f"kube-system/{addons.DNS_TLS_SECRET}")
    tls.add_client_flags(i)
    return p


def wait_for_apiserver(client: Client, timeout: float) -> None:
    """Return once the apiserver answers and has kube-system; AddonError at the deadline.
    A refused token fails at once: waiting would not help."""
    from kemu.client.errors import NotFound, Timeout, Unavailable

    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        try:
            client.get("namespaces", "kube-system")
            return
        except (Unavailable, Timeout, NotFound) as e:
            if time.monotonic() + delay > deadline:
                raise AddonError(f"the apiserver at {client.server} was not ready within "
                                 f"{timeout:.0f}s: {e}") from e
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def install_dns(client: Client, *, image: str, replicas: int, token: str,
                cert_dir: str | None = None,
                cert_files: Mapping[str, bytes] | None = None) -> list[str]:
    """Apply the DNS add-on's objects; one `kind/name created|configured|unchanged` line
    each, as kubectl apply prints. `cert_files` (ca.crt, tls.crt, tls.key) go into the
    Secret the DNS pods mount; `cert_dir` is a hostPath holding them instead."""
    from kemu.api import manifest
    from kemu.cli.ctl.cmd_apply import RESULTS
    from kemu.cli.ctl.output import name_of

    lines: list[str] = []

    def apply(doc: dict[str, Any]) -> api_pb2.Object:
        resp = client.apply(manifest.from_dict(doc))
        lines.append(f"{name_of(resp.object)} {RESULTS.get(resp.result, 'configured')}")
        return resp.object

    annotations: dict[str, str] = {}
    if token:
        secret = apply(addons.dns_token_secret(token))
        annotations[TOKEN_VERSION] = secret.secret.metadata.resource_version
    if cert_files is not None:
        secret = apply(addons.dns_tls_secret(cert_files))
        annotations[TLS_VERSION] = secret.secret.metadata.resource_version
    deployment = addons.dns_deployment(
        image, replicas=replicas, token_secret=addons.DNS_TOKEN_SECRET if token else None,
        cert_dir=cert_dir,
        cert_secret=addons.DNS_TLS_SECRET if cert_files is not None else None)
    if annotations:
        deployment["spec"]["template"]["metadata"]["annotations"] = annotations
    apply(addons.dns_service())
    apply(deployment)
    return lines


def dns_cert_files(pki_dir: Path) -> dict[str, bytes]:
    """ca.crt, tls.crt and tls.key of the DNS pods from a cluster PKI: its CA and
    kube-dns.crt/.key, issued from the CA (ca.key) first when missing."""
    from kemu.cli.clusterpki import DNS_GROUPS, DNS_USER
    from kemu.util.certs import CertError, CertificateAuthority, read_pair, write_pair

    crt, key = pki_dir / f"{DNS_CERT}.crt", pki_dir / f"{DNS_CERT}.key"
    if not (crt.exists() and key.exists()):
        ca = CertificateAuthority.load(pki_dir)
        write_pair(pki_dir, DNS_CERT, ca.issue(DNS_USER, groups=DNS_GROUPS))
    pair = read_pair(pki_dir, DNS_CERT)
    try:
        ca_pem = (pki_dir / "ca.crt").read_bytes()
    except OSError as e:
        raise CertError(f"cannot read {pki_dir / 'ca.crt'}: {e.strerror or e}") from None
    return {"ca.crt": ca_pem, "tls.crt": pair.cert_pem, "tls.key": pair.key_pem}


def run(args: argparse.Namespace) -> int:
    """`kemu addons install dns`; errors reach kemu's one-line handler."""
    from kemu.client import Client
    from kemu.client.auth import resolve

    if args.replicas < 0:
        raise AddonError(f"--replicas: must be >= 0, got {args.replicas}")
    tls.export_client_flags(args)
    admin = None
    if args.pki_dir is not None:
        pki: Path = args.pki_dir
        admin = tls.ClientTLS(pki / "ca.crt", pki / "admin.crt", pki / "admin.key")
    with Client(args.apiserver, timeout=10.0, tls=admin) as client:
        wait_for_apiserver(client, args.timeout)
        cert_files = dns_cert_files(args.pki_dir) if args.pki_dir is not None else None
        for line in install_dns(client, image=args.image, replicas=args.replicas,
                                token="" if cert_files is not None else resolve(None),
                                cert_files=cert_files):
            print(line, flush=True)
    return 0
