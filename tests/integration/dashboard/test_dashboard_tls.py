"""`kemu dashboard --name CLUSTER` against an apiserver that serves TLS and requires client
certificates, with the CA, certificate and key named (relative to the file, as kubectl
reads them) by that cluster's entry of the config file, which is not the current one.
The stream's snapshot is read over plain HTTP; the browser test is test_dashboard.py.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kemu.util.tls import ClientTLS
from tests.support import processes

pytestmark = pytest.mark.integration


def kemu(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([processes.PYTHON, "-m", "kemu.cli.kemu_main", *args],
                          capture_output=True, text=True, timeout=60, cwd=processes.ROOT,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def tls_apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A plaintext store and an apiserver with --client-ca-file; the PKI's directory."""
    tmp = tmp_path_factory.mktemp("dashboard-tls")
    pki = tmp / "pki"
    done = kemu("certs", "init", "--dir", str(pki))
    assert done.returncode == 0, done.stderr
    store = processes.kemu_store(tmp)
    api = processes.kemu_apiserver(
        tmp, store.address, tls=ClientTLS(pki / "ca.crt", pki / "admin.crt", pki / "admin.key"),
        extra=("--tls-cert-file", str(pki / "apiserver.crt"), "--tls-private-key-file",
               str(pki / "apiserver.key"), "--client-ca-file", str(pki / "ca.crt")))
    with processes.running(store, api):
        yield api.address, pki


def write_config(pki: Path, server: str, *, client_cert: bool = True) -> Path:
    config = pki / "config"
    cert = "    client-certificate: admin.crt\n    client-key: admin.key\n" if client_cert \
        else ""
    config.write_text("current-cluster: elsewhere\nclusters:\n"
                      f"  elsewhere:\n    server: 127.0.0.1:{processes.free_port()}\n"
                      f"  secure:\n    server: {server}\n    certificate-authority: ca.crt\n"
                      f"{cert}")
    return config


def env_for(config: Path) -> dict[str, str]:
    return {"KEMU_CONFIG": str(config), "KEMU_SERVER": "", "KEMU_TOKEN": "",
            "KEMU_CERTIFICATE_AUTHORITY": "", "KEMU_CLIENT_CERTIFICATE": "",
            "KEMU_CLIENT_KEY": ""}


def snapshot(address: str) -> Any:
    """The first event of /api/stream, parsed."""
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", "/api/stream")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("Content-Type", "").startswith("text/event-stream")
        event = ""
        while True:
            line = resp.fp.readline().decode()
            if line.startswith("event: "):
                event = line.removeprefix("event: ").strip()
            elif line.startswith("data: ") and event == "snapshot":
                return json.loads(line.removeprefix("data: "))
    finally:
        conn.close()


def test_a_named_cluster_with_client_certificates(tls_apiserver: tuple[str, Path]) -> None:
    server, pki = tls_apiserver
    port = processes.free_port()
    proc = processes.Proc("dashboard", [processes.PYTHON, "-m", "kemu.cli.kemu_main",
                                        "dashboard", "--name", "secure", "--listen",
                                        f"127.0.0.1:{port}"],
                          pki.parent / "dashboard.log", f"127.0.0.1:{port}",
                          env=env_for(write_config(pki, server))).start()
    try:
        proc.wait_ready(check="tcp")
        data = snapshot(proc.address)
        assert data["server"] == server
        assert data["problem"] == ""
        assert {"default", "kube-system"} <= {n["name"] for n in data["resources"]["namespaces"]}
        assert [s["name"] for s in data["resources"]["services"]] == ["kubernetes"]
    finally:
        proc.stop()


def test_a_missing_client_certificate_is_one_line(tls_apiserver: tuple[str, Path]) -> None:
    server, pki = tls_apiserver
    done = kemu("dashboard", "--name", "secure", "--listen",
                f"127.0.0.1:{processes.free_port()}",
                env=env_for(write_config(pki, server, client_cert=False)))
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: apiserver {server}: Unable to connect to the "
                                  f"server {server}"), done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
