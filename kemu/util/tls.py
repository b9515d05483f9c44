"""TLS for every gRPC endpoint, built in one place: a server's credentials from its
certificate, key and client CA, a client's channel credentials from a CA and an optional
client certificate, and the warning a server prints when it serves in plaintext.

Flag names follow the Kubernetes component each server plays: kube-apiserver's and the
kubelet's `--tls-cert-file --tls-private-key-file --client-ca-file`, etcd's
`--cert-file --key-file --trusted-ca-file --client-cert-auth`; clients take kubectl's
`--certificate-authority --client-certificate --client-key`.

One gRPC limit shapes the servers: Python's `ssl_server_credentials` either requires and
verifies a client certificate or never asks for one (`require_client_auth=False` sends no
CertificateRequest, so a client's certificate is never seen). A server therefore either
requires client certificates or authenticates by other means (the apiserver's bearer
tokens); there is no "verify the certificate when one is presented".

Components build their apiserver clients with no TLS argument, so `ClientTLS.from_env()`
reads KEMU_CERTIFICATE_AUTHORITY, KEMU_CLIENT_CERTIFICATE and KEMU_CLIENT_KEY: `kemu
scheduler --certificate-authority ca.crt ...` exports them for every client the process
makes, as KEMU_TOKEN does for the bearer token.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import grpc

ENV_CA = "KEMU_CERTIFICATE_AUTHORITY"
ENV_CERT = "KEMU_CLIENT_CERTIFICATE"
ENV_KEY = "KEMU_CLIENT_KEY"


class TLSConfigError(ValueError):
    """TLS files are missing, unreadable or given in an incomplete combination."""


def _read(path: Path, flag: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TLSConfigError(f"{flag} {path}: {e.strerror or e}") from None
    if b"-----BEGIN" not in data:
        raise TLSConfigError(f"{flag} {path}: not a PEM file")
    return data


@dataclass(frozen=True)
class ServerTLS:
    """What a server serves with: its certificate and key, and the CA whose client
    certificates it requires (None: any client may connect, authenticated otherwise)."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    # Flag names for error messages, as the component calls them.
    flags: tuple[str, str, str] = ("--tls-cert-file", "--tls-private-key-file",
                                   "--client-ca-file")

    @property
    def requires_client_cert(self) -> bool:
        return self.client_ca_file is not None

    def credentials(self) -> grpc.ServerCredentials:
        cert = _read(self.cert_file, self.flags[0])
        key = _read(self.key_file, self.flags[1])
        ca = _read(self.client_ca_file, self.flags[2]) if self.client_ca_file else None
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca,
                                           require_client_auth=ca is not None)


@dataclass(frozen=True)
class ClientTLS:
    """How a client dials a TLS server: the CA that signed the server's certificate, and a
    client certificate and key when the server wants one (both or neither)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # Another name to check the server's certificate for (the address dialled otherwise).
    server_name: str = ""
    flags: tuple[str, str, str] = ("--certificate-authority", "--client-certificate",
                                   "--client-key")

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise TLSConfigError(f"{self.flags[1]} and {self.flags[2]} go together: "
                                 "give both or neither")

    def credentials(self) -> grpc.ChannelCredentials:
        ca = _read(self.ca_file, self.flags[0]) if self.ca_file else None
        cert = _read(self.cert_file, self.flags[1]) if self.cert_file else None
        key = _read(self.key_file, self.flags[2]) if self.key_file else None
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key,
                                            certificate_chain=cert)

    def options(self) -> list[tuple[str, Any]]:
        """Channel options: the name to verify, when not the dialled host."""
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name \
            else []

    @classmethod
    def of(cls, ca: str | Path | None, cert: str | Path | None = None,
           key: str | Path | None = None, *,
           flags: tuple[str, str, str] | None = None) -> ClientTLS | None:
        """A ClientTLS from paths (empty ones ignored), or None when none is given."""
        if not (ca or cert or key):
            return None
        return cls(Path(ca) if ca else None, Path(cert) if cert else None,
                   Path(key) if key else None, flags=flags or cls.flags)

    @classmethod
    def from_env(cls) -> ClientTLS | None:
        """From KEMU_CERTIFICATE_AUTHORITY / KEMU_CLIENT_CERTIFICATE / KEMU_CLIENT_KEY."""
        return cls.of(os.environ.get(ENV_CA), os.environ.get(ENV_CERT),
                      os.environ.get(ENV_KEY), flags=(ENV_CA, ENV_CERT, ENV_KEY))

    def export(self) -> None:
        """Put this configuration in the environment for every client of this process."""
        for name, path in ((ENV_CA, self.ca_file), (ENV_CERT, self.cert_file),
                           (ENV_KEY, self.key_file)):
            if path is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = str(path.resolve())


def server_tls(cert: Path | None, key: Path | None, client_ca: Path | None = None, *,
               flags: tuple[str, str, str] = ("--tls-cert-file", "--tls-private-key-file",
                                              "--client-ca-file")) -> ServerTLS | None:
    """A ServerTLS from flags, None when no certificate is given; a CA without a certificate
    (or a certificate without its key) is an error, never "plaintext"."""
    if cert is None and key is None:
        if client_ca is not None:
            raise TLSConfigError(f"{flags[2]} needs {flags[0]} and {flags[1]}: client "
                                 "certificates are only checked over TLS")
        return None
    if cert is None or key is None:
        raise TLSConfigError(f"{flags[0]} and {flags[1]} go together: give both")
    return ServerTLS(cert, key, client_ca, flags)


def add_port(server: grpc.aio.Server, address: str, tls: ServerTLS | None) -> int:
    """Listen on `address` with TLS (or plaintext for None); the port, 0 when it failed."""
    if tls is None:
        return int(server.add_insecure_port(address))
    return int(server.add_secure_port(address, tls.credentials()))


def secure_channel(target: str, tls: ClientTLS, *,
                   options: Iterable[tuple[str, Any]] = ()) -> grpc.Channel:
    return grpc.secure_channel(target, tls.credentials(), options=[*options, *tls.options()])


def aio_channel(target: str, tls: ClientTLS | None, *,
                options: Iterable[tuple[str, Any]] = (),
                interceptors: Iterable[grpc.aio.ClientInterceptor] | None = None
                ) -> grpc.aio.Channel:
    """A grpc.aio channel to `target`, over TLS when `tls` is given."""
    if tls is None:
        return grpc.aio.insecure_channel(target, options=list(options),
                                         interceptors=interceptors)
    return grpc.aio.secure_channel(target, tls.credentials(),
                                   options=[*options, *tls.options()],
                                   interceptors=interceptors)


def warn_insecure(component: str, addresses: Iterable[str], *, explicit: bool = True,
                  authenticated: bool = False, stream: TextIO | None = None) -> None:
    """The one line a server prints when it serves plaintext (`authenticated`: it still
    checks bearer tokens, which then cross the network in clear)."""
    where = ", ".join(addresses)
    hint = "" if explicit else " (give TLS flags, or --insecure to say this is meant)"
    if authenticated:
        line = (f"WARNING: {component} serving without TLS (--insecure): bearer tokens "
                f"cross {where} in plaintext{hint}")
    else:
        line = (f"WARNING: {component} serving without TLS or authentication (--insecure): "
                f"anyone who can reach {where} has full access{hint}")
    print(line, file=stream or sys.stderr, flush=True)


def check_plaintext(component: str, addresses: Iterable[str], tls: ServerTLS | None,
                    insecure: bool, *, authenticated: bool = False) -> None:
    """A server's command line: TLS, or plaintext only when `--insecure` asks for it (then
    the warning line); both at once is a contradiction."""
    if tls is not None:
        if insecure:
            raise TLSConfigError(f"--insecure contradicts {tls.flags[0]}: choose one")
        return
    if not insecure:
        raise TLSConfigError(
            f"{component} serves TLS: give a certificate and key ({DEFAULT_HINT[component]};"
            f" `kemu certs init` makes them), or --insecure to serve plaintext"
            f"{'' if authenticated else ' with no authentication'}")
    warn_insecure(component, addresses, authenticated=authenticated)


DEFAULT_HINT = {"store": "--cert-file, --key-file",
                "apiserver": "--tls-cert-file, --tls-private-key-file",
                "node agent": "--tls-cert-file, --tls-private-key-file"}


# ---- flags ------------------------------------------------------------------------------

INSECURE_HELP = ("serve plaintext: no TLS and, without other authentication, none at all "
                 "(prints a warning); without it the server needs its TLS flags")


def add_etcd_server_flags(p: argparse.ArgumentParser) -> None:
    """etcd's `--cert-file --key-file --trusted-ca-file --client-cert-auth`, and
    `--insecure`, for both entry points of the store."""
    p.add_argument("--cert-file", type=Path, default=None, metavar="FILE",
                   help="serve TLS with this certificate (as etcd's flag)")
    p.add_argument("--key-file", type=Path, default=None, metavar="FILE",
                   help="the key of --cert-file")
    p.add_argument("--trusted-ca-file", type=Path, default=None, metavar="FILE",
                   help="CA of the client certificates --client-cert-auth requires")
    p.add_argument("--client-cert-auth", action="store_true",
                   help="require a client certificate signed by --trusted-ca-file (the "
                        "apiserver's --etcd-certfile); without it, TLS only encrypts")
    p.add_argument("--insecure", action="store_true", help=INSECURE_HELP)


def etcd_server_tls(args: argparse.Namespace) -> ServerTLS | None:
    """The store's TLS from `add_etcd_server_flags`, checked with --insecure."""
    if args.client_cert_auth and not args.trusted_ca_file:
        raise TLSConfigError("--client-cert-auth needs --trusted-ca-file")
    found = server_tls(args.cert_file, args.key_file,
                       args.trusted_ca_file if args.client_cert_auth else None,
                       flags=("--cert-file", "--key-file", "--trusted-ca-file"))
    check_plaintext("store", [args.listen], found, args.insecure)
    return found


def add_client_flags(p: argparse.ArgumentParser, *, what: str = "the apiserver") -> None:
    """kubectl's `--certificate-authority --client-certificate --client-key`."""
    g = p.add_argument_group("TLS to " + what)
    g.add_argument("--certificate-authority", type=Path, default=None, metavar="FILE",
                   help=f"CA certificate to verify {what}'s serving certificate; dials TLS "
                        f"(default: ${ENV_CA}, else plaintext)")
    g.add_argument("--client-certificate", type=Path, default=None, metavar="FILE",
                   help=f"client certificate to authenticate with (CN user, O groups; "
                        f"default ${ENV_CERT})")
    g.add_argument("--client-key", type=Path, default=None, metavar="FILE",
                   help=f"the client certificate's key (default ${ENV_KEY})")


def export_client_flags(args: argparse.Namespace) -> None:
    """Make `add_client_flags`' values the TLS of every client this process makes."""
    tls = ClientTLS.of(getattr(args, "certificate_authority", None),
                       getattr(args, "client_certificate", None),
                       getattr(args, "client_key", None))
    if tls is not None:
        tls.export()
