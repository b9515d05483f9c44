"""The PKI `kemu up` keeps in a cluster's state directory: made once, reused, each
certificate naming its component as Kubernetes reads it, and the flags that use them."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from kemu.cli import addons, clusterpki
from kemu.util.certs import identity


def _who(path: Path) -> tuple[str, list[str]]:
    return identity(x509.load_pem_x509_certificate(path.read_bytes()))


def test_made_once_then_reused(tmp_path: Path) -> None:
    pki = clusterpki.ensure(tmp_path / "pki", sans=["172.17.0.1"],
                            nodes=[("lab-node-1", "127.0.0.1")])
    assert _who(pki.pair("admin")[0]) == ("kubernetes-admin", ["system:masters"])
    assert _who(pki.pair("node-lab-node-1")[0]) == ("system:node:lab-node-1",
                                                    ["system:nodes"])
    assert _who(pki.dns_dir / "tls.crt")[0] == clusterpki.DNS_USER
    assert (pki.dns_dir / "ca.crt").read_bytes() == pki.ca.read_bytes()
    assert not (pki.dns_dir / "ca.key").exists()  # the pods never see the CA's key
    sans = x509.load_pem_x509_certificate(pki.pair("apiserver")[0].read_bytes()).extensions \
        .get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"172.17.0.1", "10.96.0.1", "127.0.0.1"} <= {str(n.value) for n in sans}
    before = {p.name: p.read_bytes() for p in (tmp_path / "pki").glob("*.crt")}
    again = clusterpki.ensure(tmp_path / "pki", nodes=[("lab-node-1", "127.0.0.1")])
    assert {p.name: p.read_bytes() for p in (tmp_path / "pki").glob("*.crt")} == before
    assert again.client("admin").cert_file == pki.pair("admin")[0]


def test_flags(tmp_path: Path) -> None:
    pki = clusterpki.ClusterPKI(tmp_path)
    assert "--client-cert-auth" in pki.store_flags()
    api = pki.apiserver_flags()
    for flag in ("--tls-cert-file", "--client-ca-file", "--etcd-certfile",
                 "--kubelet-client-certificate"):
        assert flag in api
    agent = pki.agent_flags("n1")
    assert agent[agent.index("--tls-cert-file") + 1] == str(tmp_path / "node-n1.crt")
    assert agent[agent.index("--client-certificate") + 1] == str(tmp_path / "node-n1.crt")


def test_dns_pods_mount_their_certificates(tmp_path: Path) -> None:
    plain = addons.dns_deployment("kemu/kemu:latest")
    assert "volumes" not in plain["spec"]["template"]["spec"]
    d = addons.dns_deployment("kemu/kemu:latest", cert_dir=str(tmp_path / "dns"))
    spec = d["spec"]["template"]["spec"]
    assert spec["volumes"] == [{"name": "pki", "hostPath": {"path": str(tmp_path / "dns"),
                                                           "type": "Directory"}}]
    args = spec["containers"][0]["args"]
    assert args[args.index("--client-key") + 1] == f"{addons.CERT_MOUNT}/tls.key"
