"""The cluster add-ons kemu installs, as manifests: cluster DNS.

As kubeadm does with CoreDNS, DNS is an ordinary workload: the Service `kube-dns` in
kube-system at the tenth address of the service CIDR (10.96.0.10), in front of the pods
of the Deployment `kube-dns` running `kemu dns` from the kemu/kemu image, which find the
apiserver through the `kubernetes` Service as any in-cluster client does.
An apiserver with `--token-file` (the compose deployment) needs the DNS pods to send a
token: it lives in the Secret `kube-dns-token` in kube-system, which the pods read as
KEMU_TOKEN (see kemu.cli.addons_cli, `kemu addons install dns`). An apiserver that requires
client certificates needs them to dial TLS with one, from ca.crt, tls.crt and tls.key:
either `cert_dir`, a directory of the node mounted by hostPath (`kemu up`, whose pods run
on the machine holding its PKI), or `cert_secret`, the Secret `kube-dns-tls` in kube-system
mounted by a secret volume (the compose deployment, whose DNS pods run on workers that hold
no PKI: the Node authorizer lets a node read the Secret once a pod bound to it uses it).
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping
from typing import Any

DNS_LABELS = {"k8s-app": "kube-dns"}
METRICS_PORT = 9153  # CoreDNS's prometheus plugin port, which kube-dns Services expose
DNS_PORTS = [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
             {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
             {"name": "metrics", "port": METRICS_PORT, "protocol": "TCP",
              "targetPort": METRICS_PORT}]
DNS_TOKEN_SECRET = "kube-dns-token"
TOKEN_KEY = "token"
DNS_TLS_SECRET = "kube-dns-tls"
TLS_FILES = ("ca.crt", "tls.crt", "tls.key")


def cluster_dns_ip(service_cidr: str = "10.96.0.0/12") -> str:
    """The tenth address of the service CIDR, as kubeadm chooses it."""
    return str(ipaddress.ip_network(service_cidr, strict=False).network_address + 10)


def dns_service(*, service_cidr: str = "10.96.0.0/12") -> dict[str, Any]:
    """The `kube-dns` Service in front of the DNS pods: DNS on 53, and the pods'
    Prometheus metrics on 9153 with the scrape annotations kubeadm's CoreDNS Service
    carries, so a Prometheus configured for Kubernetes finds them."""
    spec: dict[str, Any] = {
        "clusterIP": cluster_dns_ip(service_cidr),
        "ports": [dict(p) for p in DNS_PORTS],
        "selector": dict(DNS_LABELS),
    }
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system",
                         "labels": {**DNS_LABELS, "kubernetes.io/name": "KubeDNS"},
                         "annotations": {"prometheus.io/port": str(METRICS_PORT),
                                         "prometheus.io/scrape": "true"}},
            "spec": spec}


def dns_token_secret(token: str, *, name: str = DNS_TOKEN_SECRET) -> dict[str, Any]:
    """The Secret in kube-system holding the bearer token the DNS pods send."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": "kube-system",
                         "labels": dict(DNS_LABELS)},
            "data": {TOKEN_KEY: base64.b64encode(token.encode()).decode()}}


def dns_tls_secret(files: Mapping[str, bytes], *, name: str = DNS_TLS_SECRET
                   ) -> dict[str, Any]:
    """The Secret in kube-system holding the DNS pods' CA and client certificate and key
    (`files`: ca.crt, tls.crt, tls.key and their PEM contents)."""
    missing = [f for f in TLS_FILES if f not in files]
    if missing:
        raise ValueError(f"the {name} Secret needs {', '.join(missing)}")
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": "kube-system",
                         "labels": dict(DNS_LABELS)},
            "data": {f: base64.b64encode(files[f]).decode() for f in TLS_FILES}}


CERT_MOUNT = "/etc/kemu/pki"


def dns_deployment(image: str, *, replicas: int = 2, token_secret: str | None = None,
                   cert_dir: str | None = None, cert_secret: str | None = None
                   ) -> dict[str, Any]:
    """The `kube-dns` Deployment: `kemu dns` on port 53 with its metrics on 9153, ready
    once it answers TCP; with
    `token_secret`, its pods send the token in that Secret (key `token`) as KEMU_TOKEN;
    with `cert_dir` (a hostPath) or `cert_secret` (a Secret with ca.crt, tls.crt and
    tls.key), they dial TLS with the client certificate found there."""
    if cert_dir is not None and cert_secret is not None:
        raise ValueError("cert_dir and cert_secret: give one or neither")
    env = [] if token_secret is None else [{
        "name": "KEMU_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": token_secret, "key": TOKEN_KEY}}}]
    with_certs = cert_dir is not None or cert_secret is not None
    tls_args = [] if not with_certs else [
        "--certificate-authority", f"{CERT_MOUNT}/ca.crt",
        "--client-certificate", f"{CERT_MOUNT}/tls.crt",
        "--client-key", f"{CERT_MOUNT}/tls.key"]
    mounts = {} if not with_certs else {
        "volumeMounts": [{"name": "pki", "mountPath": CERT_MOUNT, "readOnly": True}]}
    volumes = {}
    if cert_dir is not None:
        volumes = {"volumes": [{"name": "pki",
                                "hostPath": {"path": cert_dir, "type": "Directory"}}]}
    elif cert_secret is not None:
        # The key is readable by the pod's user only (0400), as a projected service
        # account token is.
        volumes = {"volumes": [{"name": "pki", "secret": {"secretName": cert_secret,
                                                           "defaultMode": 0o400}}]}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": dict(DNS_LABELS)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(DNS_LABELS)},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "10%"}},
            "template": {
                "metadata": {"labels": dict(DNS_LABELS)},
                "spec": {
                    # Its own lookups (none today) must not go through itself.
                    "dnsPolicy": "Default",
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{
                        "name": "kemu-dns",
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "args": ["dns", "--listen", "0.0.0.0:53", "--metrics-listen",
                                 f"0.0.0.0:{METRICS_PORT}", *tls_args],
                        **({"env": env} if env else {}),
                        **mounts,
                        "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                  {"name": "dns-tcp", "containerPort": 53,
                                   "protocol": "TCP"},
                                  {"name": "metrics", "containerPort": METRICS_PORT,
                                   "protocol": "TCP"}],
                        "readinessProbe": {"tcpSocket": {"port": 53},
                                           "periodSeconds": 2},
                        "resources": {"requests": {"cpu": "50m", "memory": "70Mi"}},
                    }],
                    **volumes,
                },
            },
        },
    }
