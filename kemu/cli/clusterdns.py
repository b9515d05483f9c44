"""The cluster DNS of a `kemu up` cluster: the kube-dns add-on installed as pods (as kubeadm
installs CoreDNS), and the check that it answers through its Service, 10.96.0.10, from a
node, the way a pod's query goes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from kemu.cli.lifecycle import LifecycleError
from kemu.util.tls import ClientTLS

DNS_PROBE = """
import socket, sys
from dnslib import DNSRecord
q = DNSRecord.question("kubernetes.default.svc.cluster.local").pack()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
s.sendto(q, ("10.96.0.10", 53))
r = DNSRecord.parse(s.recv(4096))
sys.exit(0 if any(str(a.rdata) == "10.96.0.1" for a in r.rr) else 1)
"""


def install(api: str, *, tls: ClientTLS | None = None, cert_dir: Path | None = None) -> None:
    """Apply the kube-dns Service and Deployment (idempotent: `up` again changes nothing);
    `tls` is how this process dials the apiserver, `cert_dir` the DNS pods' certificates
    on this machine."""
    from kemu.cli.addons_cli import install_dns
    from kemu.client import Client

    with Client(api, timeout=10, tls=tls) as client:
        install_dns(client, image="kemu/kemu:latest", replicas=2, token="",
                    cert_dir=str(cert_dir) if cert_dir else None)


def answers(netns_path: str | None = None) -> bool:
    """A query for kubernetes.default from the node (in `netns_path`, else this machine) is
    answered through the Service's rules."""
    enter = ["nsenter", f"--net={netns_path}", "--"] if netns_path else []
    try:
        done = subprocess.run([*enter, sys.executable, "-c", DNS_PROBE], capture_output=True,
                              timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def wait_answering(deadline: float, netns_path: str | None = None) -> None:
    """Wait until `answers`; LifecycleError at the (monotonic) deadline."""
    while time.monotonic() < deadline:
        if answers(netns_path):
            print("  dns        answering", flush=True)
            return
        time.sleep(0.5)
    raise LifecycleError("cluster DNS (the kube-dns pods behind 10.96.0.10) did not answer "
                         "in time; see `kemuctl get pods -n kube-system`")
