"""The DNS add-on's manifests and `kemu addons install dns --pki-dir`'s part that needs no
apiserver: the DNS pods' certificate issued once from the cluster's CA, delivered as a
Secret mounted by a secret volume, and a pod template that rolls when that Secret changes."""

from __future__ import annotations

import base64
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kemu.api import manifest, objects
from kemu.api.v1 import api_pb2
from kemu.cli import addons
from kemu.cli.addons_cli import TLS_VERSION, TOKEN_VERSION, dns_cert_files, install_dns
from kemu.cli.clusterpki import DNS_GROUPS, DNS_USER
from kemu.cli.kemu_main import build_parser
from kemu.util.certs import CertError, CertificateAuthority, identity, read_pair, write_pair


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return c


DNS_ARGS = ["dns", "--listen", "0.0.0.0:53", "--metrics-listen", "0.0.0.0:9153"]
TLS_ARGS = ["--certificate-authority", "/etc/kemu/pki/ca.crt", "--client-certificate",
            "/etc/kemu/pki/tls.crt", "--client-key", "/etc/kemu/pki/tls.key"]


def test_a_cert_secret_is_mounted_by_a_secret_volume_not_a_host_path() -> None:
    d = addons.dns_deployment("reg/kemu/kemu:1", cert_secret="kube-dns-tls")
    assert _container(d)["args"] == [*DNS_ARGS, *TLS_ARGS]
    assert _container(d)["volumeMounts"] == [{"name": "pki", "mountPath": "/etc/kemu/pki",
                                              "readOnly": True}]
    assert d["spec"]["template"]["spec"]["volumes"] == [
        {"name": "pki", "secret": {"secretName": "kube-dns-tls", "defaultMode": 0o400}}]
    assert "env" not in _container(d)
    manifest.from_dict(d)  # a valid Deployment for the API


def test_the_host_path_and_token_modes_are_unchanged() -> None:
    host = addons.dns_deployment("kemu/kemu:latest", cert_dir="/state/pki/dns")
    assert _container(host)["args"][len(DNS_ARGS):] == TLS_ARGS
    assert host["spec"]["template"]["spec"]["volumes"] == [
        {"name": "pki", "hostPath": {"path": "/state/pki/dns", "type": "Directory"}}]
    token = addons.dns_deployment("kemu/kemu:latest", token_secret="kube-dns-token")
    assert _container(token)["args"] == DNS_ARGS
    assert "volumes" not in token["spec"]["template"]["spec"]
    assert _container(token)["env"][0]["valueFrom"]["secretKeyRef"] == {
        "name": "kube-dns-token", "key": "token"}
    with pytest.raises(ValueError, match="give one or neither"):
        addons.dns_deployment("x", cert_dir="/a", cert_secret="b")


def test_the_dns_pods_serve_metrics_on_9153_behind_the_service_as_coredns_does() -> None:
    """kubeadm's kube-dns Service exposes CoreDNS's metrics port with the scrape
    annotations; the pods listen there."""
    service = addons.dns_service()
    assert {"name": "metrics", "port": 9153, "protocol": "TCP",
            "targetPort": 9153} in service["spec"]["ports"]
    assert service["metadata"]["annotations"] == {"prometheus.io/port": "9153",
                                                  "prometheus.io/scrape": "true"}
    container = _container(addons.dns_deployment("kemu/kemu:latest"))
    assert {"name": "metrics", "containerPort": 9153,
            "protocol": "TCP"} in container["ports"]
    args = container["args"]
    assert args[args.index("--metrics-listen") + 1] == "0.0.0.0:9153"
    # The dns command accepts what the pods run.
    parsed = build_parser().parse_args(args)
    assert parsed.metrics_listen == "0.0.0.0:9153"
    manifest.from_dict(service)


def test_the_tls_secret_holds_the_three_files() -> None:
    s = addons.dns_tls_secret({"ca.crt": b"CA", "tls.crt": b"CRT", "tls.key": b"KEY"})
    assert s["metadata"] == {"name": "kube-dns-tls", "namespace": "kube-system",
                             "labels": {"k8s-app": "kube-dns"}}
    assert {k: base64.b64decode(v) for k, v in s["data"].items()} == {
        "ca.crt": b"CA", "tls.crt": b"CRT", "tls.key": b"KEY"}
    manifest.from_dict(s)
    with pytest.raises(ValueError, match=r"tls\.key"):
        addons.dns_tls_secret({"ca.crt": b"CA", "tls.crt": b"CRT"})


def test_the_dns_certificate_is_issued_once_from_the_pki(tmp_path: Path) -> None:
    ca = CertificateAuthority.create()
    write_pair(tmp_path, "ca", ca.pair)
    files = dns_cert_files(tmp_path)
    pair = read_pair(tmp_path, "kube-dns")
    assert identity(pair.cert) == (DNS_USER, list(DNS_GROUPS))
    assert DNS_USER == "system:serviceaccount:kube-system:kube-dns"
    assert pair.cert.issuer == ca.pair.cert.subject
    assert stat.S_IMODE((tmp_path / "kube-dns.key").stat().st_mode) == 0o600
    assert files == {"ca.crt": ca.pair.cert_pem, "tls.crt": pair.cert_pem,
                     "tls.key": pair.key_pem}
    # Kept after: running the one-shot again must change nothing.
    (tmp_path / "ca.key").unlink()
    assert dns_cert_files(tmp_path) == files
    with pytest.raises(CertError, match="cannot read"):
        dns_cert_files(tmp_path / "nothing")


class FakeClient:
    """What install_dns asks of a Client: apply, answered as the apiserver would for
    objects it has not seen (created, resourceVersion 1, 2, ...)."""

    def __init__(self) -> None:
        self.applied: list[api_pb2.Object] = []

    def apply(self, obj: api_pb2.Object) -> Any:
        self.applied.append(obj)
        objects.meta(obj).resource_version = str(len(self.applied))
        return SimpleNamespace(object=obj, result=api_pb2.ApplyResponse.CREATED)


def test_install_with_cert_files_applies_the_secret_and_rolls_on_its_version() -> None:
    api = FakeClient()
    files = {"ca.crt": b"CA", "tls.crt": b"CRT", "tls.key": b"KEY"}
    lines = install_dns(api, image="kemu/kemu:1", replicas=2, token="",  # type: ignore[arg-type]
                        cert_files=files)
    assert lines == ["secret/kube-dns-tls created", "service/kube-dns created",
                     "deployment.apps/kube-dns created"]
    deployment = objects.to_dict(api.applied[-1])
    template = deployment["spec"]["template"]
    assert template["metadata"]["annotations"] == {TLS_VERSION: "1"}
    assert template["spec"]["volumes"][0]["secret"]["secretName"] == "kube-dns-tls"
    assert TOKEN_VERSION not in template["metadata"]["annotations"]


def test_install_with_a_token_still_uses_the_token_secret() -> None:
    api = FakeClient()
    lines = install_dns(api, image="kemu/kemu:1", replicas=1,  # type: ignore[arg-type]
                        token="t0ken")
    assert lines[0] == "secret/kube-dns-token created"
    template = objects.to_dict(api.applied[-1])["spec"]["template"]
    assert template["metadata"]["annotations"] == {TOKEN_VERSION: "1"}
    assert "volumes" not in template["spec"]


def test_pki_dir_flag() -> None:
    args = build_parser().parse_args(["addons", "install", "dns", "--pki-dir", "/pki"])
    assert args.pki_dir == Path("/pki")
    assert build_parser().parse_args(["addons", "install", "dns"]).pki_dir is None


def test_a_pki_dir_without_the_admin_certificate_is_one_line(tmp_path: Path) -> None:
    """The compose one-shot started before the `pki` service wrote the files: one line,
    exit 1 (compose restarts it), not a traceback or a wait for the apiserver."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "kemu.cli.kemu_main", "addons", "install",
                           "dns", "--apiserver", "127.0.0.1:1", "--timeout", "30",
                           "--pki-dir", str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert done.stderr == (f"error: --certificate-authority {tmp_path}/ca.crt: "
                           "No such file or directory\n")
