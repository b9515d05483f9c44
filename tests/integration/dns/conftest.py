"""A real store + apiserver (the module's `cluster`), `python -m kemu.dns` as a process, a
tiny dnslib upstream on loopback, and the real `dig` as the client."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dnslib import QTYPE, RR  # type: ignore[import-untyped]
from dnslib.server import BaseResolver, DNSServer  # type: ignore[import-untyped]

from kemu.api import manifest
from kemu.client import Client
from tests.conftest import Cluster
from tests.support import processes

UPSTREAM_NAME = "outside.example.test."
UPSTREAM_IP = "192.0.2.44"


@pytest.fixture(scope="session")
def dig() -> str:
    """The path of `dig`, installing Debian's dnsutils when it is missing."""
    path = shutil.which("dig")
    if path is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "dnsutils"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                       capture_output=True, timeout=300)
        path = shutil.which("dig")
    assert path is not None, "dig is not installed and dnsutils could not be installed"
    return path


class _Upstream(BaseResolver):  # type: ignore[misc]
    """Answers one outside name; everything else NXDOMAIN."""

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        if str(request.q.qname).lower() == UPSTREAM_NAME and request.q.qtype == QTYPE.A:
            reply.add_answer(*RR.fromZone(f"{UPSTREAM_NAME} 60 A {UPSTREAM_IP}"))
        else:
            reply.header.rcode = 3
        return reply


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """A dnslib server on a free loopback port (UDP and TCP): the forward target."""
    port = processes.free_port()
    servers = [DNSServer(_Upstream(), port=port, address="127.0.0.1", tcp=tcp)
               for tcp in (False, True)]
    for s in servers:
        s.start_thread()
    yield f"127.0.0.1:{port}"
    for s in servers:
        s.stop()


def dns_proc(tmp: Path, apiserver: str, *extra: str, name: str = "dns") -> processes.Proc:
    address = f"127.0.0.1:{processes.free_port()}"
    return processes.Proc(name, [processes.PYTHON, "-m", "kemu.dns", "--apiserver", apiserver,
                                 "--listen", address, *extra], tmp / f"{name}.log", address)


@pytest.fixture(scope="module")
def dns(cluster: Cluster, upstream: str) -> Iterator[processes.Proc]:
    proc = dns_proc(cluster.tmp, cluster.server, "--upstream", upstream)
    with processes.running(proc, check="tcp"):
        yield proc


@dataclass
class DigResult:
    status: str
    answers: list[tuple[str, str, str]] = field(default_factory=list)  # name, type, rdata
    authority: list[tuple[str, str, str]] = field(default_factory=list)
    additional: list[tuple[str, str, str]] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    def rdata(self, rtype: str) -> list[str]:
        return sorted(r for _, t, r in self.answers if t == rtype)


def _records(section: str) -> list[tuple[str, str, str]]:
    out = []
    for line in section.strip().splitlines():
        if line and not line.startswith(";"):
            name, _ttl, _cls, rtype, rdata = line.split(None, 4)
            out.append((name.lower(), rtype, rdata))
    return out


@dataclass
class Dig:
    path: str
    server: str

    def __call__(self, *args: str, tcp: bool = False, timeout: int = 3) -> DigResult:
        host, port = self.server.rsplit(":", 1)
        cmd = [self.path, f"@{host}", "-p", port, "+tries=1", f"+time={timeout}",
               "+noall", "+comments", "+answer", "+authority", "+additional", *args]
        if tcp:
            cmd.append("+tcp")
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 10).stdout
        m = re.search(r"status: (\w+)", out)
        assert m, f"no reply from {' '.join(cmd)}:\n{out}"
        answer = re.search(r";; ANSWER SECTION:\n(.*?)(?:\n\n|\Z)", out, re.S)
        auth = re.search(r";; AUTHORITY SECTION:\n(.*?)(?:\n\n|\Z)", out, re.S)
        extra = re.search(r";; ADDITIONAL SECTION:\n(.*?)(?:\n\n|\Z)", out, re.S)
        return DigResult(m.group(1), _records(answer.group(1)) if answer else [],
                         _records(auth.group(1)) if auth else [],
                         _records(extra.group(1)) if extra else [],
                         flags.group(1).split() if (flags := re.search(r"flags: ([a-z ]*);", out))
                         else [])


@dataclass
class Kube:
    client: Client
    namespace: str

    def apply(self, doc: dict[str, Any]) -> Any:
        doc.setdefault("metadata", {}).setdefault("namespace", self.namespace)
        return self.client.create(manifest.from_dict(doc))

    def service(self, name: str, **spec: Any) -> Any:
        return self.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                           "spec": spec}).service

    def endpoints(self, name: str, subsets: list[dict[str, Any]]) -> None:
        self.apply({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name},
                    "subsets": subsets})

    def pod(self, name: str, ip: str, **spec: Any) -> None:
        self.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                    "spec": {"containers": [{"name": "app", "image": "busybox"}], **spec}})
        obj = self.client.get("pods", name, self.namespace)
        obj.pod.status.pod_ip = ip
        obj.pod.status.pod_ips.add(ip=ip)
        self.client.update_status(obj)


@pytest.fixture(scope="module")
def kube(cluster: Cluster) -> Iterator[Kube]:
    ns = f"dns-{uuid.uuid4().hex[:6]}"
    client = Client(cluster.server, timeout=15)
    client.create(manifest.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": ns}}))
    yield Kube(client, ns)
    client.close()
