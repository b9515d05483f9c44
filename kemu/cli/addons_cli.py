"""`kemu addons install dns`: the cluster DNS put into a running cluster, as kubeadm's
addon phase installs CoreDNS.

`kemu up` installs it itself; a control plane started some other way (compose/control-plane.yml
runs this as a one-shot service) calls this. It waits for the apiserver, then applies the
manifests of kemu.cli.addons with the apiserver's apply (kubectl apply's three-way merge),
so running it again changes nothing. Against an apiserver with `--token-file` the token
(KEMU_TOKEN) goes into a Secret that the DNS pods read as KEMU_TOKEN. A container reads an
env var from a Secret only when it starts, so the pod template carries the Secret's
resourceVersion: a new token updates the Secret and rolls the DNS pods.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from kemu.cli import addons
from kemu.util import tls
from kemu.util.argtypes import host_port

if TYPE_CHECKING:
    from kemu.api.v1 import api_pb2
    from kemu.client import Client

TOKEN_VERSION = "kemu.io/token-secret-version"


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
                cert_dir: str | None = None) -> list[str]:
    """Apply the DNS add-on's objects; one `kind/name created|configured|unchanged` line
    each, as kubectl apply prints."""
    from kemu.api import manifest
    from kemu.cli.ctl.cmd_apply import RESULTS
    from kemu.cli.ctl.output import name_of

    lines: list[str] = []

    def apply(doc: dict[str, Any]) -> api_pb2.Object:
        resp = client.apply(manifest.from_dict(doc))
        lines.append(f"{name_of(resp.object)} {RESULTS.get(resp.result, 'configured')}")
        return resp.object

    deployment = addons.dns_deployment(image, replicas=replicas, cert_dir=cert_dir)
    if token:
        secret = apply(addons.dns_token_secret(token))
        deployment = addons.dns_deployment(image, replicas=replicas,
                                           token_secret=addons.DNS_TOKEN_SECRET,
                                           cert_dir=cert_dir)
        deployment["spec"]["template"]["metadata"]["annotations"] = {
            TOKEN_VERSION: secret.secret.metadata.resource_version}
    apply(addons.dns_service())
    apply(deployment)
    return lines


def run(args: argparse.Namespace) -> int:
    """`kemu addons install dns`; errors reach kemu's one-line handler."""
    from kemu.client import Client
    from kemu.client.auth import resolve

    if args.replicas < 0:
        raise AddonError(f"--replicas: must be >= 0, got {args.replicas}")
    tls.export_client_flags(args)
    with Client(args.apiserver, timeout=10.0) as client:
        wait_for_apiserver(client, args.timeout)
        for line in install_dns(client, image=args.image, replicas=args.replicas,
                                token=resolve(None)):
            print(line, flush=True)
    return 0
