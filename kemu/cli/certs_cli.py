"""`kemu certs`: make and inspect a cluster's certificates (kubeadm's `certs` phase).

    kemu certs init --dir pki --san 192.0.2.10        # CA, serving and client certificates
    kemu certs issue system:node:node-1 --dir pki --group system:nodes --san 192.0.2.11 --server
    kemu certs show pki/apiserver.crt                 # subject, groups, names, expiry
    kemu certs encryption-config --out pki/encryption.yaml   # a new aesgcm key

`init` writes what a control plane needs, named as kubeadm names them (without its
directory nesting); it refuses to replace an existing CA unless `--force`, since every
certificate signed by the old one would stop being trusted. `--san` names go into both
serving certificates (the apiserver's and the store's); `--apiserver-san` and `--store-san`
into one only (compose/control-plane.yml: the service names `apiserver` and `store`).

`encryption-config` writes the apiserver's `--encryption-provider-config`: an
EncryptionConfiguration that encrypts Secrets with a new random AES-256 key (aesgcm, key
`key1`), then `identity` so that Secrets written before still read. It holds the key, so it
is written readable by its owner only, and never replaced unless `--force` (the Secrets it
encrypted would no longer read).

The cryptography package is imported by the commands, not with this module: every `kemu`
process (a store, a scheduler) builds the whole command line and would otherwise carry it.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography import x509

APISERVER_SANS = ("127.0.0.1", "localhost", "10.96.0.1", "kubernetes", "kubernetes.default",
                  "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")
"""What clients dial the apiserver by: loopback, the `kubernetes` Service's ClusterIP and
DNS names (kubeadm's list)."""

CLIENTS = (
    ("admin", "kubernetes-admin", ("system:masters",)),
    ("scheduler", "system:kube-scheduler", ()),
    ("controller-manager", "system:kube-controller-manager", ()),
    ("apiserver-etcd-client", "kube-apiserver-etcd-client", ()),
    ("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",)),
)
"""(file name, user, groups) of the control plane's client certificates."""

ENCRYPTION_KEY_NAME = "key1"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "certs", help="make and inspect the cluster's certificates (CA, servers, clients)")
    sub = p.add_subparsers(dest="certs_command", required=True, metavar="COMMAND")
    i = sub.add_parser("init", help="a CA and the control plane's certificates")
    i.add_argument("--dir", type=Path, required=True, help="where to write them")
    i.add_argument("--san", action="append", default=[], metavar="NAME|IP",
                   help="another name or IP the apiserver and store are reached by "
                        "(repeatable; loopback and the kubernetes Service are included)")
    i.add_argument("--apiserver-san", action="append", default=[], metavar="NAME|IP",
                   help="another name or IP of the apiserver only (repeatable)")
    i.add_argument("--store-san", action="append", default=[], metavar="NAME|IP",
                   help="another name or IP of the store only, e.g. each etcd member's "
                        "(repeatable)")
    i.add_argument("--force", action="store_true", help="replace an existing CA")
    s = sub.add_parser("issue", help="one more certificate signed by the CA in --dir")
    s.add_argument("name", help="the user (CommonName), e.g. system:node:node-1 or jane")
    s.add_argument("--dir", type=Path, required=True, help="the directory holding ca.crt/key")
    s.add_argument("--group", action="append", default=[], help="a group (Organization)")
    s.add_argument("--san", action="append", default=[], metavar="NAME|IP",
                   help="a name or IP it serves on (with --server)")
    s.add_argument("--server", action="store_true", help="also a serving certificate")
    s.add_argument("--out", default="", help="file name without extension (default: NAME "
                   "with ':' replaced by '-')")
    e = sub.add_parser("encryption-config",
                       help="an EncryptionConfiguration with a new aesgcm key for Secrets "
                            "(for kemu apiserver --encryption-provider-config)")
    e.add_argument("--out", type=Path, required=True, help="the file to write (mode 0600)")
    e.add_argument("--force", action="store_true",
                   help="replace an existing file (Secrets its key encrypted stop reading)")
    sh = sub.add_parser("show", help="subject, groups, names and expiry of certificates")
    sh.add_argument("files", nargs="+", type=Path)
    return p


def _init(args: argparse.Namespace) -> list[str]:
    from kemu.util.certs import CertError, CertificateAuthority, write_pair

    if (args.dir / "ca.crt").exists() and not args.force:
        raise CertError(f"{args.dir / 'ca.crt'} exists: every certificate it signed would "
                        f"stop being trusted; pass --force to replace it")
    ca = CertificateAuthority.create()
    written = [write_pair(args.dir, "ca", ca.pair)[0]]
    extra = tuple(args.san)
    written.append(write_pair(args.dir, "apiserver", ca.issue(
        "kube-apiserver", sans=_unique(*APISERVER_SANS, *extra, *args.apiserver_san),
        server=True, client=False))[0])
    written.append(write_pair(args.dir, "store", ca.issue(
        "kemu-store", sans=_unique("127.0.0.1", "localhost", *extra, *args.store_san),
        server=True, client=False))[0])
    for file, user, groups in CLIENTS:
        written.append(write_pair(args.dir, file, ca.issue(user, groups=groups))[0])
    return [f"wrote {p} and its key" for p in written]


def _unique(*names: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for n in names if n))


def _encryption_config(args: argparse.Namespace) -> list[str]:
    from kemu.services.apiserver.encryption import write_new_config
    from kemu.util.certs import CertError

    path: Path = args.out
    if path.exists():
        if not args.force:
            raise CertError(f"{path} exists: Secrets encrypted with its key would no longer "
                            f"read; pass --force to replace it")
        path.unlink()
    write_new_config(path, key_name=ENCRYPTION_KEY_NAME)
    return [f"wrote {path} (aesgcm key {ENCRYPTION_KEY_NAME} for secrets)"]


def _issue(args: argparse.Namespace) -> list[str]:
    from kemu.util.certs import CertificateAuthority, write_pair

    ca = CertificateAuthority.load(args.dir)
    pair = ca.issue(args.name, groups=args.group, sans=args.san, server=args.server)
    crt, key = write_pair(args.dir, args.out or args.name.replace(":", "-"), pair)
    return [f"wrote {crt} and {key}"]


def describe(cert: x509.Certificate) -> str:
    from cryptography import x509

    from kemu.util.certs import identity

    user, groups = identity(cert)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n.value) for n in sans]
    except x509.ExtensionNotFound:
        names = []
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return (f"user={user} groups={','.join(groups) or '-'} names={','.join(names) or '-'} "
            f"expires={cert.not_valid_after_utc:%Y-%m-%d} ({left.days}d)")


def run(args: argparse.Namespace) -> int:
    """`kemu certs ...`; a CertError reaches kemu's one-line error handler."""
    from cryptography import x509

    from kemu.util.certs import CertError

    if args.certs_command == "init":
        lines = _init(args)
    elif args.certs_command == "issue":
        lines = _issue(args)
    elif args.certs_command == "encryption-config":
        lines = _encryption_config(args)
    else:
        lines = []
        for path in args.files:
            try:
                cert = x509.load_pem_x509_certificate(path.read_bytes())
            except (OSError, ValueError) as e:
                raise CertError(f"cannot read {path}: {e}") from None
            lines.append(f"{path}: {describe(cert)}")
    for line in lines:
        print(line)
    return 0
