"""Authentication: who is calling, from a client certificate or a bearer token.

A cluster spread over VMs listens on a routable address, so anyone on that network could
register a Node or read Secrets. Two authenticators close that, as kube-apiserver's:

- client certificates (`--client-ca-file`, over TLS): the certificate's CommonName is the
  user and each Organization a group (`system:node:n1` in `system:nodes`);
- static bearer tokens (`--token-file`, kube-apiserver's `--token-auth-file` format):
  `token,user,uid,"group1,group2"` per line; a line with only a token (kemu's older format)
  is the user `admin` in `system:masters`. Blank lines and `#` comments are skipped.

Every authenticated caller is also in `system:authenticated`. The interceptor wraps each
handler so the identity is set (identity.set_current) inside the handler's own task, where
authorization reads it. A certificate is looked at first; else a token, and a wrong one is
refused; a call with neither is UNAUTHENTICATED (reason Unauthorized in an ErrorInfo).
Health and reflection stay open, so load balancers, compose health checks and grpcurl work
without a secret.

gRPC's Python server either requires client certificates or never asks for one (see
kemu/util/tls.py): there is no "verify it when presented". So `--client-ca-file` requires a
certificate only when no `--token-file` is given; with a token file too, the apiserver
serves TLS without asking for certificates, tokens are how callers authenticate (a VM can
join with a token alone), and it says so in a warning at start.
"""

from __future__ import annotations

import contextlib
import csv
import hmac
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509

from kemu.services.apiserver import identity
from kemu.services.apiserver.errors import status
from kemu.services.apiserver.identity import Identity
from kemu.util.certs import identity as cert_identity
from kemu.util.grpchandlers import AroundInterceptor

# Methods anyone may call: liveness probes and tool discovery carry no credentials.
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
MESSAGE = ("Unauthorized: this apiserver needs a bearer token "
           "(kemuctl --token, KEMU_TOKEN or `token:` in ~/.kemu/config)")
AUTHENTICATED = "system:authenticated"
TOKEN_ONLY = Identity("admin", ("system:masters", AUTHENTICATED))
"""Who a token-file line without a user is: kemu's token files before users existed."""

Tokens = Mapping[str, Identity]


class TokenFileError(ValueError):
    """The token file cannot be read or holds no token."""


def _with_authenticated(groups: Iterable[str]) -> tuple[str, ...]:
    kept = tuple(g for g in groups if g)
    return kept if AUTHENTICATED in kept else (*kept, AUTHENTICATED)


def parse_tokens(text: str, source: str = "--token-file") -> dict[str, Identity]:
    """token -> identity for each line of a static token file."""
    found: dict[str, Identity] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in next(csv.reader([line], skipinitialspace=True))]
        token = fields[0]
        if not token:
            raise TokenFileError(f"{source} line {number}: empty token")
        user = fields[1] if len(fields) > 1 else ""
        groups = fields[3].split(",") if len(fields) > 3 else []
        found[token] = Identity(user, _with_authenticated(groups)) if user else TOKEN_ONLY
    return found


def load_tokens(path: Path) -> dict[str, Identity]:
    """The tokens in `path`; an empty or unreadable file is an error, never "no auth"."""
    try:
        text = path.read_text()
    except OSError as e:
        raise TokenFileError(f"--token-file {path}: {e.strerror or e}") from e
    tokens = parse_tokens(text, f"--token-file {path}")
    if not tokens:
        raise TokenFileError(f"--token-file {path}: no token in the file")
    return tokens


def bearer(metadata: Iterable[tuple[str, Any]] | None) -> str:
    """The token of an `authorization: Bearer <token>` entry, or ""."""
    for key, value in metadata or ():
        if key.lower() == "authorization" and isinstance(value, str):
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    return ""


def lookup(tokens: Iterable[str] | Tokens, presented: str) -> Identity | None:
    """The identity of `presented`, checked in constant time against every token so that
    timing tells nothing about them; None when it is not listed."""
    found: Identity | None = None
    for token in tokens:
        if hmac.compare_digest(token.encode(), presented.encode()) and presented:
            found = tokens[token] if isinstance(tokens, Mapping) else TOKEN_ONLY
    return found


def allowed(tokens: Iterable[str] | Tokens, presented: str) -> bool:
    return lookup(tokens, presented) is not None


def from_certificate(auth_context: Mapping[str, Iterable[bytes]]) -> Identity | None:
    """The identity in a verified client certificate (gRPC puts the peer's PEM in the
    auth context only after verifying it against the client CA)."""
    pems = list(auth_context.get("x509_pem_cert", ()))
    if not pems:
        return None
    user, groups = cert_identity(x509.load_pem_x509_certificate(pems[0]))
    return Identity(user, _with_authenticated(groups)) if user else None


class Authenticator:
    """Finds the caller of one RPC from its connection and metadata."""

    def __init__(self, tokens: Iterable[str] | Tokens = (), *,
                 client_certificates: bool = False) -> None:
        self.tokens: Tokens = tokens if isinstance(tokens, Mapping) else \
            dict.fromkeys(tokens, TOKEN_ONLY)
        self.client_certificates = client_certificates

    def authenticate(self, context: grpc.aio.ServicerContext[Any, Any]) -> Identity | str:
        """The caller's identity, or the message to refuse the call with."""
        if self.client_certificates:
            found = from_certificate(context.auth_context())
            if found is not None:
                return found
        presented = bearer(context.invocation_metadata())
        if presented:
            found = lookup(self.tokens, presented)
            return found if found is not None else MESSAGE
        return MESSAGE


class AuthInterceptor(AroundInterceptor):
    """Authenticates every call but health and reflection (see the module docstring):
    refused with UNAUTHENTICATED, or run with the caller's identity set for the handler's
    own task, where authorization reads it."""

    exempt = OPEN_PREFIXES

    def __init__(self, auth: Authenticator) -> None:
        self.auth = auth

    @contextlib.asynccontextmanager
    async def around(self, context: grpc.aio.ServicerContext[Any, Any],
                     method: str) -> AsyncIterator[None]:
        who = self.auth.authenticate(context)
        if isinstance(who, str):
            await context.abort_with_status(
                status(grpc.StatusCode.UNAUTHENTICATED, who, "Unauthorized"))
        token = identity.set_current(who)  # type: ignore[arg-type]
        try:
            yield
        finally:
            with contextlib.suppress(ValueError):  # a generator closed from another context
                identity.reset(token)
